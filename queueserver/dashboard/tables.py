"""Aggregate tables of the dashboard (created by migration 0005), sharing the store's MetaData.

A day is *closed* when its row is in ``qs_stats_days``: its tickets and kiosk events are then
folded into ``qs_stats_hour`` (sums and counts per day, department, room and hour of arrival, and
``waits``: how many waits of each whole minute, for medians and p90) and ``qs_stats_kiosk``
(kiosk transactions per kiosk, hour, kind, outcome and screen).

``waits`` is a histogram packed as little-endian 16-bit counts for 0, 1, 2, ... minutes, cut after
the last non-zero one; the last possible bin, ``WAIT_CAP`` minutes, holds every wait that long or
longer. Packed, a 90-day range is one read of about 40,000 rows, summed with numpy. Queries over
closed days read only these tables; the open day (today) is folded from its rows on the fly.
"""
from __future__ import annotations

from sqlalchemy import Column, Float, Integer, LargeBinary, String, Table, Text

from queueserver.store import UTCDateTime, metadata

stats_days = Table(
    "qs_stats_days", metadata,
    Column("day", String(10), primary_key=True),
    Column("closed_at", UTCDateTime, nullable=False),
    Column("tickets", Integer, nullable=False),
)

# One row per (day, department, room, hour); room "" is a department queue nobody was called from.
HOUR_SUMS = ("arrivals", "appointments", "walk_ins", "desk", "called", "served", "cancelled", "no_shows",
             "recalls", "long_waits", "wait_n", "wait_sum", "service_n", "service_sum", "survey_n", "survey_sum")
stats_hour = Table(
    "qs_stats_hour", metadata,
    Column("day", String(10), primary_key=True),
    Column("department", String(64), primary_key=True),
    Column("room", String(64), primary_key=True),
    Column("hour", Integer, primary_key=True),
    *(Column(name, Float if name.endswith("_sum") else Integer, nullable=False, default=0) for name in HOUR_SUMS),
    Column("waits", LargeBinary, nullable=False),  # whole-minute wait histogram (see the module docstring)
)
WAIT_CAP = 240  # minutes: longer waits count in this last bin (a median or p90 there reads "240")

kiosk_events = Table(  # what kiosks report: no patient, no ticket, only what was done and where it stopped
    "qs_kiosk_events", metadata,
    Column("event_id", String(64), primary_key=True),  # chosen by the kiosk: a retried report is stored once
    Column("day", String(10), nullable=False, index=True),
    Column("at", UTCDateTime, nullable=False),
    Column("kiosk", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # check_in, registration, payment, report
    Column("outcome", String(16), nullable=False),  # done, abandoned
    Column("screen", String(40), nullable=False, default=""),  # where an abandoned session stopped
    Column("seconds", Float, nullable=False),
)

stats_kiosk = Table(
    "qs_stats_kiosk", metadata,
    Column("day", String(10), primary_key=True),
    Column("kiosk", String(64), primary_key=True),
    Column("hour", Integer, primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("outcome", String(16), primary_key=True),
    Column("screen", String(40), primary_key=True),
    Column("n", Integer, nullable=False),
    Column("seconds_sum", Float, nullable=False),
)

reports = Table(
    "qs_stats_reports", metadata,
    Column("name", String(80), primary_key=True),  # file name under <data-dir>/reports
    Column("first_day", String(10), nullable=False),
    Column("last_day", String(10), nullable=False),
    Column("language", String(8), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("note", Text),
)
