"""index for department staff's task lists: their department's tasks in a status, by due time
(issue 15: counting a department's pending tasks read every pending task of the hospital)

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04 23:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_care_task_department_status_due", "care_task", ["department_code", "status", "due_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_care_task_department_status_due", table_name="care_task")
