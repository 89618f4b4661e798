"""Safe expressions: what they compute, and what they refuse to run."""

from __future__ import annotations

import pytest

from pathways.expressions import ExpressionError, compile_expression

VALUES = {
    "phq9": 16,
    "overall": "poor",
    "symptoms": ["fever", "chest"],
    "q1": 2,
    "q2": 3,
    "glucose": 13.9,
    "note": None,
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("phq9 >= 15", True),
        ("phq9 >= 15 and overall == 'good'", False),
        ("overall == 'poor' or 'fever' in symptoms", True),
        ("'cough' not in symptoms", True),
        ("10 <= phq9 < 20", True),
        ("sum(q1, q2) * 2", 10),
        ("glucose >= 13.9", True),
        ("missing > 3", False),  # unanswered: a rule never fires on it
        ("not missing", True),
        ("note == None", False),
        ("count(q1, q2, missing)", 2),
        ("max(q1, q2, missing)", 3),
        ("round(glucose / 3, 1)", 4.6),
        ("len(symptoms) >= 2", True),
        ("-q1 + 5", 3),
    ],
)
def test_evaluates(source: str, expected: object) -> None:
    assert compile_expression(source).evaluate(VALUES) == expected


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os').system('id')",
        "().__class__.__bases__",
        "open('/etc/passwd')",
        "phq9 if True else 0",
        "[x for x in symptoms]",
        "lambda: 1",
        "phq9 ** 99999999",
        "a.b",
        "symptoms[0]",
        "sum(q1, start=3)",
        "x = 1",
        "phq9 >=",
    ],
)
def test_refuses_anything_else(source: str) -> None:
    with pytest.raises(ExpressionError):
        compile_expression(source)


def test_names_are_reported_for_validation() -> None:
    assert compile_expression("sum(q1, q2) > limit and ok").names == {"q1", "q2", "limit", "ok"}


def test_holds_treats_errors_as_false() -> None:
    assert compile_expression("q1 / 0 > 1").holds(VALUES) is False
    assert compile_expression("overall > 3").holds(VALUES) is False


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("band(phq9, 5, 10, 15, 20)", 3),
        ("band(0, 5, 10, 15, 20)", 0),
        ("band(4, 5, 10, 15, 20)", 0),
        ("band(5, 5, 10, 15, 20)", 1),
        ("band(27, 5, 10, 15, 20)", 4),
        ("band(glucose, 7, 13.9)", 2),
        ("band(missing, 5, 10)", None),  # unanswered: no band rather than the lowest
        ("band(overall, 5, 10)", None),  # text has no band
        ("band(phq9, 10, 5)", None),  # thresholds out of order: no band rather than an error
        ("band(phq9)", None),
        ("band(phq9, 5, True)", None),
    ],
)
def test_band_counts_the_thresholds_reached(source: str, expected: object) -> None:
    assert compile_expression(source).evaluate(VALUES) == expected
