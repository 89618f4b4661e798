"""alert: resolved, by whom, when, and what was done (the workbench closes alerts with a note)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.db

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert") as batch:
        batch.add_column(sa.Column("resolved_at", core.db.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("resolved_by", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True)
        )
        batch.add_column(
            sa.Column(
                "resolution_note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True
            )
        )


def downgrade() -> None:
    op.execute("UPDATE alert SET status = 'acknowledged' WHERE status = 'resolved'")
    with op.batch_alter_table("alert") as batch:
        batch.drop_column("resolution_note")
        batch.drop_column("resolved_by")
        batch.drop_column("resolved_at")
