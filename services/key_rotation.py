"""Re-encryption under the current data key (SEC-4), for the key-rotation workflow.

Works on the raw envelopes, never on decrypted rows: every column whose type is an encrypted
one (core/crypto.py) is found from the models' metadata, so a column encrypted later is rotated
without changes here. A row is rewritten only if its envelopes are still the ones read
(compare-and-set), so a write by the application in between is never overwritten with older
data; the row is simply found again by the next batch if it still needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

import core.models  # noqa: F401  (registers every table on the metadata)
from core.crypto import ENVELOPE_VERSION, CryptoError, EncryptedJSON, EncryptedText, Keyring


class UnreadableValue(Exception):
    """A stored value that no configured key opens (a key was removed too early, or the value
    was tampered with)."""


@dataclass(frozen=True)
class EncryptedTable:
    name: str
    primary_key: str
    # column name -> its associated-data context ("table.column")
    columns: dict[str, str]

    def raw(self) -> sa.TableClause:
        """The table with every encrypted column as plain text: envelopes in, envelopes out."""
        return sa.table(
            self.name,
            sa.column(self.primary_key, sa.Text()),
            *(sa.column(name, sa.Text()) for name in self.columns),
        )


def encrypted_tables() -> list[EncryptedTable]:
    found = []
    for table in SQLModel.metadata.sorted_tables:
        columns = {
            c.name: c.type.context
            for c in table.columns
            if isinstance(c.type, EncryptedText | EncryptedJSON)
        }
        if columns:
            (pk,) = table.primary_key.columns.keys()
            found.append(EncryptedTable(table.name, pk, columns))
    return found


def _stale(table: EncryptedTable, raw: sa.TableClause, key_id: str) -> Any:
    current = f"{ENVELOPE_VERSION}:{key_id}:%"
    return sa.or_(
        *(sa.and_(raw.c[n].is_not(None), raw.c[n].not_like(current)) for n in table.columns)
    )


@dataclass(frozen=True)
class BatchOutcome:
    found: int  # rows that still carried an older key when the batch looked
    rewritten: int  # of them, rows rewritten under the current key


async def reencrypt_batch(session: AsyncSession, keyring: Keyring, limit: int) -> BatchOutcome:
    """Rewrites up to ``limit`` rows that hold a value sealed with a key other than the current
    one. Raises UnreadableValue naming the row when a value does not decrypt."""
    found = rewritten = 0
    for table in encrypted_tables():
        if found >= limit:
            break
        raw = table.raw()
        pk = raw.c[table.primary_key]
        rows = (
            await session.exec(
                select(pk, *(raw.c[n] for n in table.columns))
                .where(_stale(table, raw, keyring.current))
                .order_by(pk)
                .limit(limit - found)
            )
        ).all()
        for row in rows:
            found += 1
            old = {name: getattr(row, name) for name in table.columns}
            try:
                new = {
                    name: keyring.reencrypt(value, table.columns[name])
                    for name, value in old.items()
                    if value is not None
                }
            except CryptoError as exc:
                raise UnreadableValue(
                    f"{table.name} {getattr(row, table.primary_key)}: {exc}"
                ) from exc
            result = await session.exec(
                sa.update(raw)
                .where(
                    pk == getattr(row, table.primary_key),
                    *(raw.c[n].is_not_distinct_from(v) for n, v in old.items()),
                )
                .values(**new)
            )
            rewritten += result.rowcount
    return BatchOutcome(found=found, rewritten=rewritten)


async def rows_under_old_keys(session: AsyncSession, key_id: str) -> dict[str, int]:
    """Per table, how many rows still hold a value not sealed with ``key_id``."""
    counts = {}
    for table in encrypted_tables():
        raw = table.raw()
        result = await session.exec(
            select(sa.func.count()).select_from(raw).where(_stale(table, raw, key_id))
        )
        counts[table.name] = int(result.one())
    return counts
