"""indexes for the staff lists' orders: open alerts newest first, runs newest first (issue 15:
with 20,000 open alerts each page sorted all of them)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04 00:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_alert_status_raised", "alert", ["status", "raised_at"])
    op.create_index("ix_pathway_run_started", "pathway_run", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_pathway_run_started", table_name="pathway_run")
    op.drop_index("ix_alert_status_raised", table_name="alert")
