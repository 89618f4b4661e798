"""staff: password sign-in, lockout, TOTP and sessions (SEC-5)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.db

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff_user") as batch_op:
        # People who sign in with a password need no static token.
        batch_op.alter_column(
            "token_sha256", existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True
        )
        batch_op.add_column(
            sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.add_column(
            sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch_op.add_column(sa.Column("password_changed_at", core.db.UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("locked_until", core.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_sign_in_at", core.db.UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("totp_secret", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.add_column(sa.Column("totp_confirmed_at", core.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("totp_last_counter", sa.BigInteger(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_staff_user_username"), ["username"])

    op.create_table(
        "staff_session",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("staff_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("token_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", core.db.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", core.db.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", core.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff_user.id"], name=op.f("fk_staff_session_staff_id_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_session")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_staff_session_token_sha256")),
    )
    with op.batch_alter_table("staff_session") as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_session_staff_id"), ["staff_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("staff_session") as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_session_staff_id"))
    op.drop_table("staff_session")
    # Accounts without a static token keep a value no token hashes to: they can no longer
    # authenticate at all on the older schema, which had no passwords.
    op.execute("UPDATE staff_user SET token_sha256 = 'none:' || id WHERE token_sha256 IS NULL")
    with op.batch_alter_table("staff_user") as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_staff_user_username"), type_="unique")
        batch_op.drop_column("totp_last_counter")
        batch_op.drop_column("totp_confirmed_at")
        batch_op.drop_column("totp_secret")
        batch_op.drop_column("last_sign_in_at")
        batch_op.drop_column("locked_until")
        batch_op.drop_column("failed_logins")
        batch_op.drop_column("password_changed_at")
        batch_op.drop_column("must_change_password")
        batch_op.drop_column("password_hash")
        batch_op.drop_column("username")
        batch_op.alter_column(
            "token_sha256",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=64),
            nullable=False,
        )
