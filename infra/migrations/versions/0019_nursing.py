"""nursing_item, nursing_nurse, nursing_order: home nursing (互联网+护理服务, NUR-1..3)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 14:01:38.289701
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.db
from core.models.base import JSONType

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "nursing_item",
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("price_fen", sa.Integer(), nullable=False),
        sa.Column("visit_fee_fen", sa.Integer(), nullable=False),
        sa.Column("expected_minutes", sa.Integer(), nullable=False),
        sa.Column("qualification", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("assessment_form", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("updated_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_nursing_item")),
    )
    op.create_table(
        "nursing_nurse",
        sa.Column("staff_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("qualifications", JSONType, nullable=False),
        sa.Column("head_nurse", sa.Boolean(), nullable=False),
        sa.Column("on_duty", sa.Boolean(), nullable=False),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("updated_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff_user.id"], name=op.f("fk_nursing_nurse_staff_id_staff_user")
        ),
        sa.PrimaryKeyConstraint("staff_id", name=op.f("pk_nursing_nurse")),
    )
    op.create_table(
        "nursing_order",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("workflow_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("patient_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("item_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("department_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("price_fen", sa.Integer(), nullable=False),
        sa.Column("visit_fee_fen", sa.Integer(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("visit_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("nurse_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("payment_order_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("refund_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("refunded_fen", sa.Integer(), nullable=False),
        sa.Column("consent_signature", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("patient_signature", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("assessment", sa.Text(), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("rating_comment", sa.Text(), nullable=True),
        sa.Column("steps", sa.Text(), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["item_code"],
            ["nursing_item.code"],
            name=op.f("fk_nursing_order_item_code_nursing_item"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_nursing_order_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nursing_order")),
        sa.UniqueConstraint("workflow_id", name=op.f("uq_nursing_order_workflow_id")),
    )
    with op.batch_alter_table("nursing_order", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nursing_order_item_code"), ["item_code"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_nursing_order_department_code"), ["department_code"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_nursing_order_nurse_id"), ["nurse_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_nursing_order_patient_id"), ["patient_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_nursing_order_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("nursing_order", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nursing_order_status"))
        batch_op.drop_index(batch_op.f("ix_nursing_order_patient_id"))
        batch_op.drop_index(batch_op.f("ix_nursing_order_nurse_id"))
        batch_op.drop_index(batch_op.f("ix_nursing_order_item_code"))
        batch_op.drop_index(batch_op.f("ix_nursing_order_department_code"))

    op.drop_table("nursing_order")
    op.drop_table("nursing_nurse")
    op.drop_table("nursing_item")
