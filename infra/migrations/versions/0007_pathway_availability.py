"""pathways: suspend, resume and retire (new enrolments stop; running runs go on)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pathway") as batch_op:
        batch_op.add_column(
            sa.Column(
                "availability", sa.String(length=16), nullable=False, server_default="active"
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("pathway") as batch_op:
        batch_op.drop_column("availability")
