"""exam_account, exam_booking, exam_vendor_item, exam_item_mapping, exam_result,
exam_result_hold, exam_dictionary_change, exam_message: the physical-exam integration (PX-1..8)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 13:35:02.890828
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.db
from core.models.base import JSONType

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # An exam process raises alerts without a care task.
    with op.batch_alter_table("alert") as batch:
        batch.alter_column("task_id", existing_type=sa.String(length=36), nullable=True)
    op.create_table(
        "exam_dictionary_change",
        sa.Column("message_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("change_type", sa.Integer(), nullable=False),
        sa.Column("items", JSONType, nullable=False),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("received_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("applied_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_exam_dictionary_change")),
    )
    op.create_table(
        "exam_item_mapping",
        sa.Column("vendor_code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("standard_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("mapped_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("mapped_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("vendor_code", name=op.f("pk_exam_item_mapping")),
    )
    op.create_table(
        "exam_message",
        sa.Column("message_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("interface", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("body_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("received_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_exam_message")),
    )
    op.create_table(
        "exam_vendor_item",
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("category_code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("category_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("unit", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("updated_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_exam_vendor_item")),
    )
    op.create_table(
        "exam_account",
        sa.Column("patient_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("account_no", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("consent_version", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("consented_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("consented_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_by_vendor", sa.Boolean(), nullable=False),
        sa.Column("bound_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_exam_account_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_exam_account")),
        sa.UniqueConstraint("account_no", name=op.f("uq_exam_account_account_no")),
    )
    op.create_table(
        "exam_booking",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("workflow_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("patient_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("department_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("account_no", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("exam_no", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("vendor_booking_no", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("exam_date", sa.Date(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("listed", JSONType, nullable=False),
        sa.Column("ticked", JSONType, nullable=False),
        sa.Column("booked_items", JSONType, nullable=False),
        sa.Column("review_by", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("last_code", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("last_message", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("guide", sa.Text(), nullable=True),
        sa.Column("guide_received_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("report", sa.Text(), nullable=True),
        sa.Column("conclusions", sa.Text(), nullable=False),
        sa.Column("report_received_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("abnormal_items", JSONType, nullable=False),
        sa.Column(
            "followup_workflow_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True
        ),
        sa.Column("requested_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_exam_booking_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exam_booking")),
        sa.UniqueConstraint("exam_no", name=op.f("uq_exam_booking_exam_no")),
        sa.UniqueConstraint("workflow_id", name=op.f("uq_exam_booking_workflow_id")),
    )
    with op.batch_alter_table("exam_booking", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exam_booking_account_no"), ["account_no"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_exam_booking_patient_id"), ["patient_id"], unique=False
        )

    op.create_table(
        "exam_result",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("exam_no", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("patient_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("vendor_code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("standard_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("unit", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("reference_range", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("abnormal", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("changed_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_exam_result_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exam_result")),
        sa.UniqueConstraint("exam_no", "vendor_code", name="uq_exam_result_item"),
    )
    with op.batch_alter_table("exam_result", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exam_result_exam_no"), ["exam_no"], unique=False)
        batch_op.create_index(batch_op.f("ix_exam_result_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "exam_result_hold",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("exam_no", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("patient_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("vendor_code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("vendor_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("change_type", sa.Integer(), nullable=False),
        sa.Column("item", sa.Text(), nullable=False),
        sa.Column("changed_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_exam_result_hold_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exam_result_hold")),
        sa.UniqueConstraint("exam_no", "vendor_code", name="uq_exam_hold_item"),
    )
    with op.batch_alter_table("exam_result_hold", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exam_result_hold_exam_no"), ["exam_no"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_exam_result_hold_vendor_code"), ["vendor_code"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("alert") as batch:
        batch.alter_column("task_id", existing_type=sa.String(length=36), nullable=False)
    with op.batch_alter_table("exam_result_hold", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exam_result_hold_vendor_code"))
        batch_op.drop_index(batch_op.f("ix_exam_result_hold_exam_no"))

    op.drop_table("exam_result_hold")
    with op.batch_alter_table("exam_result", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exam_result_patient_id"))
        batch_op.drop_index(batch_op.f("ix_exam_result_exam_no"))

    op.drop_table("exam_result")
    with op.batch_alter_table("exam_booking", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exam_booking_patient_id"))
        batch_op.drop_index(batch_op.f("ix_exam_booking_account_no"))

    op.drop_table("exam_booking")
    op.drop_table("exam_account")
    op.drop_table("exam_vendor_item")
    op.drop_table("exam_message")
    op.drop_table("exam_item_mapping")
    op.drop_table("exam_dictionary_change")
