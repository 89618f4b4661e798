"""What the documents people write (pathways, forms, templates) share: identifiers, and problems
named by their path, the way the author reads the document."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from pydantic import StringConstraints, ValidationError

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


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
