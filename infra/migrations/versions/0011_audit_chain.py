"""audit_entry: append-only HMAC-SM3 chain (seq, prev_mac, mac) and a patient reference (SEC-2)

Existing entries are numbered in (at, id) order and chained under the configured audit key
(CAREPATH_AUDIT_KEY, or the ``audit_key`` Alembic attribute), so an upgraded database verifies.
On PostgreSQL a trigger then refuses UPDATE, DELETE and TRUNCATE on the table.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from types import SimpleNamespace

import sqlalchemy as sa
from alembic import context, op

from core.audit_chain import entry_mac, key_bytes
from core.db import UTCDateTime
from core.models.base import JSONType

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_entry is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$
"""


def _audit_key() -> bytes:
    configured = context.config.attributes.get("audit_key")
    if configured is None:
        from core.settings import get_settings

        configured = get_settings().audit_key.get_secret_value()
    return key_bytes(configured)


def _chain_existing() -> None:
    bind = op.get_bind()
    table = sa.table(
        "audit_entry",
        sa.column("id", sa.String),
        sa.column("seq", sa.Integer),
        sa.column("at", UTCDateTime),
        sa.column("actor_type", sa.String),
        sa.column("actor_id", sa.String),
        sa.column("action", sa.String),
        sa.column("target_type", sa.String),
        sa.column("target_id", sa.String),
        sa.column("patient_id", sa.String),
        sa.column("detail", JSONType),
        sa.column("prev_mac", sa.String),
        sa.column("mac", sa.String),
    )
    # Entries that are about a patient, or a patient's run or task, name the patient.
    bind.execute(
        sa.text("UPDATE audit_entry SET patient_id = target_id WHERE target_type = 'patient'")
    )
    for target_type, source in (("pathway_run", "pathway_run"), ("care_task", "care_task")):
        key_column = "workflow_id" if source == "pathway_run" else "id"
        bind.execute(
            sa.text(
                f"UPDATE audit_entry SET patient_id = (SELECT s.patient_id FROM {source} s "  # noqa: S608 - constants
                f"WHERE s.{key_column} = audit_entry.target_id) "
                f"WHERE target_type = '{target_type}' AND patient_id IS NULL"
            )
        )
    key = _audit_key()
    rows = bind.execute(sa.select(table).order_by(table.c.at, table.c.id)).mappings().all()
    prev = ""
    for seq, row in enumerate(rows, start=1):
        at = row["at"]
        if isinstance(at, datetime) and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        entry = SimpleNamespace(**{**row, "at": at, "seq": seq, "prev_mac": prev})
        entry.mac = entry_mac(key, entry)
        bind.execute(
            table.update()
            .where(table.c.id == row["id"])
            .values(seq=seq, prev_mac=prev, mac=entry.mac)
        )
        prev = entry.mac


def upgrade() -> None:
    with op.batch_alter_table("audit_entry") as batch_op:
        batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("patient_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("prev_mac", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("mac", sa.String(length=64), nullable=True))
    _chain_existing()
    with op.batch_alter_table("audit_entry") as batch_op:
        batch_op.alter_column("seq", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("prev_mac", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("mac", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_audit_entry_seq"), ["seq"])
        batch_op.create_index(batch_op.f("ix_audit_entry_patient_id"), ["patient_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_APPEND_ONLY_FUNCTION)
        op.execute(
            "CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_entry "
            "FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_entry_no_truncate BEFORE TRUNCATE ON audit_entry "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_entry_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_truncate ON audit_entry")
        op.execute("DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_entry")
        op.execute("DROP FUNCTION IF EXISTS audit_entry_append_only()")
    with op.batch_alter_table("audit_entry") as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entry_patient_id"))
        batch_op.drop_constraint(batch_op.f("uq_audit_entry_seq"), type_="unique")
        batch_op.drop_column("mac")
        batch_op.drop_column("prev_mac")
        batch_op.drop_column("patient_id")
        batch_op.drop_column("seq")
