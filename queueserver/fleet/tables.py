"""Store tables of the fleet page (created by migration 0006), sharing the store's MetaData.

- ``qs_fleet_alerts``: the fleet's alert history (``device_offline``, ``paper_out``,
  ``certificate_expiring``), each with ``resolved_at`` once the device recovered (None: open).
- ``qs_fleet_configs``: per device, the last config push it accepted: its revision and the
  JSON payload as it was retained (``revision`` included), so that after a restart the server
  still puts the accepted config back on the broker when a device refuses a newer one.

Both are per ``site``: the server of one site owns its rows. Read and written by
``queueserver.fleet.history.FleetHistory``.
"""
from __future__ import annotations

from sqlalchemy import Column, Index, String, Table, Text

from queueserver.store import UTCDateTime, metadata

fleet_alerts = Table(
    "qs_fleet_alerts", metadata,
    Column("alert_id", String(64), primary_key=True),  # protocol.Alert.id
    Column("site", String(64), nullable=False),
    Column("ts", UTCDateTime, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("device", String(64), nullable=False),
    Column("message", String(200), nullable=False),
    Column("resolved_at", UTCDateTime),  # when the device recovered (None: still open)
)
Index("ix_fleet_alerts_site_ts", fleet_alerts.c.site, fleet_alerts.c.ts)
Index("ix_fleet_alerts_open", fleet_alerts.c.site, fleet_alerts.c.device, fleet_alerts.c.kind, fleet_alerts.c.resolved_at)

fleet_configs = Table(
    "qs_fleet_configs", metadata,
    Column("site", String(64), primary_key=True),
    Column("device", String(64), primary_key=True),
    Column("revision", String(64), nullable=False),
    Column("payload", Text, nullable=False),  # the retained JSON object the device accepted
    Column("accepted_at", UTCDateTime, nullable=False),
)
