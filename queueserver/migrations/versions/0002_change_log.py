"""The change log: which tickets each write changed, so other replicas update their calling order.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "qs_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.String(40)),  # NULL: many tickets changed (end of day): reload everything
    )


def downgrade() -> None:
    op.drop_table("qs_changes")
