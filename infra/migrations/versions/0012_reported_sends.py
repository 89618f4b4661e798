"""blind index of the recipient on message attempts and delivery reports

WeChat has no lookup of sent template messages, but reports every send to our server URL
(TEMPLATESENDJOBFINISH, naming the recipient's openid). With the recipient's blind index on both
sides, a send whose answer was lost is recognised by its report instead of being sent again.
Attempts made before this revision have no index and are simply never matched.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("message_attempt", "delivery_report"):
        op.add_column(table, sa.Column("recipient_index", sa.String(length=64), nullable=True))
    op.create_index(
        "ix_message_attempt_recipient",
        "message_attempt",
        ["channel", "recipient_index", "status"],
    )
    op.create_index(
        "ix_delivery_report_recipient",
        "delivery_report",
        ["channel", "recipient_index", "received_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_report_recipient", table_name="delivery_report")
    op.drop_index("ix_message_attempt_recipient", table_name="message_attempt")
    for table in ("delivery_report", "message_attempt"):
        op.drop_column(table, "recipient_index")
