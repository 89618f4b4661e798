"""complaint: complaints and praise as tracked cases (SAT-3), the projection of their workflows

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.db

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(name: str, length: int, *, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "complaint",
        _text("id", 36),
        _text("case_no", 32),
        _text("workflow_id", 200),
        _text("kind", 16),
        _text("source", 16),
        _text("category", 32),
        _text("patient_id", 36),
        _text("task_id", 36, nullable=True),
        _text("hospital_code", 32),
        _text("department_code", 32),
        sa.Column("summary", sa.Text(), nullable=False),
        _text("status", 16),
        _text("escalation", 32),
        _text("opened_by", 64),
        sa.Column("opened_at", core.db.UTCDateTime(), nullable=False),
        sa.Column("acknowledge_by", core.db.UTCDateTime(), nullable=True),
        sa.Column("resolve_by", core.db.UTCDateTime(), nullable=True),
        sa.Column("acknowledged_at", core.db.UTCDateTime(), nullable=True),
        sa.Column("resolved_at", core.db.UTCDateTime(), nullable=True),
        sa.Column("closed_at", core.db.UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("rating_stars", sa.Integer(), nullable=True),
        sa.Column("rating_comment", sa.Text(), nullable=True),
        sa.Column("steps", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", core.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_complaint_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["care_task.id"], name=op.f("fk_complaint_task_id_care_task")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaint")),
        sa.UniqueConstraint("case_no", name=op.f("uq_complaint_case_no")),
        sa.UniqueConstraint("workflow_id", name=op.f("uq_complaint_workflow_id")),
    )
    op.create_index(op.f("ix_complaint_category"), "complaint", ["category"])
    op.create_index(op.f("ix_complaint_patient_id"), "complaint", ["patient_id"])
    op.create_index("ix_complaint_queue", "complaint", ["department_code", "status"])


def downgrade() -> None:
    op.drop_index("ix_complaint_queue", table_name="complaint")
    op.drop_index(op.f("ix_complaint_patient_id"), table_name="complaint")
    op.drop_index(op.f("ix_complaint_category"), table_name="complaint")
    op.drop_table("complaint")
