"""upload: a file may answer a home-nursing order (the patient's drawn signature) instead of a
care task's form; nursing_order.consent_signature, never written, goes (the consent is accepted
by its audited version)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 16:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Portable (SQLite has no num_nonnulls): exactly one of the two owners.
ONE_OWNER = "(task_id IS NULL) <> (nursing_order_id IS NULL)"


def upgrade() -> None:
    with op.batch_alter_table("nursing_order") as batch:
        batch.drop_column("consent_signature")
    with op.batch_alter_table("upload") as batch:
        batch.add_column(
            sa.Column(
                "nursing_order_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True
            )
        )
        batch.alter_column("task_id", existing_type=sa.String(length=36), nullable=True)
        batch.create_foreign_key(
            op.f("fk_upload_nursing_order_id_nursing_order"),
            "nursing_order",
            ["nursing_order_id"],
            ["id"],
        )
        batch.create_index(op.f("ix_upload_nursing_order_id"), ["nursing_order_id"])
        batch.create_unique_constraint(
            "uq_upload_nursing_content", ["nursing_order_id", "question_id", "digest"]
        )
        batch.create_check_constraint(op.f("ck_upload_one_owner"), ONE_OWNER)


def downgrade() -> None:
    op.execute("DELETE FROM upload WHERE task_id IS NULL")
    with op.batch_alter_table("upload") as batch:
        batch.drop_constraint(op.f("ck_upload_one_owner"), type_="check")
        batch.drop_constraint("uq_upload_nursing_content", type_="unique")
        batch.drop_index(op.f("ix_upload_nursing_order_id"))
        batch.drop_constraint(
            op.f("fk_upload_nursing_order_id_nursing_order"), type_="foreignkey"
        )
        batch.alter_column("task_id", existing_type=sa.String(length=36), nullable=False)
        batch.drop_column("nursing_order_id")
    with op.batch_alter_table("nursing_order") as batch:
        batch.add_column(
            sa.Column(
                "consent_signature", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True
            )
        )
