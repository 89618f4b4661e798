"""What a refusal says: the party's own code and message, or the status and its words; never
the "None: None" a finance clerk once read on a failed refund."""

from __future__ import annotations

import httpx

from integrations.refusals import Refused, detail_of


def _answer(status: int, **kwargs: object) -> httpx.Response:
    return httpx.Response(status, **kwargs)  # type: ignore[arg-type]


def test_a_party_code_and_message_are_kept() -> None:
    answer = _answer(409, json={"detail": {"code": "ORDER_CLOSED", "message": "订单已关闭"}})
    assert detail_of(answer) == ("ORDER_CLOSED", "订单已关闭")


def test_an_answer_without_them_says_what_it_does_say() -> None:
    assert detail_of(_answer(409, json={"detail": "refund not allowed"})) == (
        "409",
        "refund not allowed",
    )
    assert detail_of(_answer(409, json={"detail": {}})) == ("409", "Conflict")
    assert detail_of(_answer(409, json={})) == ("409", "{}")
    assert detail_of(_answer(422, text="")) == ("422", "Unprocessable Entity")
    assert str(Refused(*detail_of(_answer(409, json={"detail": {}})))) == "409: Conflict"
