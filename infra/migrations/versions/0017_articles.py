"""article_document, article_version: health education articles as versioned data with
approval before publishing (ED-5)

The platform's articles are written by the application at start-up (as its forms are).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.db
from core.models.base import JSONType

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(name: str, length: int, *, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "article_document",
        _text("id", 64),
        _text("title", 100),
        _text("owner", 16),
        _text("department_code", 32, nullable=True),
        _text("owner_staff_id", 64, nullable=True),
        sa.Column("published_version", sa.Integer(), nullable=True),
        _text("created_by", 64),
        sa.Column("created_at", core.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_article_document")),
    )
    op.create_index(
        op.f("ix_article_document_department_code"), "article_document", ["department_code"]
    )
    op.create_table(
        "article_version",
        _text("id", 36),
        _text("article_id", 64),
        sa.Column("version", sa.Integer(), nullable=False),
        _text("status", 16),
        sa.Column("body", JSONType, nullable=False),
        _text("created_by", 64),
        sa.Column("created_at", core.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", core.db.UTCDateTime(), nullable=False),
        sa.Column("submitted_at", core.db.UTCDateTime(), nullable=True),
        _text("reviewed_by", 64, nullable=True),
        sa.Column("reviewed_at", core.db.UTCDateTime(), nullable=True),
        _text("review_note", 500, nullable=True),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["article_document.id"],
            name=op.f("fk_article_version_article_id_article_document"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_article_version")),
        sa.UniqueConstraint("article_id", "version", name="uq_article_version_number"),
    )
    op.create_index(op.f("ix_article_version_article_id"), "article_version", ["article_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_article_version_article_id"), table_name="article_version")
    op.drop_table("article_version")
    op.drop_index(op.f("ix_article_document_department_code"), table_name="article_document")
    op.drop_table("article_document")
