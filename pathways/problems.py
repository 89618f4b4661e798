"""How a problem in a designer's document is named: by its path, the way the designer reads it."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import ValidationError


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
