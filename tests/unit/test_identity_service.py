"""The real-name identity service end to end without a network: the ID number rule, and our
client (integrations/identity.py) against the simulator (simulators/identity)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI

from integrations.identity import (
    IdentityClient,
    IdentityRefused,
    IdentityUnavailable,
    VerifyRequest,
    valid_id_number,
)
from simulators.identity.app import HIS_SEED_FILE, IdentityState, create_app

API_KEY = "identity-key"
SERVICE = "http://identity.test"

# From simulators/his/seed.yaml: the same people in both simulators.
ZHANG = ("张建国", "513401195803120115")
CHEN = ("陈晓明", "51340119880516051X")
# Valid (birth date and check character) but nobody's.
UNKNOWN = "110101199003071233"
# Right check character for a birth date that does not exist (30 February 1958).
BAD_DATE = "513401195802300114"


def his_seed_patients() -> list[dict[str, Any]]:
    patients: list[dict[str, Any]] = yaml.safe_load(HIS_SEED_FILE.read_text(encoding="utf-8"))[
        "patients"
    ]
    return patients


@dataclass
class Service:
    app: FastAPI
    state: IdentityState
    client: IdentityClient
    sim: httpx.AsyncClient

    def client_with_key(self, api_key: str) -> IdentityClient:
        transport = httpx.ASGITransport(app=self.app)
        return IdentityClient(httpx.AsyncClient(transport=transport), SERVICE, api_key)

    async def checks(self) -> list[dict[str, Any]]:
        response = await self.sim.get("/sim/checks")
        assert response.status_code == 200
        checks: list[dict[str, Any]] = response.json()
        return checks


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    state = IdentityState.seeded()
    app = create_app(api_key=API_KEY, state=state)
    transport = httpx.ASGITransport(app=app)
    opened = Service(
        app=app,
        state=state,
        client=IdentityClient(httpx.AsyncClient(transport=transport), SERVICE, API_KEY),
        sim=httpx.AsyncClient(transport=transport, base_url=SERVICE),
    )
    yield opened
    await opened.client.close()
    await opened.sim.aclose()


def ask(person: tuple[str, str], request_id: str = "REQ-1") -> VerifyRequest:
    name, id_number = person
    return VerifyRequest(request_id=request_id, name=name, id_number=id_number)


# ---- the ID number rule ----------------------------------------------------------------------


def test_every_his_seed_number_is_valid() -> None:
    numbers = [patient["id_number"] for patient in his_seed_patients()]
    assert len(numbers) >= 5
    assert all(valid_id_number(number) for number in numbers)


def test_a_wrong_check_character_is_invalid() -> None:
    assert valid_id_number(ZHANG[1])
    assert not valid_id_number(ZHANG[1][:17] + "6")
    assert not valid_id_number(CHEN[1][:17] + "0")


def test_a_birth_date_that_does_not_exist_is_invalid() -> None:
    assert not valid_id_number(BAD_DATE)
    assert not valid_id_number("513401202302290119")  # 29 February in a common year
    assert valid_id_number("513401202402290116")  # ...and in a leap year


def test_a_lowercase_x_is_read_as_x() -> None:
    assert valid_id_number(CHEN[1].lower())
    assert valid_id_number("11010519491231002x")


def test_the_shape_is_eighteen_ascii_characters() -> None:
    assert not valid_id_number("")
    assert not valid_id_number(ZHANG[1][:17])
    assert not valid_id_number(ZHANG[1] + "0")
    assert not valid_id_number(" " + ZHANG[1][1:])
    assert not valid_id_number("X13401195803120115")
    # Arabic-Indic digits are digits to str.isdigit(), not to the standard.
    assert not valid_id_number("\u0665" + ZHANG[1][1:])


# ---- verify ----------------------------------------------------------------------------------


async def test_a_seeded_patient_matches(service: Service) -> None:
    answer = await service.client.verify(ask(ZHANG))
    assert (answer.request_id, answer.result) == ("REQ-1", "match")
    assert answer.verified_at.tzinfo is not None


async def test_a_lowercase_x_finds_the_same_person(service: Service) -> None:
    answer = await service.client.verify(ask((CHEN[0], CHEN[1].lower())))
    assert answer.result == "match"


async def test_another_name_is_a_mismatch(service: Service) -> None:
    answer = await service.client.verify(ask(("张建军", ZHANG[1])))
    assert answer.result == "mismatch"


async def test_a_valid_unknown_number_is_not_found(service: Service) -> None:
    answer = await service.client.verify(ask(("赵一", UNKNOWN)))
    assert answer.result == "not_found"


async def test_an_invalid_number_is_refused_without_repeating_the_person(
    service: Service,
) -> None:
    for number in (BAD_DATE, ZHANG[1][:17] + "6", "12345"):
        with pytest.raises(IdentityRefused, match="422 INVALID_ID_NUMBER") as caught:
            await service.client.verify(ask(("张建国", number), request_id=f"BAD-{number}"))
        message = str(caught.value)
        assert number not in message
        assert "张建国" not in message
    assert await service.checks() == []


async def test_a_wrong_api_key_is_refused(service: Service) -> None:
    stranger = service.client_with_key("not-the-key")
    with pytest.raises(IdentityRefused, match="401"):
        await stranger.verify(ask(ZHANG))
    await stranger.close()
    assert await service.checks() == []


async def test_an_injected_503_is_worth_retrying_and_spares_sim(service: Service) -> None:
    plan = {"rules": [{"path_prefix": "/api/v1/verify", "status": 503, "count": 1}]}
    assert (await service.sim.put("/sim/faults", json=plan)).status_code == 200
    with pytest.raises(IdentityUnavailable, match="503"):
        await service.client.verify(ask(ZHANG))
    assert await service.checks() == []
    assert (await service.client.verify(ask(ZHANG))).result == "match"


async def test_a_repeated_request_id_gets_the_same_answer(service: Service) -> None:
    first = await service.client.verify(ask(ZHANG, request_id="REQ-7"))
    # The registry changing in between does not change an answer already given.
    service.state.people.clear()
    again = await service.client.verify(ask(ZHANG, request_id="REQ-7"))
    assert again == first
    assert len(await service.checks()) == 1


async def test_a_request_id_reused_for_another_person_is_refused(service: Service) -> None:
    await service.client.verify(ask(ZHANG, request_id="REQ-8"))
    with pytest.raises(IdentityRefused, match="409") as caught:
        await service.client.verify(ask(CHEN, request_id="REQ-8"))
    assert CHEN[0] not in str(caught.value)
    assert CHEN[1] not in str(caught.value)


async def test_the_idempotency_key_must_be_the_request_id(service: Service) -> None:
    response = await service.sim.post(
        "/api/v1/verify",
        json=ask(ZHANG).model_dump(),
        headers={"X-Api-Key": API_KEY, "Idempotency-Key": "OTHER"},
    )
    assert response.status_code == 400
    assert response.json()["detail"]["code"] == "KEY_MISMATCH"


async def test_the_log_of_checks_holds_masked_numbers_only(service: Service) -> None:
    await service.client.verify(ask(ZHANG, request_id="A"))
    await service.client.verify(ask(("张建军", ZHANG[1]), request_id="B"))
    await service.client.verify(ask(("陈晓明", CHEN[1].lower()), request_id="C"))
    await service.client.verify(ask(("赵一", UNKNOWN), request_id="D"))
    checks = await service.checks()
    assert [(c["request_id"], c["result"], c["id_number_masked"]) for c in checks] == [
        ("A", "match", "513401********0115"),
        ("B", "mismatch", "513401********0115"),
        ("C", "match", "513401********051X"),
        ("D", "not_found", "110101********1233"),
    ]
    logged = (await service.sim.get("/sim/checks")).text
    for secret in (
        "张建国",
        "张建军",
        "陈晓明",
        "赵一",
        ZHANG[1],
        CHEN[1],
        CHEN[1].lower(),
        UNKNOWN,
    ):
        assert secret not in logged


# ---- /sim/people -----------------------------------------------------------------------------


async def test_a_person_added_through_sim_then_matches(service: Service) -> None:
    response = await service.sim.post("/sim/people", json={"name": "赵一", "id_number": UNKNOWN})
    assert response.status_code == 201
    assert response.json() == {"id_number_masked": "110101********1233"}
    assert (await service.client.verify(ask(("赵一", UNKNOWN)))).result == "match"


async def test_sim_people_refuses_an_invalid_or_taken_number(service: Service) -> None:
    invalid = await service.sim.post("/sim/people", json={"name": "赵一", "id_number": BAD_DATE})
    assert invalid.status_code == 422
    assert invalid.json() == {"detail": {"code": "INVALID_ID_NUMBER"}}
    taken = await service.sim.post("/sim/people", json={"name": "赵一", "id_number": ZHANG[1]})
    assert taken.status_code == 409
    assert (await service.client.verify(ask(ZHANG))).result == "match"


# ---- the client on its own -------------------------------------------------------------------


def client_answering(handler: Any) -> IdentityClient:
    return IdentityClient(httpx.AsyncClient(transport=httpx.MockTransport(handler)), SERVICE, "k")


async def test_the_client_sends_the_key_and_the_request_id_as_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={"request_id": "REQ-1", "result": "match", "verified_at": "2030-01-01T08:00:00Z"},
        )

    client = client_answering(answer)
    assert (await client.verify(ask(ZHANG))).result == "match"
    [request] = seen
    assert str(request.url) == f"{SERVICE}/api/v1/verify"
    assert request.headers["X-Api-Key"] == "k"
    assert request.headers["Idempotency-Key"] == "REQ-1"
    await client.close()


async def test_network_errors_timeouts_and_429_are_worth_retrying() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    for handler, why in ((broken, "ConnectError"), (slow, "ReadTimeout")):
        with pytest.raises(IdentityUnavailable, match=why):
            await client_answering(handler).verify(ask(ZHANG))
    with pytest.raises(IdentityUnavailable, match="429"):
        await client_answering(lambda _: httpx.Response(429)).verify(ask(ZHANG))


async def test_foreign_answers_are_refused_without_repeating_the_person() -> None:
    def echo(_: httpx.Request) -> httpx.Response:
        # A service whose own words repeat what it was sent.
        return httpx.Response(400, json={"detail": f"bad id_number {ZHANG[1]} for {ZHANG[0]}"})

    with pytest.raises(IdentityRefused, match="400") as caught:
        await client_answering(echo).verify(ask(ZHANG))
    assert ZHANG[0] not in str(caught.value)
    assert ZHANG[1] not in str(caught.value)

    def odd(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"request_id": "REQ-1", "result": ZHANG[1]})

    with pytest.raises(IdentityRefused, match="result") as caught:
        await client_answering(odd).verify(ask(ZHANG))
    assert ZHANG[1] not in str(caught.value)
    assert caught.value.__cause__ is None

    def elsewhere(_: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={"request_id": "REQ-2", "result": "match", "verified_at": "2030-01-01T08:00:00Z"},
        )

    with pytest.raises(IdentityRefused, match="another request"):
        await client_answering(elsewhere).verify(ask(ZHANG))


def test_a_bad_request_does_not_repeat_its_values() -> None:
    with pytest.raises(ValueError, match="name") as caught:
        VerifyRequest(request_id="REQ-1", name="张" * 51, id_number=ZHANG[1])
    assert "张张" not in str(caught.value)
