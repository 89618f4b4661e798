"""encryption at rest: personal data as SM4-GCM envelopes, blind indexes for lookups (SEC-4)

Adds the patient's ID-card number and address, the blind index columns, widens every encrypted
column to TEXT and converts the rows in place: plain values become envelopes (core/crypto.py)
and the blind indexes are computed. The keys are the process keyring if the caller configured
one, else the one the settings (CAREPATH_DATA_KEYS ...) describe. The downgrade decrypts back.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 10:00:00
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# table -> (primary key, [(column, "text" | "json", type before 0009, nullable)])
ENCRYPTED: dict[str, tuple[str, list[tuple[str, str, Any, bool]]]] = {
    "patient": (
        "id",
        [
            ("name", "text", sa.String(length=64), False),
            ("phone", "text", sa.String(length=32), False),
            ("id_number", "text", None, True),
            ("address", "text", None, True),
        ],
    ),
    "form_response": ("id", [("answers", "json", JSON_TYPE, False)]),
    "outbound_message": (
        "id",
        [
            ("recipient_phone", "text", sa.String(length=32), True),
            ("body", "text", sa.String(), False),
            ("variables", "json", JSON_TYPE, False),
            ("wechat_payload", "json", JSON_TYPE, True),
        ],
    ),
    "message_attempt": ("id", [("recipient", "text", sa.String(length=64), False)]),
    "prescription": ("id", [("delivery", "json", JSON_TYPE, False)]),
    "consultation": ("id", [("question", "text", sa.String(length=1000), False)]),
}
# (table, source column, index column, kind)
BLIND_INDEXES = [
    ("patient", "phone", "phone_index", "phone"),
    ("patient", "id_number", "id_number_index", "id_number"),
    ("outbound_message", "recipient_phone", "recipient_phone_index", "phone"),
]


def _keyring() -> Any:
    from core.crypto import KeyringNotConfigured, current_keyring, keyring_from_settings
    from core.settings import get_settings

    try:
        return current_keyring()
    except KeyringNotConfigured:
        return keyring_from_settings(get_settings())


def _convert(table_name: str, *, encrypt: bool) -> None:
    """Rewrites every row's encrypted columns: plain -> envelope (with the blind indexes of the
    plain values) on the way up, envelope -> plain on the way down."""
    pk, columns = ENCRYPTED[table_name]
    names = [c[0] for c in columns]
    indexes = [(src, idx, kind) for t, src, idx, kind in BLIND_INDEXES if t == table_name]
    table = sa.table(
        table_name,
        sa.column(pk, sa.Text()),
        *(sa.column(n, sa.Text()) for n in names),
        *(sa.column(idx, sa.Text()) for _, idx, _ in indexes),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(table.c[pk], *(table.c[n] for n in names))).all()
    if not rows:
        return
    keyring = _keyring()
    convert = _encrypt if encrypt else _decrypt
    for row in rows:
        values = {
            name: convert(keyring, kind, f"{table_name}.{name}", getattr(row, name))
            for name, kind, _, _ in columns
        }
        if encrypt:
            for src, idx, kind in indexes:
                values[idx] = keyring.blind_index(kind, getattr(row, src))
        bind.execute(table.update().where(table.c[pk] == getattr(row, pk)).values(**values))


def _encrypt(keyring: Any, kind: str, context: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "json":
        parsed = json.loads(value) if isinstance(value, str) else value
        if parsed is None:
            return None
        value = json.dumps(parsed, ensure_ascii=False, separators=(",", ":"))
    return keyring.encrypt(value, context)


def _decrypt(keyring: Any, kind: str, context: str, value: Any) -> Any:  # noqa: ARG001
    if value is None:
        return None
    return keyring.decrypt(value, context)


def _foreign_keys_on_sqlite(dialect: str, on: bool) -> None:
    # Widening a column rebuilds the table on SQLite (copy, drop, rename), and dropping a table
    # other rows refer to fails an immediate foreign key check; the rebuilt table is back under
    # its name before anything reads it. Outside a transaction foreign_keys can be switched off;
    # inside one (a fresh database migrated from base) only deferring them works.
    if dialect != "sqlite":
        return
    op.execute(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")
    if not on:
        op.execute("PRAGMA defer_foreign_keys = ON")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _foreign_keys_on_sqlite(dialect, on=False)
    with op.batch_alter_table("patient") as batch_op:
        batch_op.add_column(sa.Column("id_number", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("address", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("phone_index", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("id_number_index", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_patient_phone_index", ["phone_index"], unique=False)
        batch_op.create_index("ix_patient_id_number_index", ["id_number_index"], unique=False)
    with op.batch_alter_table("outbound_message") as batch_op:
        batch_op.drop_index("ix_outbound_message_recipient_phone")
        batch_op.add_column(
            sa.Column("recipient_phone_index", sa.String(length=64), nullable=True)
        )
        batch_op.create_index(
            "ix_outbound_message_recipient_phone_index", ["recipient_phone_index"], unique=False
        )
    for table_name, (_, columns) in ENCRYPTED.items():
        with op.batch_alter_table(table_name) as batch_op:
            for name, kind, before, nullable in columns:
                if before is None:
                    continue
                extra: dict[str, Any] = {}
                if kind == "json" and dialect == "postgresql":
                    extra["postgresql_using"] = f"{name}::text"
                batch_op.alter_column(
                    name,
                    existing_type=before,
                    type_=sa.Text(),
                    existing_nullable=nullable,
                    # A plain '{}' default would not decrypt.
                    server_default=None,
                    **extra,
                )
    for table_name in ENCRYPTED:
        _convert(table_name, encrypt=True)
    _foreign_keys_on_sqlite(dialect, on=True)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    _foreign_keys_on_sqlite(dialect, on=False)
    for table_name in ENCRYPTED:
        _convert(table_name, encrypt=False)
    for table_name, (_, columns) in ENCRYPTED.items():
        with op.batch_alter_table(table_name) as batch_op:
            for name, kind, before, nullable in columns:
                if before is None:
                    continue
                extra: dict[str, Any] = {}
                if kind == "json" and dialect == "postgresql":
                    extra["postgresql_using"] = f"{name}::jsonb"
                if table_name == "outbound_message" and name == "variables":
                    extra["server_default"] = "{}"
                batch_op.alter_column(
                    name,
                    existing_type=sa.Text(),
                    type_=before,
                    existing_nullable=nullable,
                    **extra,
                )
    with op.batch_alter_table("outbound_message") as batch_op:
        batch_op.drop_index("ix_outbound_message_recipient_phone_index")
        batch_op.drop_column("recipient_phone_index")
        batch_op.create_index(
            "ix_outbound_message_recipient_phone", ["recipient_phone"], unique=False
        )
    with op.batch_alter_table("patient") as batch_op:
        batch_op.drop_index("ix_patient_id_number_index")
        batch_op.drop_index("ix_patient_phone_index")
        batch_op.drop_column("id_number_index")
        batch_op.drop_column("phone_index")
        batch_op.drop_column("address")
        batch_op.drop_column("id_number")
    _foreign_keys_on_sqlite(dialect, on=True)
