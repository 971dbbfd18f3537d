"""The queue store: rooms, per-day counters, tickets, calls, idempotency keys, service times.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

from queueserver.store import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "qs_rooms",
        sa.Column("room_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("others_since_priority", sa.Integer, nullable=False),
        sa.Column("current_ticket_id", sa.String(40)),
        sa.Column("current_call_id", sa.String(40)),
        sa.Column("updated_at", UTCDateTime),
    )
    op.create_table(
        "qs_counters",
        sa.Column("department", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("last", sa.Integer, nullable=False),
    )
    op.create_table(
        "qs_tickets",
        sa.Column("ticket_id", sa.String(40), primary_key=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("number_seq", sa.Integer, nullable=False),
        sa.Column("number", sa.String(12), nullable=False),
        sa.Column("room", sa.String(64)),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("appointment_no", sa.String(32)),
        sa.Column("patient_id", sa.String(64)),
        sa.Column("masked_name", sa.String(100), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("priority", sa.String(100)),
        sa.Column("emergency", sa.Boolean, nullable=False),
        sa.Column("is_returning", sa.Boolean, nullable=False),
        sa.Column("front_reason", sa.String(200)),
        sa.Column("slot_start", UTCDateTime),
        sa.Column("slot_end", UTCDateTime),
        sa.Column("issued_at", UTCDateTime, nullable=False),
        sa.Column("arrived_at", UTCDateTime, nullable=False),
        sa.Column("not_before", UTCDateTime),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("called_at", UTCDateTime),
        sa.Column("first_called_at", UTCDateTime),
        sa.Column("call_room", sa.String(64)),
        sa.Column("call_reason", sa.Text),
        sa.Column("recall_count", sa.Integer, nullable=False),
        sa.Column("recalls_total", sa.Integer, nullable=False),
        sa.Column("no_show_count", sa.Integer, nullable=False),
        sa.Column("service_started_at", UTCDateTime),
        sa.Column("finished_at", UTCDateTime),
        sa.Column("cancel_reason", sa.Text),
        sa.Column("alerted_at", UTCDateTime),
        sa.Column("survey_score", sa.Integer),
        sa.Column("survey_comment", sa.Text),
        sa.UniqueConstraint("day", "number", name="uq_ticket_number"),
        sa.UniqueConstraint("day", "appointment_no", name="uq_ticket_appointment"),
    )
    op.create_index("ix_tickets_status_department", "qs_tickets", ["status", "department"])
    op.create_table(
        "qs_calls",
        sa.Column("call_id", sa.String(40), primary_key=True),
        sa.Column("ticket_id", sa.String(40), nullable=False),
        sa.Column("room", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
    )
    op.create_index("ix_qs_calls_ticket_id", "qs_calls", ["ticket_id"])
    op.create_table(
        "qs_idempotency",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("fingerprint", sa.String(200), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "qs_service_times",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("minutes", sa.Float, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_qs_service_times_department", "qs_service_times", ["department"])


def downgrade() -> None:
    for table in ("qs_service_times", "qs_idempotency", "qs_calls", "qs_tickets", "qs_counters", "qs_rooms"):
        op.drop_table(table)
