"""Store tables of the staff help loop and of the patient API's durable state.

They share the queue store's ``MetaData`` (``queueserver.store.metadata``), so Alembic sees
them with the rest; the migration is ``0004_help_sessions``.

- ``qs_help_requests``: every help call, red flag and long wait staff must answer, with who
  acknowledged and resolved it and when, and when it was escalated.
- ``qs_patient_sessions``: kiosk patient sessions (a hash of the session id, never the id itself).
- ``qs_api_answers``: the patient API's idempotency answers (a retry gets the first answer).
"""
from __future__ import annotations

from sqlalchemy import Column, Index, String, Table, Text

from queueserver.store import UTCDateTime, metadata

help_requests = Table(
    "qs_help_requests", metadata,
    Column("help_id", String(64), primary_key=True),
    Column("idem_key", String(200), unique=True),  # the kiosk's Idempotency-Key: a retry finds its request
    Column("day", String(10), nullable=False),  # the site's local day (statistics)
    Column("kind", String(16), nullable=False),  # help, red_flag, long_wait
    Column("reason", String(16), nullable=False),  # help, red_flag, payment, printer, other, long_wait
    Column("device", String(64)),  # the kiosk that asked
    Column("room", String(64)),
    Column("department", String(64)),
    Column("ticket", String(12)),  # the patient's ticket number where known
    Column("ticket_id", String(40)),
    Column("symptoms", String(400), nullable=False, default=""),  # red flags: comma-separated symptom ids
    Column("message", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("acknowledged_at", UTCDateTime),
    Column("acknowledged_by", String(100)),
    Column("resolved_at", UTCDateTime),
    Column("resolved_by", String(100)),
    Column("escalated_at", UTCDateTime),
)
Index("ix_help_open", help_requests.c.resolved_at, help_requests.c.created_at)
Index("ix_help_day", help_requests.c.day)

patient_sessions = Table(
    "qs_patient_sessions", metadata,
    Column("session_hash", String(64), primary_key=True),  # sha256 of the id: a leaked table opens no session
    Column("patient_id", String(64), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
)

api_answers = Table(
    "qs_api_answers", metadata,
    Column("key", String(240), primary_key=True),
    Column("body", Text, nullable=False),  # the answer's JSON
    Column("created_at", UTCDateTime, nullable=False, index=True),
)
