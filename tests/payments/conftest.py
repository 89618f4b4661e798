"""Payment tests: the payment world (``harness.payments``) on each test's own database and task
queue."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from temporalio.client import Client

from core.db import SessionFactory
from harness.payments import PayWorld, payment_world

WorldFactory = Callable[..., AbstractAsyncContextManager[PayWorld]]


@pytest.fixture
def pay_world(database_url: str, sessions: SessionFactory, task_queue: str) -> WorldFactory:
    def build(client: Client, **kwargs: Any) -> AbstractAsyncContextManager[PayWorld]:
        return payment_world(client, sessions, database_url, task_queue, **kwargs)

    return build


def new_key() -> str:
    return uuid.uuid4().hex
