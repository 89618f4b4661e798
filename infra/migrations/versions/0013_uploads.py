"""upload: photos and signatures patients upload to answer forms

The bytes are kept outside the database, encrypted, under the upload directory; each row names
the task and question the file was uploaded for, so a submission can only use its own files.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.db

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "upload",
        sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("task_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("question_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("content_type", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["care_task.id"], name=op.f("fk_upload_task_id_care_task")
        ),
        sa.PrimaryKeyConstraint("reference", name=op.f("pk_upload")),
        sa.UniqueConstraint("task_id", "question_id", "digest", name="uq_upload_content"),
    )


def downgrade() -> None:
    op.drop_table("upload")
