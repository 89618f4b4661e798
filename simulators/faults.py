"""Fault injection shared by the payment-side simulators (HIS charging, insurance centre, payment
provider).

Faults are applied by a middleware around the protocol endpoints (never the /sim control API):
- latency before the request is handled;
- an error status *before* anything happens (the caller may retry safely);
- a "lost answer": the request is handled and committed, then the answer is held back longer
  than any sane client timeout, which is what makes idempotency keys necessary;
- targeted rules (the next N calls under a path prefix) for tests that need one exact failure.

Random faults draw from a seeded generator so that a run can be repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

CONTROL_PREFIX = "/sim"


class FaultRule(BaseModel):
    path_prefix: str = Field(min_length=1)
    method: str | None = None
    # Answer with this status without handling the request...
    status: int | None = None
    # ...or handle it and then hold the answer back (the caller times out; the effect stays).
    hang_after_commit: bool = False
    count: int = Field(default=1, ge=1)


class FaultPlan(BaseModel):
    seed: int | None = None
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    latency_jitter_ms: int = Field(default=0, ge=0, le=60_000)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    error_status: int = 503
    lost_answer_rate: float = Field(default=0.0, ge=0, le=1)
    hang_seconds: float = Field(default=30.0, ge=0, le=600)
    rules: list[FaultRule] = Field(default_factory=list)


class FaultInjector:
    def __init__(
        self,
        plan: FaultPlan | None = None,
        scope_prefix: str = "/",
        exclude_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.plan = plan or FaultPlan()
        # Only the protocol endpoints under this prefix see faults, except those under the
        # excluded ones (which have an injector of their own).
        self.scope_prefix = scope_prefix
        self.exclude_prefixes = exclude_prefixes
        self.random = random.Random(self.plan.seed)  # noqa: S311 - simulation, not security
        self.injected: dict[str, int] = {"error": 0, "lost_answer": 0, "rule": 0}
        # Set to let every held answer go at once (shutting a simulator down).
        self._release = asyncio.Event()

    def replace(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.random = random.Random(plan.seed)  # noqa: S311

    def chance(self, rate: float) -> bool:
        return rate > 0 and self.random.random() < rate

    def _rule(self, request: Request) -> FaultRule | None:
        for rule in self.plan.rules:
            if request.url.path.startswith(rule.path_prefix) and (
                rule.method is None or rule.method.upper() == request.method
            ):
                rule.count -= 1
                if rule.count <= 0:
                    self.plan.rules.remove(rule)
                self.injected["rule"] += 1
                return rule
        return None

    async def _hold(self) -> None:
        release = self._release
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(release.wait(), self.plan.hang_seconds)

    def release(self) -> None:
        """Ends every hold now; later holds wait again."""
        self._release.set()
        self._release = asyncio.Event()

    async def handle(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if (
            path.startswith(CONTROL_PREFIX)
            or not path.startswith(self.scope_prefix)
            or path.startswith(self.exclude_prefixes)
        ):
            return await call_next(request)
        plan = self.plan
        if plan.latency_ms or plan.latency_jitter_ms:
            jitter = self.random.uniform(0, plan.latency_jitter_ms)
            await asyncio.sleep((plan.latency_ms + jitter) / 1000)
        rule = self._rule(request)
        if rule is not None and rule.status is not None:
            return JSONResponse({"code": "INJECTED", "message": "injected fault"}, rule.status)
        if rule is None and self.chance(plan.error_rate):
            self.injected["error"] += 1
            return JSONResponse(
                {"code": "SYSTEM_ERROR", "message": "injected fault"}, plan.error_status
            )
        response = await call_next(request)
        if (rule is not None and rule.hang_after_commit) or (
            rule is None and self.chance(plan.lost_answer_rate)
        ):
            if rule is None:
                self.injected["lost_answer"] += 1
            await self._hold()
        return response


def add_fault_control(control: APIRouter, injector: FaultInjector, path: str = "/faults") -> None:
    """``PUT {control prefix}{path}``: replaces the simulator's fault plan; ``GET`` the same
    path tells what was injected so far."""

    @control.put(path)
    async def set_faults(plan: FaultPlan) -> FaultPlan:
        injector.replace(plan)
        return plan

    @control.get(path)
    async def injected() -> dict[str, int]:
        return dict(injector.injected)


def install(app: FastAPI, injector: FaultInjector) -> None:
    app.middleware("http")(injector.handle)
