"""What the documents people write (pathways, forms, templates) share: identifiers, and problems
named by their path, the way the author reads the document."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time
from typing import Annotated, TypeVar

from annotated_types import Ge, Le
from pydantic import (
    AfterValidator,
    AllowInfNan,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]

# Text that enters from outside. pydantic already refuses lone surrogates (they are not valid
# Unicode); these patterns refuse control characters, which PostgreSQL refuses in text (NUL) and
# which no person types. Each type carries a max_length; a field may tighten it with Field().
# One line: no control characters at all (names, codes, identifiers in paths and queries).
# These carry a default maximum, which overrides a limit given as the field's default value:
# write a narrower or wider one as Annotated[Line, Field(max_length=...)] (tests/unit/
# test_field_limits.py keeps ``x: Line = Field(max_length=...)`` out of the tree).
Line = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
# Free text (reasons, notes, questions, message bodies): tab and line breaks allowed.
Text = Annotated[
    str, StringConstraints(max_length=4000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")
]
# An identifier in a path or query (ids, codes, workflow ids): one non-empty line.
Key = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
]
# An identifier another system gave (HIS order numbers and patient ids, hospital codes): it is
# put into that system's URLs, so letters, digits and . _ - only, never starting with a dot.
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]

# What PostgreSQL's integer column holds; larger numbers are refused before they reach it.
INT32_MAX = 2**31 - 1
# A position or count a client sends (offsets, versions, indexes, rounds).
Count = Annotated[int, Ge(0), Le(INT32_MAX)]
Version = Annotated[int, Ge(1), Le(INT32_MAX)]
# Numbers a client fills in (template variables): exact in JSON everywhere, and finite.
Int53 = Annotated[int, Ge(-(2**53)), Le(2**53)]
Real = Annotated[float, AllowInfNan(False)]

# Dates people enter or filter by: the platform has no data before 2000, and a date after
# 2099 is a typo. Anything outside is refused where it enters, never stored or looked up.
EARLIEST_YEAR, LATEST_YEAR = 2000, 2099
SANE_WINDOW = f"between {EARLIEST_YEAR}-01-01 and {LATEST_YEAR}-12-31"
_D = TypeVar("_D", date, datetime)


def _in_window(value: _D) -> _D:
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"must be {SANE_WINDOW}")
    return value


SaneDate = Annotated[date, AfterValidator(_in_window), Field(description=f"a date {SANE_WINDOW}")]
SaneDateTime = Annotated[
    datetime, AfterValidator(_in_window), Field(description=f"a time {SANE_WINDOW}")
]


def _local(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("a local time in the hospital's zone, without an offset")
    return value


# A wall-clock time in the hospital's zone. JSON Schema's "time" format demands an offset, which
# this never has; the schema says what is really accepted and sent.
LocalTime = Annotated[
    time,
    AfterValidator(_local),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$",
            "description": "HH:MM[:SS], local time",
        }
    ),
]


class LibraryError(ValueError):
    """The shipped library does not load; ``problems`` lists each as 'file: path: reason'."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def error_path(loc: Iterable[int | str]) -> str:
    """('steps', 2, 'offset') -> 'steps[2].offset'."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "(document)"


def describe_validation_error(exc: ValidationError) -> list[str]:
    return [f"{error_path(e['loc'])}: {e['msg']}" for e in exc.errors()]
