"""encounter.care_steps: the steps of care the HIS says a visit or stay went through (SAT-2)

Existing encounters keep NULL: not reported, so every satisfaction question is asked of them,
as before.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.models.base import JSONType

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("encounter") as batch_op:
        batch_op.add_column(sa.Column("care_steps", JSONType, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("encounter") as batch_op:
        batch_op.drop_column("care_steps")
