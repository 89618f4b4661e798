"""The JSON tree the patient page's script walks: its shape, that it round-trips through JSON,
and that walking it gives what the server computes, for every node kind and every condition the
shipped forms hold."""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from pathways.expressions import FUNCTIONS, compile_expression, expression_tree
from pathways.library import load_forms

VALUES: dict[str, Any] = {
    "phq9": 16,
    "overall": "poor",
    "symptoms": ["fever", "chest"],
    "q1": 2,
    "q2": 3,
    "glucose": 13.9,
    "note": None,
    "day": "2026-03-01",
}

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}
_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


def walk(node: Mapping[str, Any], values: Mapping[str, Any]) -> Any:
    """What the page's script does with a node, written the same way, so the tree is shown to
    carry everything evaluation needs and nothing is lost between compiler and browser."""
    kind = node["k"]
    if kind == "const":
        return float(node["num"]) if "num" in node else node["v"]
    if kind == "name":
        return values.get(node["n"])
    if kind == "list":
        return [walk(i, values) for i in node["items"]]
    if kind == "and":
        return all(bool(walk(a, values)) for a in node["args"])
    if kind == "or":
        return any(bool(walk(a, values)) for a in node["args"])
    if kind == "unary":
        operand = walk(node["arg"], values)
        if node["op"] == "not":
            return not operand
        if operand is None:
            return None
        return -operand if node["op"] == "-" else +operand
    if kind == "bin":
        left, right = walk(node["l"], values), walk(node["r"], values)
        return None if left is None or right is None else _ARITHMETIC[node["op"]](left, right)
    if kind == "cmp":
        left = walk(node["l"], values)
        for op, comparator in zip(node["ops"], node["rs"], strict=True):
            right = walk(comparator, values)
            if left is None or right is None:
                return False
            if op in ("in", "not in") and not isinstance(right, list | str):
                right = [right]
            if not _COMPARE[op](left, right):
                return False
            left = right
        return True
    if kind == "call":
        return FUNCTIONS[node["f"]](*(walk(a, values) for a in node["args"]))
    raise AssertionError(f"unknown node kind {kind}")


def test_shape_of_a_condition() -> None:
    tree = expression_tree(compile_expression("'wound' in symptoms and not q1 > -2"))

    assert tree == {
        "k": "and",
        "args": [
            {"k": "cmp", "l": {"k": "const", "v": "wound"}, "ops": ["in"], "rs": [
                {"k": "name", "n": "symptoms"}
            ]},
            {"k": "unary", "op": "not", "arg": {
                "k": "cmp", "l": {"k": "name", "n": "q1"}, "ops": [">"], "rs": [
                    {"k": "unary", "op": "-", "arg": {"k": "const", "v": 2}}
                ]},
            },
        ],
    }  # fmt: skip


def test_a_chain_of_comparisons_keeps_every_operator_in_order() -> None:
    tree = expression_tree(compile_expression("10 <= phq9 < 20 != q1"))

    assert tree["ops"] == ["<=", "<", "!="]
    assert [r.get("n", r.get("v")) for r in tree["rs"]] == ["phq9", 20, "q1"]


def test_a_number_json_cannot_hold_is_spelled_out() -> None:
    tree = expression_tree(compile_expression("glucose < 1e999"))

    assert tree["rs"] == [{"k": "const", "num": "Infinity"}]
    # Strict JSON (what the browser's JSON.parse accepts): no bare Infinity or NaN.
    json.dumps(tree, allow_nan=False)


@pytest.mark.parametrize(
    "source",
    [
        "phq9 >= 15",
        "phq9 >= 15 and overall == 'good'",
        "overall == 'poor' or 'fever' in symptoms",
        "'cough' not in symptoms",
        "'po' in overall",
        "overall in ['poor', 'fair']",
        "overall in ('poor', 'fair')",
        "q1 in 2",
        "10 <= phq9 < 20",
        "sum(q1, q2) * 2",
        "sum(symptoms, q1, [q2, 1])",
        "glucose >= 13.9",
        "missing > 3",
        "not missing",
        "note == None",
        "missing == None",
        "count(q1, q2, missing)",
        "max(q1, q2, missing)",
        "min(q1, q2) - 1",
        "round(glucose / 3, 1)",
        "abs(-q1)",
        "+q2",
        "-missing",
        "len(symptoms) >= 2",
        "band(phq9, 5, 10, 15, 20)",
        "-q1 + 5",
        "q2 / q1",
        "missing + 1",
        "day >= '2026-01-01'",
        "True and not False",
        "[q1, q2]",
        "glucose < 1e999",
    ],
)
def test_walking_the_tree_gives_what_the_server_computes(source: str) -> None:
    expression = compile_expression(source)
    tree = json.loads(json.dumps(expression_tree(expression), allow_nan=False))

    assert walk(tree, VALUES) == expression.evaluate(VALUES)


def test_every_condition_in_the_shipped_forms_becomes_a_tree() -> None:
    sources = [
        source
        for form in load_forms().values()
        for q in form.questions
        for source in (q.show_if, q.end_if)
        if source
    ]
    assert sources, "the demo form has show_if and end_if"
    for source in sources:
        expression = compile_expression(source)
        tree = json.loads(json.dumps(expression_tree(expression), allow_nan=False))
        for values in ({}, VALUES, {"has_fever": "yes", "symptoms": ["wound"], "pain": 9.0}):
            assert walk(tree, values) == expression.evaluate(values)


def test_division_by_zero_is_left_to_the_walker() -> None:
    # The server treats an error as "does not hold"; the page's script does the same.
    expression = compile_expression("q1 / 0 > 1")
    assert not expression.holds(VALUES)
    with pytest.raises(ZeroDivisionError):
        walk(expression_tree(expression), VALUES)
    assert math.isinf(float(expression_tree(compile_expression("1e999"))["num"]))
