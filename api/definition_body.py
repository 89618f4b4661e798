"""The designers' documents (pathway and form definitions) as request bodies: JSON, or YAML for
people who write them in an editor, read by hand so that every problem is answered as the
designer's 422 (a list of problems at their paths) and the OpenAPI still documents the body."""

from __future__ import annotations

import json
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
    return data


BodyDep = Annotated[dict[str, Any], Depends(definition_body)]
