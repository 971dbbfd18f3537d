"""The dashboard's aggregates: closed days, per day/department/room/hour sums and wait histograms, kiosk events.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

from queueserver.store import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

HOUR_SUMS = ("arrivals", "appointments", "walk_ins", "desk", "called", "served", "cancelled", "no_shows",
             "recalls", "long_waits", "wait_n", "wait_sum", "service_n", "service_sum", "survey_n", "survey_sum")


def _key() -> list[sa.Column]:
    return [sa.Column("day", sa.String(10), primary_key=True), sa.Column("department", sa.String(64), primary_key=True),
            sa.Column("room", sa.String(64), primary_key=True), sa.Column("hour", sa.Integer, primary_key=True)]


def upgrade() -> None:
    op.create_table(
        "qs_stats_days",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("closed_at", UTCDateTime, nullable=False),
        sa.Column("tickets", sa.Integer, nullable=False),
    )
    op.create_table(
        "qs_stats_hour", *_key(),
        *(sa.Column(name, sa.Float if name.endswith("_sum") else sa.Integer, nullable=False) for name in HOUR_SUMS),
        sa.Column("waits", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "qs_kiosk_events",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("kiosk", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("screen", sa.String(40), nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
    )
    op.create_index("ix_qs_kiosk_events_day", "qs_kiosk_events", ["day"])
    op.create_table(
        "qs_stats_kiosk",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("kiosk", sa.String(64), primary_key=True),
        sa.Column("hour", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("outcome", sa.String(16), primary_key=True),
        sa.Column("screen", sa.String(40), primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("seconds_sum", sa.Float, nullable=False),
    )
    op.create_table(
        "qs_stats_reports",
        sa.Column("name", sa.String(80), primary_key=True),
        sa.Column("first_day", sa.String(10), nullable=False),
        sa.Column("last_day", sa.String(10), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("note", sa.Text),
    )


def downgrade() -> None:
    for table in ("qs_stats_reports", "qs_stats_kiosk", "qs_kiosk_events", "qs_stats_hour", "qs_stats_days"):
        op.drop_table(table)
