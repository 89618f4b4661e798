"""structlog set-up, done once per process, with masking of patient identifiers.

Every record, ours or a library's through stdlib logging, passes the masking processor before it
is rendered, so a phone number in an httpx URL or a name in an exception message is masked too.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import structlog

# Mainland mobile numbers, optionally with the +86/86 country code.
_PHONE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?(1[3-9]\d)[- ]?(\d{4})[- ]?(\d{4})(?!\d)")
# Resident identity card numbers (18 characters, last may be X).
_ID_CARD = re.compile(r"(?<![0-9A-Za-z])(\d{4})\d{10}(\d{3}[\dXx])(?![0-9A-Za-z])")
# Patient link tokens are credentials: anyone holding one can answer that patient's form.
_LINK_TOKEN = re.compile(r"(/p/)[A-Za-z0-9_-]{20,}")
# Keys whose values are personal names wherever they appear in an event.
NAME_KEYS = frozenset(
    {"name", "patient_name", "full_name", "contact_name", "family_name", "receiver_name"}
)


def mask_name(value: str) -> str:
    """Keep the surname's first character, as Chinese forms do: 张三 -> 张*, 欧阳娜娜 -> 欧***."""
    value = value.strip()
    if len(value) <= 1:
        return "*" if value else value
    return value[0] + "*" * (len(value) - 1)


def mask_text(value: str) -> str:
    value = _PHONE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", value)
    value = _LINK_TOKEN.sub(r"\1<token>", value)
    return _ID_CARD.sub(lambda m: f"{m.group(1)}{'*' * 10}{m.group(2)}", value)


def _mask(value: Any, key: str | None = None) -> Any:
    if isinstance(value, str):
        if key in NAME_KEYS:
            return mask_name(value)
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: _mask(v, k if isinstance(k, str) else None) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask(v) for v in value]
    return value


def mask_pii(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: masks names by key and phone/ID numbers anywhere in strings."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _mask(value, key)
    return event_dict


def _format_exception_then_mask(
    logger: Any, name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # Tracebacks carry argument values; render them to text first so the masking sees them.
    event_dict = structlog.processors.format_exc_info(logger, name, event_dict)
    return mask_pii(logger, name, event_dict)


_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.stdlib.ExtraAdder(),
]


def _formatter(*, json: bool) -> logging.Formatter:
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _format_exception_then_mask,
            renderer,
        ],
    )


class _ConsoleHandler(logging.StreamHandler[Any]):
    """The handler configure_logging installs; a later call replaces it and leaves others."""


def file_handler(path: Path) -> logging.Handler:
    """JSON lines through the same masking, appended to a file (e.g. for a log shipper)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(_formatter(json=True))
    return handler


def configure_logging(*, json: bool, level: str = "INFO") -> None:
    """Route structlog and stdlib logging through one masked pipeline. Idempotent."""
    structlog.configure(
        processors=[
            *_SHARED,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = _ConsoleHandler(sys.stderr)
    handler.setFormatter(_formatter(json=json))
    root = logging.getLogger()
    root.handlers[:] = [*(h for h in root.handlers if not isinstance(h, _ConsoleHandler)), handler]
    root.setLevel(level.upper())
    # httpx logs every request at INFO; our own code logs what matters about outbound calls.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # The Twilio SDK logs every request's headers at INFO.
    logging.getLogger("twilio").setLevel(logging.WARNING)
    # uvicorn installs its own handlers; send its records through ours instead, at our level
    # (its own config pins them to INFO). `--no-access-log` leaves the access logger without
    # handlers or propagation: it stays off, since every request would otherwise cost a record.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lib_logger = logging.getLogger(name)
        if name == "uvicorn.access" and not lib_logger.handlers and not lib_logger.propagate:
            continue
        lib_logger.handlers.clear()
        lib_logger.propagate = True
        lib_logger.setLevel(logging.NOTSET)


def get_logger(name: str | None = None) -> Any:
    return structlog.stdlib.get_logger(name)
