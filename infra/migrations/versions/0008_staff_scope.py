"""staff: ward, HIS staff number and data scope (SEC-1)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 21:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff_user") as batch_op:
        batch_op.add_column(sa.Column("ward", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("staff_code", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column(
                "data_scope", sa.String(length=16), nullable=False, server_default="department"
            )
        )
    # Accounts without a department have always seen the whole hospital.
    op.execute("UPDATE staff_user SET data_scope = 'organisation' WHERE department_code IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("staff_user") as batch_op:
        batch_op.drop_column("data_scope")
        batch_op.drop_column("staff_code")
        batch_op.drop_column("ward")
