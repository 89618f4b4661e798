"""A field's own length limits hold. ``Line``, ``Text`` and ``Key`` carry a default maximum in
their constraints, which overrides a ``Field(max_length=...)`` given as the field's default
(``x: Line = Field(max_length=32)`` accepts 200 characters, and a column of 32 then fails at
insert: a 500). Written as ``Annotated[Line, Field(max_length=32)]`` the field's limit applies.
The source tree is checked for the first form, so it does not come back."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import BaseModel, Field, ValidationError

from core.validation import Line, Text

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [
    "api", "activities", "complaints", "contracts", "core", "exams", "infra", "integrations",
    "messaging", "nursing", "pathways", "prescriptions", "services", "simulators", "workers",
    "workflows",
]  # fmt: skip


class Limited(BaseModel):
    code: Annotated[Line, Field(max_length=5)]
    report: Annotated[Text, Field(max_length=6000)]


def test_a_fields_own_limit_applies_narrower_or_wider() -> None:
    with pytest.raises(ValidationError, match="code"):
        Limited(code="123456", report="x")
    assert len(Limited(code="12345", report="x" * 6000).report) == 6000
    with pytest.raises(ValidationError, match="report"):
        Limited(code="1", report="x" * 6001)


def _overridden(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.value, ast.Call):
            continue
        alias = node.annotation
        call = node.value
        if (
            isinstance(alias, ast.Name)
            and alias.id in ("Line", "Text", "Key")
            and isinstance(call.func, ast.Name)
            and call.func.id == "Field"
            and any(k.arg == "max_length" for k in call.keywords)
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_field_writes_its_limit_where_the_alias_overrides_it() -> None:
    offenders = [
        place
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for place in _overridden(path)
    ]
    assert offenders == [], "write these as Annotated[Line, Field(max_length=...)]"
