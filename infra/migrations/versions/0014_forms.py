"""form_document, form_version: forms as versioned data, authored or shipped; form_draft: a
patient's half-filled form

Library forms are written by the application at start-up (as pathways are), so this revision
creates the tables only. A draft's answers are encrypted as the submitted ones are.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.db
from core.models.base import JSONType

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "form_document",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("department_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("ward", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("library", sa.Boolean(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_form_document")),
    )
    op.create_index(op.f("ix_form_document_department_code"), "form_document", ["department_code"])
    op.create_table(
        "form_version",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("form_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("body", JSONType, nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", core.db.UTCDateTime(), nullable=False),
        sa.Column("published_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("published_at", core.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["form_id"], ["form_document.id"], name=op.f("fk_form_version_form_id_form_document")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_form_version")),
        sa.UniqueConstraint("form_id", "version", name="uq_form_version_number"),
    )
    op.create_index(op.f("ix_form_version_form_id"), "form_version", ["form_id"])
    op.create_table(
        "form_draft",
        sa.Column("task_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("answers", sa.Text(), nullable=False),
        sa.Column("saved_at", core.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["care_task.id"], name=op.f("fk_form_draft_task_id_care_task")
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_form_draft")),
    )


def downgrade() -> None:
    op.drop_table("form_draft")
    op.drop_index(op.f("ix_form_version_form_id"), table_name="form_version")
    op.drop_table("form_version")
    op.drop_index(op.f("ix_form_document_department_code"), table_name="form_document")
    op.drop_table("form_document")
