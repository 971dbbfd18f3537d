"""Help requests (acknowledged, resolved, escalated), patient sessions, patient API answers.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

from queueserver.store import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "qs_help_requests",
        sa.Column("help_id", sa.String(64), primary_key=True),
        sa.Column("idem_key", sa.String(200), unique=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("device", sa.String(64)),
        sa.Column("room", sa.String(64)),
        sa.Column("department", sa.String(64)),
        sa.Column("ticket", sa.String(12)),
        sa.Column("ticket_id", sa.String(40)),
        sa.Column("symptoms", sa.String(400), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("acknowledged_at", UTCDateTime),
        sa.Column("acknowledged_by", sa.String(100)),
        sa.Column("resolved_at", UTCDateTime),
        sa.Column("resolved_by", sa.String(100)),
        sa.Column("escalated_at", UTCDateTime),
    )
    op.create_index("ix_help_open", "qs_help_requests", ["resolved_at", "created_at"])
    op.create_index("ix_help_day", "qs_help_requests", ["day"])
    op.create_table(
        "qs_patient_sessions",
        sa.Column("session_hash", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_qs_patient_sessions_expires_at", "qs_patient_sessions", ["expires_at"])
    op.create_table(
        "qs_api_answers",
        sa.Column("key", sa.String(240), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_qs_api_answers_created_at", "qs_api_answers", ["created_at"])


def downgrade() -> None:
    op.drop_table("qs_api_answers")
    op.drop_table("qs_patient_sessions")
    op.drop_table("qs_help_requests")
