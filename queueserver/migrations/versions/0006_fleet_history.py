"""The fleet page's memory: alert history with resolution, each device's last accepted config.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

from queueserver.store import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "qs_fleet_alerts",
        sa.Column("alert_id", sa.String(64), primary_key=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("ts", UTCDateTime, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("message", sa.String(200), nullable=False),
        sa.Column("resolved_at", UTCDateTime),
    )
    op.create_index("ix_fleet_alerts_site_ts", "qs_fleet_alerts", ["site", "ts"])
    op.create_index("ix_fleet_alerts_open", "qs_fleet_alerts", ["site", "device", "kind", "resolved_at"])
    op.create_table(
        "qs_fleet_configs",
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("device", sa.String(64), primary_key=True),
        sa.Column("revision", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("accepted_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("qs_fleet_configs")
    op.drop_table("qs_fleet_alerts")
