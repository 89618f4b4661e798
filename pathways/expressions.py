"""Safe expressions over a patient's answers and scores, for branches, risk thresholds and
scores (FORM-2, FORM-4, CM-6): ``phq9 >= 15``, ``overall == 'poor' or 'fever' in symptoms``,
``sum(q1, q2, q3)``.

Parsed with ``ast`` and evaluated by walking an allow-list of node types; nothing is ever passed
to ``eval``. Names are question ids or score names; an unanswered one is ``None``, and any
comparison involving ``None`` is false, so a rule never fires on a missing answer. Pure and
deterministic, so workflows evaluate them directly.
"""

from __future__ import annotations

import ast
import itertools
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 500


class ExpressionError(ValueError):
    """The expression is not allowed or does not parse."""


def _count(*values: Any) -> int:
    return sum(1 for v in values if v not in (None, False, "", 0))


def _sum(*values: Any) -> float:
    total = 0.0
    for value in values:
        if isinstance(value, list | tuple):
            total += _sum(*value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            total += value
    return total


def _numbers(values: Any) -> list[float]:
    found: list[float] = []
    for value in values:
        if isinstance(value, list | tuple):
            found += _numbers(value)
        elif _number(value):
            found.append(value)
    return found


def _mean(*values: Any) -> float | None:
    """The mean of the numbers given, unanswered ones left out: a satisfaction score over the
    questions the patient was asked (SAT-2 hides the ones about steps they did not go through)."""
    numbers = _numbers(values)
    return sum(numbers) / len(numbers) if numbers else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _band(value: Any, *thresholds: Any) -> int | None:
    """How many of the ascending thresholds ``value`` reaches: ``band(phq9, 5, 10, 15, 20)`` is
    0 for 0–4 … 4 for 20 and above, the published severity bands of a scale. Scores hold only
    numbers, so a band is how a form names a severity level. Anything unusable gives None rather
    than an error, because score formulas are evaluated in workflows, where raising is fatal."""
    if not _number(value) or not thresholds or not all(_number(t) for t in thresholds):
        return None
    if any(a > b for a, b in itertools.pairwise(thresholds)):
        return None
    return sum(1 for t in thresholds if value >= t)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sum": _sum,
    "mean": _mean,
    "band": _band,
    "count": _count,
    "min": lambda *v: min((x for x in v if x is not None), default=None),
    "max": lambda *v: max((x for x in v if x is not None), default=None),
    "abs": lambda v: None if v is None else abs(v),
    "round": lambda v, n=0: None if v is None else round(v, n),
    "len": lambda v: 0 if v is None else len(v),
}

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


@dataclass(frozen=True)
class Expression:
    source: str
    tree: ast.Expression
    names: frozenset[str]

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        return _eval(self.tree.body, values)

    def holds(self, values: Mapping[str, Any]) -> bool:
        """True only when the expression evaluates to a true value; errors count as false."""
        try:
            return bool(self.evaluate(values))
        except (TypeError, ZeroDivisionError, ValueError):
            return False


def compile_expression(source: str) -> Expression:
    if len(source) > MAX_LENGTH:
        raise ExpressionError(f"longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"does not parse: {exc.msg}") from exc
    names: set[str] = set()
    for node in ast.walk(tree):
        _check(node, names)
    return Expression(source=source, tree=tree, names=frozenset(names))


def _check(node: ast.AST, names: set[str]) -> None:
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise ExpressionError(f"only these functions: {', '.join(sorted(FUNCTIONS))}")
        if node.keywords:
            raise ExpressionError("functions take positional arguments only")
        return
    if isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            return
        if node.id in ("True", "False", "None"):
            return
        names.add(node.id)
        return
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, int | float | str | bool | type(None)):
            raise ExpressionError("only numbers, text, true/false and None")
        return
    allowed = (
        ast.Expression,
        ast.BoolOp,
        ast.And,
        ast.Or,
        ast.UnaryOp,
        ast.Not,
        ast.USub,
        ast.UAdd,
        ast.BinOp,
        ast.Compare,
        ast.List,
        ast.Tuple,
        ast.Load,
        *_COMPARE,
        *_ARITHMETIC,
    )
    if not isinstance(node, allowed):
        raise ExpressionError(f"'{type(node).__name__}' is not allowed in an expression")


def _eval(node: ast.AST, values: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return values.get(node.id)
    if isinstance(node, ast.List | ast.Tuple):
        return [_eval(e, values) for e in node.elts]
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            return all(bool(_eval(v, values)) for v in node.values)
        return any(bool(_eval(v, values)) for v in node.values)
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, values)
        if isinstance(node.op, ast.Not):
            return not operand
        if operand is None:
            return None
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, values), _eval(node.right, values)
        if left is None or right is None:
            return None
        return _ARITHMETIC[type(node.op)](left, right)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, values)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _eval(comparator, values)
            if left is None or right is None:
                return False
            if isinstance(op, ast.In | ast.NotIn) and not isinstance(right, list | tuple | str):
                right = [right]
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        return FUNCTIONS[node.func.id](*(_eval(a, values) for a in node.args))
    raise ExpressionError(f"cannot evaluate {type(node).__name__}")  # pragma: no cover


# The tree a browser interprets to re-evaluate show_if and end_if as the patient answers, so the
# page and the server share one parser and the browser only walks the node kinds listed here.
_COMPARE_NAMES: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
_ARITHMETIC_NAMES: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
}
_UNARY_NAMES: dict[type[ast.unaryop], str] = {ast.Not: "not", ast.USub: "-", ast.UAdd: "+"}


def expression_tree(expression: Expression) -> dict[str, Any]:
    """The expression as a JSON-able tree of nodes, each ``{"k": kind, …}``:

    - ``const`` ``v`` (a number, text, true/false or null; a number JSON cannot hold, such as
      ``1e999``, is given as text in ``num`` instead: "Infinity", "-Infinity" or "NaN")
    - ``name`` ``n``; ``list`` ``items``; ``call`` ``f`` ``args``
    - ``and`` / ``or`` ``args``; ``unary`` ``op`` ("not", "-", "+") ``arg``
    - ``bin`` ``op`` ("+", "-", "*", "/") ``l`` ``r``
    - ``cmp`` ``l`` ``ops`` ``rs``: a chain ``l ops[0] rs[0] ops[1] rs[1] …``
    """
    return _tree(expression.tree.body)


def _tree(node: ast.AST) -> dict[str, Any]:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, float) and not math.isfinite(value):
            spelled = "NaN" if math.isnan(value) else ("-" if value < 0 else "") + "Infinity"
            return {"k": "const", "num": spelled}
        return {"k": "const", "v": value}
    if isinstance(node, ast.Name):
        return {"k": "name", "n": node.id}
    if isinstance(node, ast.List | ast.Tuple):
        return {"k": "list", "items": [_tree(e) for e in node.elts]}
    if isinstance(node, ast.BoolOp):
        kind = "and" if isinstance(node.op, ast.And) else "or"
        return {"k": kind, "args": [_tree(v) for v in node.values]}
    if isinstance(node, ast.UnaryOp):
        return {"k": "unary", "op": _UNARY_NAMES[type(node.op)], "arg": _tree(node.operand)}
    if isinstance(node, ast.BinOp):
        op = _ARITHMETIC_NAMES[type(node.op)]
        return {"k": "bin", "op": op, "l": _tree(node.left), "r": _tree(node.right)}
    if isinstance(node, ast.Compare):
        return {
            "k": "cmp",
            "l": _tree(node.left),
            "ops": [_COMPARE_NAMES[type(op)] for op in node.ops],
            "rs": [_tree(c) for c in node.comparators],
        }
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        return {"k": "call", "f": node.func.id, "args": [_tree(a) for a in node.args]}
    raise ExpressionError(f"cannot express {type(node).__name__}")  # pragma: no cover
