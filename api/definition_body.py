"""The designers' documents (pathway and form definitions) as request bodies: JSON, or YAML for
people who write them in an editor, read by hand so that every problem is answered as the
designer's 422 (a list of problems at their paths) and the OpenAPI still documents the body."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time
from typing import Annotated, Any

import yaml
from fastapi import Depends, HTTPException, Request, status
from pydantic import BaseModel

from api.schemas import FieldError
from pathways.definition import PathProblem

# The largest library definition is a few kilobytes.
MAX_DEFINITION_BYTES = 256 * 1024


class DefinitionProblems(BaseModel):
    """A 422 from a designer: problems in the definition, each named by its path in the
    document (``steps[2].offset``); a bad path or query parameter is a FastAPI field error."""

    detail: list[PathProblem] | list[FieldError]


class ValidationOut(BaseModel):
    valid: bool
    problems: list[PathProblem]


PROBLEMS_RESPONSE: dict[int | str, dict[str, Any]] = {
    422: {"model": DefinitionProblems, "description": "Invalid definition or field"}
}


def definition_openapi(what: str, schema_path: str) -> dict[str, Any]:
    """The request body as the published API documents it."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "description": f"a {what} definition, as GET {schema_path} describes",
                    }
                },
                "application/yaml": {"schema": {"type": "object"}},
            },
        }
    }


def _problem(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT, [{"path": "(document)", "message": message}]
    )


async def _capped(request: Request) -> bytes:
    too_large = HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "definition too large")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_DEFINITION_BYTES:
        raise too_large
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_DEFINITION_BYTES:
            raise too_large
    return bytes(raw)


def _iso(value: Any) -> str:
    if isinstance(value, date | datetime | time):
        return value.isoformat()
    raise TypeError(type(value).__name__)


# What no one types and PostgreSQL refuses in text (NUL) or cannot store (a lone surrogate).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_DEPTH = 32


def _unstorable(value: Any, depth: int = 0) -> str | None:
    """Why the document cannot be stored as it is, or None: checked here because a draft is
    kept before it is valid, so the model's own checks do not guard the database."""
    if depth > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        if _CONTROL.search(value):
            return "text holds control characters"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "text is not valid Unicode"
        return None
    items: list[Any] = []
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    for item in items:
        found = _unstorable(item, depth + 1)
        if found is not None:
            return found
    return None


async def definition_body(request: Request) -> dict[str, Any]:
    """The request body as a definition: JSON, or YAML (application/yaml, text/yaml)."""
    raw = await _capped(request)
    kind = request.headers.get("content-type", "application/json")
    try:
        data = yaml.safe_load(raw) if "yaml" in kind else json.loads(raw or b"{}")
    # RecursionError: nesting deeper than the parser goes is not a definition either.
    except (ValueError, yaml.YAMLError, RecursionError) as exc:
        raise _problem(f"not valid {'YAML' if 'yaml' in kind else 'JSON'}") from exc
    if not isinstance(data, dict):
        raise _problem("a definition is a mapping")
    try:
        # As JSON stores it: YAML's dates become ISO text (what the models read), and what JSON
        # cannot hold (a date as a key, NaN) is refused here rather than by the database.
        stored: dict[str, Any] = json.loads(json.dumps(data, default=_iso, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:
        raise _problem("not representable as JSON (keys must be text; no NaN or infinity)") from exc
    unstorable = _unstorable(stored)
    if unstorable is not None:
        raise _problem(unstorable)
    return stored


BodyDep = Annotated[dict[str, Any], Depends(definition_body)]
