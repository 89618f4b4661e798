"""upload: a file may also be an enrolment candidate's signed informed consent (the patient's
signature drawn on the care manager's tablet, or a photo of the signed paper form); still exactly
one owner per file

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03 20:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TWO_OWNERS = "(task_id IS NULL) <> (nursing_order_id IS NULL)"
# Portable (SQLite has no num_nonnulls): exactly one of the three owners.
ONE_OWNER = (
    "(CASE WHEN task_id IS NULL THEN 0 ELSE 1 END"
    " + CASE WHEN nursing_order_id IS NULL THEN 0 ELSE 1 END"
    " + CASE WHEN enrollment_candidate_id IS NULL THEN 0 ELSE 1 END) = 1"
)


def upgrade() -> None:
    with op.batch_alter_table("upload") as batch:
        batch.add_column(
            sa.Column(
                "enrollment_candidate_id",
                sqlmodel.sql.sqltypes.AutoString(length=36),
                nullable=True,
            )
        )
        batch.create_foreign_key(
            op.f("fk_upload_enrollment_candidate_id_enrollment_candidate"),
            "enrollment_candidate",
            ["enrollment_candidate_id"],
            ["id"],
        )
        batch.create_index(op.f("ix_upload_enrollment_candidate_id"), ["enrollment_candidate_id"])
        batch.create_unique_constraint(
            "uq_upload_consent_content", ["enrollment_candidate_id", "question_id", "digest"]
        )
        batch.drop_constraint(op.f("ck_upload_one_owner"), type_="check")
        batch.create_check_constraint(op.f("ck_upload_one_owner"), ONE_OWNER)


def downgrade() -> None:
    op.execute("DELETE FROM upload WHERE enrollment_candidate_id IS NOT NULL")
    with op.batch_alter_table("upload") as batch:
        batch.drop_constraint(op.f("ck_upload_one_owner"), type_="check")
        batch.create_check_constraint(op.f("ck_upload_one_owner"), TWO_OWNERS)
        batch.drop_constraint("uq_upload_consent_content", type_="unique")
        batch.drop_index(op.f("ix_upload_enrollment_candidate_id"))
        batch.drop_constraint(
            op.f("fk_upload_enrollment_candidate_id_enrollment_candidate"), type_="foreignkey"
        )
        batch.drop_column("enrollment_candidate_id")
