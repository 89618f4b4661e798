"""Inbound webhooks signed with HMAC-SHA256 over timestamp and body (the HIS, the service
enterprises): authentication, size limit, and parsing with 422s that name the field."""

from __future__ import annotations

import time
from typing import Any, TypeVar

from fastapi import HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from core.logs import get_logger
from core.webhook_auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookAuthError, verify_webhook

log = get_logger(__name__)

MAX_BODY_BYTES = 256 * 1024
M = TypeVar("M", bound=BaseModel)

# The models of bodies read by hand (after the signature check), for the OpenAPI document.
_DECLARED: dict[str, type[BaseModel]] = {}


def signed_json(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads ``model`` with :func:`parse` after verifying the
    signature: the body is validated only once the sender is known, yet the published API says
    what it must be. :func:`declare_bodies` adds the schemas to the document."""
    _DECLARED[model.__name__] = model
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def declare_bodies(openapi: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with the schemas :func:`signed_json` refers to."""
    if not _DECLARED:
        return openapi
    _, top = models_json_schema(
        [(model, "validation") for model in _DECLARED.values()],
        ref_template="#/components/schemas/{model}",
    )
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in top.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    return openapi


async def signed_body(request: Request, secret: str, tolerance_seconds: int) -> bytes:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "event body too large")
    try:
        verify_webhook(
            secret=secret,
            timestamp=request.headers.get(TIMESTAMP_HEADER),
            signature=request.headers.get(SIGNATURE_HEADER),
            body=body,
            now=time.time(),
            tolerance_seconds=tolerance_seconds,
        )
    except WebhookAuthError as exc:
        log.warning("webhook refused", reason=str(exc), path=request.url.path)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from exc
    return body


def parse(model: type[M], body: bytes) -> M:
    """The body as ``model``, or a 422 whose ``loc`` names each offending field."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from exc
