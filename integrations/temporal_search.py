"""Registers CarePath's search attributes (contracts.search) on a Temporal namespace. The API and
the workers do it as they start, and the test and bench servers as they come up; registered ones
are left alone. Where the connection may not register them (Temporal Cloud: the namespace's
settings page; a cluster without operator rights: ``temporal operator search-attribute create
--name PatientId --type Keyword …``), start-up stops with a message naming what is missing,
rather than failing every workflow start afterwards."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from contracts.search import ALL_KEYS
from core.logs import get_logger

log = get_logger(__name__)


def wanted() -> dict[str, IndexedValueType.ValueType]:
    # The SDK's enum has the protocol's numbers.
    return {key.name: IndexedValueType.ValueType(key.indexed_value_type.value) for key in ALL_KEYS}


async def register(client: Client, namespace: str) -> list[str]:
    """Adds the attributes the namespace lacks; returns their names."""
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        present = set(listed.custom_attributes)
    except RPCError as exc:
        # The Java test server (time skipping) can add attributes but not list them.
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        present = set()
    missing = {name: kind for name, kind in wanted().items() if name not in present}
    if missing:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
            )
        except RPCError as exc:
            # Another process (an API process, a worker) starting at the same time added them.
            if exc.status != RPCStatusCode.ALREADY_EXISTS:
                raise
    return sorted(missing)


class SearchAttributesMissing(RuntimeError):
    pass


async def ensure_registered(client: Client, namespace: str) -> None:
    """At start-up: registers what is missing, or stops with what the operator must do."""
    try:
        added = await register(client, namespace)
    except RPCError as exc:
        raise SearchAttributesMissing(
            f"could not register the search attributes {', '.join(sorted(wanted()))} on the "
            f"Temporal namespace '{namespace}' ({exc.message}); register them once as Keyword "
            "(PathwayVersion: Int), e.g. `temporal operator search-attribute create --name "
            "PatientId --type Keyword`, or on Temporal Cloud in the namespace's settings"
        ) from exc
    if added:
        log.info("search attributes registered", namespace=namespace, added=added)
