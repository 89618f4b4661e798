"""message attempts: a provider message id that repeats is stored, not refused

A provider (or its simulator after a restart) may hand out an id it used before. Refusing the
row after the provider accepted the message made the send activity fail and send again; the id
is now indexed, not unique, and a report about it applies to the latest attempt that has it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 18:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message_attempt") as batch_op:
        batch_op.drop_constraint("uq_message_attempt_provider_id", type_="unique")
        batch_op.create_index(
            "ix_message_attempt_provider_id", ["channel", "provider_message_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("message_attempt") as batch_op:
        batch_op.drop_index("ix_message_attempt_provider_id")
        batch_op.create_unique_constraint(
            "uq_message_attempt_provider_id", ["channel", "provider_message_id"]
        )
