"""The audit trail's HMAC-SM3 chain (SEC-2): append-only, each entry keyed to the one before.

Every ``AuditEntry`` added to a session, however it was built (``services.audit.record`` or a
direct ``session.add``), is numbered and chained when the session flushes, in a ``before_flush``
hook: take the chain lock, read the head, then give each new entry ``seq = head + 1, ...``,
``prev_mac = head's mac`` and ``mac = HMAC-SM3(key, canonical(entry))``. Doing it at flush time
keeps ``record(...)`` a cheap synchronous call in the caller's transaction, so its many callers
stay as they are, and holds the lock only from the flush to the commit.

The lock keeps one chain when transactions append at once: on PostgreSQL a transaction-scoped
advisory lock (released at commit or rollback), on SQLite a no-op write that takes the
database's single write lock before the head is read. ``seq`` is also unique, so a fork that
slipped past the lock would fail to commit rather than go unnoticed.

Entries are never changed or deleted through the ORM (``AuditAppendOnly``); on PostgreSQL a
trigger refuses UPDATE, DELETE and TRUNCATE (migration 0011). ``verify`` finds what someone with
the power to get past both did anyway: an edited entry, a deleted one (a gap, or a link to an
entry that is gone), entries put in another order, an entry inserted.
"""

from __future__ import annotations

import hmac as std_hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, hmac
from sqlalchemy import event
from sqlalchemy.orm import Session

from core.models.operations import AuditEntry

FORMAT = "carepath-audit-v1"
# pg_advisory_xact_lock key: the ASCII of "CPAUDIT1" as a signed 64-bit integer.
ADVISORY_LOCK_KEY = int.from_bytes(b"CPAUDIT1", "big", signed=True)
INFO_KEY = "audit_key"


class AuditAppendOnly(Exception):
    """An audit entry was changed or deleted through the ORM."""


class ChainFields(Protocol):
    id: str
    seq: int | None
    at: datetime
    actor_type: str
    actor_id: str | None
    action: str
    target_type: str
    target_id: str
    patient_id: str | None
    detail: dict[str, Any]
    prev_mac: str
    mac: str


def _plain(value: Any) -> Any:
    """JSON values as they come back from either backend: PostgreSQL's jsonb stores numbers as
    numerics, so an integral float (2.0) returns as an int (2)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _timestamp(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(entry: ChainFields) -> bytes:
    """The bytes the MAC covers: a JSON array, keys sorted, no spaces, UTF-8."""
    fields = [
        FORMAT,
        entry.seq,
        entry.id,
        _timestamp(entry.at),
        entry.actor_type,
        entry.actor_id,
        entry.action,
        entry.target_type,
        entry.target_id,
        entry.patient_id,
        _plain(entry.detail or {}),
        entry.prev_mac,
    ]
    text = json.dumps(
        fields, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
    )
    return text.encode("utf-8")


def entry_mac(key: bytes, entry: ChainFields) -> str:
    mac = hmac.HMAC(key, hashes.SM3())
    mac.update(canonical(entry))
    return mac.finalize().hex()


def key_bytes(key: str | bytes) -> bytes:
    return key if isinstance(key, bytes) else key.encode("utf-8")


def _session_key(session: Session) -> bytes:
    key = session.info.get(INFO_KEY)
    if key is None:
        # A session factory built without settings (scripts, some tests): the process's own.
        from core.settings import get_settings

        key = get_settings().audit_key.get_secret_value()
    return key_bytes(key)


def lock_chain(connection: sa.Connection) -> None:
    """Serialises appenders until the transaction ends; call before reading the head."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
        )
    elif dialect == "sqlite":
        # Any write statement takes SQLite's one write lock for the rest of the transaction.
        connection.execute(sa.text("UPDATE audit_entry SET seq = seq WHERE 0"))
    else:  # pragma: no cover - only the two supported backends
        raise NotImplementedError(dialect)


def chain_head(connection: sa.Connection) -> tuple[int, str]:
    row = connection.execute(
        sa.text("SELECT seq, mac FROM audit_entry ORDER BY seq DESC LIMIT 1")
    ).first()
    return (int(row[0]), str(row[1])) if row is not None else (0, "")


@event.listens_for(Session, "before_flush")
def _chain_new_entries(session: Session, _context: Any, _instances: Any) -> None:
    for obj in session.deleted:
        if isinstance(obj, AuditEntry):
            raise AuditAppendOnly(f"audit entry {obj.id} cannot be deleted")
    for obj in session.dirty:
        if isinstance(obj, AuditEntry) and session.is_modified(obj):
            raise AuditAppendOnly(f"audit entry {obj.id} cannot be changed")
    pending = [o for o in session.new if isinstance(o, AuditEntry) and o.seq is None]
    if not pending:
        return
    key = _session_key(session)
    connection = session.connection()
    lock_chain(connection)
    seq, prev = chain_head(connection)
    for entry in pending:
        seq += 1
        entry.seq = seq
        entry.prev_mac = prev
        # Stored as the backends give it back, so the MAC verifies after a round trip.
        entry.detail = _plain(json.loads(json.dumps(entry.detail or {})))
        entry.mac = entry_mac(key, entry)
        prev = entry.mac


# -- verification ------------------------------------------------------------------------------

MAX_BREAKS = 20


@dataclass
class Break:
    seq: int
    kind: str  # edited / deleted / reordered / inserted
    why: str
    # For a broken link: the MAC the entry says it follows, to find where that entry is now.
    follows_mac: str | None = None

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.kind}: {self.why}"

    def follows(self, found_at: int | None) -> None:
        """Names the break once we know where the entry it links to sits now, if anywhere."""
        if found_at is not None:
            self.kind = "reordered"
            self.why = f"it follows the entry now at seq {found_at}, not seq {self.seq - 1}"


@dataclass
class Verification:
    entries: int = 0
    head_seq: int = 0
    head_mac: str = ""
    breaks: list[Break] = field(default_factory=list)
    more_breaks: int = 0

    @property
    def intact(self) -> bool:
        return not self.breaks

    def add(self, found: Break) -> None:
        if len(self.breaks) < MAX_BREAKS:
            self.breaks.append(found)
        else:
            self.more_breaks += 1

    def summary(self) -> str:
        if self.intact:
            return (
                f"{self.entries} entries, chain intact "
                f"(head seq {self.head_seq}, mac {self.head_mac[:16] or '-'})"
            )
        first = self.breaks[0]
        lines = [
            f"{self.entries} entries, chain BROKEN at seq {first.seq} ({first.kind}): {first.why}"
        ]
        lines += [f"  also {b}" for b in self.breaks[1:]]
        if self.more_breaks:
            lines.append(f"  and {self.more_breaks} more")
        return "\n".join(lines)


class ChainWalker:
    """Checks entries fed one at a time in ``seq`` order (so a large trail can be streamed) and
    names each break: a gap in ``seq`` (deleted), an entry whose content does not match its MAC
    (edited; inserted when the next entry follows the same predecessor), an entry that follows
    something other than the entry before it (deleted with the later entries renumbered, or
    reordered: see ``Break.follows``)."""

    def __init__(self, key: str | bytes) -> None:
        self._key = key_bytes(key)
        self.result = Verification()
        self._expected_seq = 1
        self._prev_mac = ""
        self._pending: ChainFields | None = None

    def feed(self, row: ChainFields) -> None:
        if self._pending is not None:
            self._check(self._pending, row)
        self._pending = row

    def finish(self) -> Verification:
        if self._pending is not None:
            self._check(self._pending, None)
            self._pending = None
        return self.result

    def _check(self, row: ChainFields, following: ChainFields | None) -> None:
        result = self.result
        result.entries += 1
        seq = int(row.seq or 0)
        expected = self._expected_seq
        own_ok = std_hmac.compare_digest(entry_mac(self._key, row), row.mac)
        if seq > expected:
            gap = f"seq {expected}" + (f"-{seq - 1}" if seq > expected + 1 else "")
            result.add(Break(expected, "deleted", f"gap: {gap} missing"))
            if not own_ok:
                result.add(Break(seq, "edited", "its content does not match its MAC"))
        elif row.prev_mac != self._prev_mac:
            result.add(
                Break(
                    seq,
                    "deleted",
                    "the entry it follows is gone (later entries renumbered)",
                    follows_mac=row.prev_mac or None,
                )
            )
        elif not own_ok:
            if following is not None and following.prev_mac == row.prev_mac:
                why = f"not in the original chain: seq {seq + 1} follows the same entry"
                result.add(Break(seq, "inserted", why))
                # The original chain goes on from the predecessor; judge the next by it.
                self._expected_seq = seq + 1
                return
            result.add(Break(seq, "edited", "its content does not match its MAC"))
        self._expected_seq, self._prev_mac = seq + 1, row.mac
        result.head_seq, result.head_mac = seq, row.mac


def verify(rows: Iterable[ChainFields], key: str | bytes) -> Verification:
    walker = ChainWalker(key)
    for row in rows:
        walker.feed(row)
    return walker.finish()
