"""Property-based fuzzing of the whole published OpenAPI (schemathesis), against the real app
built as every API test builds it (real PostgreSQL, the Temporal dev server, the HIS simulator),
served by uvicorn on a loopback port inside the test's event loop.

Every operation is fuzzed with valid-looking (positive) and invalid (negative) input, then a
state machine walks the OpenAPI links so ids returned by POSTs feed the operations that follow.
The properties: no response is ever a 5xx, responses conform to the documented schema, and input
the schema forbids is refused with a 4xx.

Each operation runs under a staff token whose role gets the handler past authorisation: the
first role of ``ROLES`` not answered 403 is remembered per operation. Signed webhooks answer 401
to fuzzed bodies, which is fine; they must never answer 5xx.

``CAREPATH_FUZZ_EXAMPLES`` (default 9, for the suite's time; raise it for a deeper run)
bounds the examples per operation and mode; runs are
derandomized, so a given code base always sees the same inputs.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import Case, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    response_schema_conformance,
)

from core.db import SessionFactory
from core.models import StaffRole
from harness.postgres import free_port
from harness.processes import settings_env, start_process
from harness.servers import serve
from harness.settings import make_settings
from harness.staff import add_staff
from harness.waiting import eventually
from tests.api.conftest import Api, HisSim

EXAMPLES = int(os.environ.get("CAREPATH_FUZZ_EXAMPLES", "9"))
# Tried in this order until an operation answers something other than 403.
ROLES = (
    StaffRole.ADMIN,
    StaffRole.CARE_MANAGER,
    StaffRole.PHARMACIST,
    StaffRole.INTEGRATION,
    StaffRole.DOCTOR,
    StaffRole.NURSE,
)
# 413 (a body over the size limit) is as much a refusal as a 422.
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
            }
        }
    }
)
CHECKS = [not_a_server_error, response_schema_conformance, negative_data_rejection]
SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    # Shrinking a failure is worth a little time, never minutes.
    report_multiple_bugs=False,
)


@dataclass
class Fuzzer:
    base_url: str
    tokens: dict[StaffRole, str]
    examples: int = EXAMPLES
    http: requests.Session = field(default_factory=requests.Session)
    roles: dict[str, StaffRole] = field(default_factory=dict)
    calls: int = 0
    # Operations with nothing a schema forbids (no parameters, no body): no negative cases.
    nothing_to_negate: list[str] = field(default_factory=list)
    stateful_ended: str = "all scenarios ran"
    statuses: dict[int, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def call(self, case: Case[Any]) -> Response:
        label = case.operation.label
        known = self.roles.get(label)
        if case.headers:
            # The generated Authorization header would only ever be refused.
            for name in [n for n in case.headers if n.lower() == "authorization"]:
                del case.headers[name]
        response: Response | None = None
        for role in (known,) if known else ROLES:
            response = case.call(
                base_url=self.base_url,
                session=self.http,
                headers={"Authorization": f"Bearer {self.tokens[role]}"},
                timeout=15,
            )
            self.calls += 1
            if response.status_code != 403:
                self.roles[label] = role
                break
        assert response is not None
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        return response

    def check(self, case: Case[Any], response: Response) -> None:
        case.validate_response(response, checks=CHECKS)

    def record(self, name: str, run: Callable[[], None]) -> None:
        try:
            run()
        except hypothesis.errors.Unsatisfiable as exc:
            if "[negative]" not in name:
                self.failures[name] = f"Unsatisfiable: {exc}"[:3000]
            self.nothing_to_negate.append(name)
        # Schemathesis reports failed checks as a BaseExceptionGroup; every one is collected.
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001
            self.failures.setdefault(name, f"{type(exc).__name__}: {exc}"[:3000])


def fuzz_operations(schema: Any, fuzzer: Fuzzer) -> None:
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis.settings(SETTINGS, max_examples=fuzzer.examples)
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Case[Any]) -> None:
                fuzzer.check(case, fuzzer.call(case))

            fuzzer.record(f"{operation.label} [{mode.value}]", run)


def fuzz_links(schema: Any, fuzzer: Fuzzer) -> None:
    """Scenarios along the OpenAPI links. The database keeps what earlier steps created, so a
    scenario Hypothesis replays (to shrink a failure, or because its choices repeat a prefix)
    can see other answers and stop with ``Flaky``: as schemathesis' own runner does, failures
    are recorded when they happen and a Flaky ending is not itself a failure."""
    base = schema.as_state_machine()

    class Machine(base):  # type: ignore[misc, valid-type]
        def call(self, case: Case[Any], **kwargs: Any) -> Response:
            return fuzzer.call(case)

        def validate_response(
            self, response: Response, case: Case[Any], *_: Any, **__: Any
        ) -> None:
            fuzzer.record(f"stateful: {case.operation.label}", lambda: fuzzer.check(case, response))

    settings = hypothesis.settings(
        SETTINGS,
        max_examples=fuzzer.examples * 3,
        stateful_step_count=8,
        phases=[Phase.explicit, Phase.generate],
    )
    try:
        Machine.run(settings=settings)
    except hypothesis.errors.Flaky as exc:
        fuzzer.stateful_ended = f"{type(exc).__name__} after {fuzzer.calls} requests"


async def _tokens(sessions: SessionFactory) -> dict[StaffRole, str]:
    return {
        role: await add_staff(sessions, role, department_code=None, name=f"模糊{role.value}")
        for role in ROLES
    }


def _fuzzable(openapi: dict[str, Any]) -> Any:
    schema = schemathesis.openapi.from_dict(openapi, config=CONFIG)
    # Runs the reconciliation workflow and waits for its answer: without a worker and the
    # payment provider (tests/payments has both) a valid date waits forever. The date window
    # has its own test (test_edge_validation).
    return schema.exclude(path="/api/payments/reconciliations/{bill_date}/run", method="POST")


async def _fuzz(schema: Any, fuzzer: Fuzzer) -> tuple[int, float]:
    started = time.monotonic()
    await asyncio.to_thread(fuzz_operations, schema, fuzzer)
    stateless = fuzzer.calls
    await asyncio.to_thread(fuzz_links, schema, fuzzer)
    return stateless, time.monotonic() - started


async def test_no_input_gets_a_server_error(
    api: Api, record_property: Callable[[str, object], None]
) -> None:
    tokens = await _tokens(api.sessions)
    schema = _fuzzable(api.app.openapi())
    async with serve(api.app) as url:
        fuzzer = Fuzzer(url, tokens)
        stateless, elapsed = await _fuzz(schema, fuzzer)
    summary = (
        f"fuzz: {fuzzer.calls} requests ({stateless} per-operation, "
        f"{fuzzer.calls - stateless} stateful) over {len(fuzzer.roles)} operations "
        f"in {elapsed:.0f}s; statuses {dict(sorted(fuzzer.statuses.items()))}; "
        f"stateful: {fuzzer.stateful_ended}"
    )
    print(summary)  # noqa: T201 - the lead reads this figure (-s, or -rP)
    record_property("fuzz_requests", fuzzer.calls)
    record_property("fuzz_seconds", round(elapsed))
    report = "\n\n".join(f"{name}\n{text}" for name, text in sorted(fuzzer.failures.items()))
    assert not fuzzer.failures, f"{summary}\n{len(fuzzer.failures)} failing:\n\n{report}"


pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")


@pytest.mark.e2e
async def test_a_uvicorn_process_gives_no_server_error(
    database_url: str,
    sessions: SessionFactory,
    dev_env: Any,
    his_sim: HisSim,
    task_queue: str,
    tmp_path: Any,
) -> None:
    """The same properties against the API as deployed: its own uvicorn process, reading its
    settings from the environment, with its published /openapi.json. Fewer examples: this is
    about the process and its configuration, the in-process test about the inputs."""
    port = free_port()
    settings = make_settings(
        database_url=database_url,
        his_base_url=his_sim.url,
        temporal_address=dev_env.client.service_client.config.target_host,
        temporal_task_queue=task_queue,
        temporal_query_timeout_seconds=1.0,
    )
    env = settings_env(settings)
    api = start_process(
        "api", ["-m", "uvicorn", "api.main:app", "--port", str(port)], env, tmp_path
    )
    url = f"http://127.0.0.1:{port}"
    try:

        async def up() -> bool:
            try:
                return (await asyncio.to_thread(requests.get, f"{url}/healthz", timeout=1)).ok
            except requests.ConnectionError:
                return False

        await eventually(up, within=30, what="the API process to answer")
        openapi = (await asyncio.to_thread(requests.get, f"{url}/openapi.json", timeout=5)).json()
        fuzzer = Fuzzer(url, await _tokens(sessions), examples=max(1, EXAMPLES // 5))
        _, elapsed = await _fuzz(_fuzzable(openapi), fuzzer)
    finally:
        api.stop()
    print(f"fuzz (API process): {fuzzer.calls} requests in {elapsed:.0f}s")  # noqa: T201
    assert not fuzzer.failures, api.tail() + "\n" + "\n\n".join(fuzzer.failures.values())
    assert "Traceback" not in api.tail(400), api.tail(400)
