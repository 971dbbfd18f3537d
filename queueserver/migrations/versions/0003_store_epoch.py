"""The store epoch: one row naming this database's generation (screens order by epoch, then seq).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""
import secrets
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa

from queueserver.store import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "qs_store_epoch",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("epoch", sa.String(64), nullable=False),
        sa.Column("renewed_at", UTCDateTime, nullable=False),
    )
    # A new database is a new generation: its rooms' seq count from 0 again.
    op.bulk_insert(table, [{"id": 1, "epoch": secrets.token_hex(6), "renewed_at": datetime.now(timezone.utc)}])


def downgrade() -> None:
    op.drop_table("qs_store_epoch")
