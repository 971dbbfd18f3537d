"""``FleetHistory``: what the fleet page must not forget when the server restarts, in the queue store.

    history = FleetHistory(store, site="demo")
    registry = FleetRegistry("demo", history=history)   # loads the alerts and accepted configs

The registry keeps its working copy in memory and writes here only when something
changes: an alert raised, an alert resolved, a device accepting a new config revision
(never on every status message). Tables: ``queueserver.fleet.tables`` (migration 0006).

Several processes may run a registry on the same database (HTTP workers, PostgreSQL
replicas): an alert is stored once per outage. ``add_alert`` answers the open alert
another process already stored for the same device and kind (for a broker certificate:
the same message), and the caller shows that one instead of raising its own.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update

from protocol.payloads import Alert
from queueserver.fleet.tables import fleet_alerts, fleet_configs

if TYPE_CHECKING:
    from queueserver.fleet.registry import AlertRecord
    from queueserver.store import Store

log = logging.getLogger(__name__)


class FleetHistory:
    """The fleet's alert history and each device's last accepted config for one ``site`` (see the module docstring)."""

    def __init__(self, store: "Store", site: str, *, keep: int = 200) -> None:
        self.store = store
        self.site = site
        self.keep = keep  # alerts kept per site (the newest)

    # -------------------------------------------------------------- alerts
    def alerts(self) -> list["AlertRecord"]:
        """The kept alerts, oldest first (at most ``keep``)."""
        with self.store.read() as conn:
            rows = conn.execute(select(fleet_alerts).where(fleet_alerts.c.site == self.site)
                                .order_by(fleet_alerts.c.ts.desc(), fleet_alerts.c.alert_id.desc())
                                .limit(self.keep)).mappings().all()
        return [_record(row) for row in reversed(rows)]

    def add_alert(self, alert: Alert) -> "AlertRecord | None":
        """Store a new open alert; or, if one for the same device and kind is already open, store
        nothing and answer that one (raised by another process, or before a restart)."""
        device = alert.device or ""
        with self.store.tx() as tx:
            query = select(fleet_alerts).where(fleet_alerts.c.site == self.site, fleet_alerts.c.device == device,
                                               fleet_alerts.c.kind == alert.kind, fleet_alerts.c.resolved_at.is_(None))
            if alert.kind == "certificate_expiring":  # one broker, several certificates
                query = query.where(fleet_alerts.c.message == alert.message)
            open_one = tx.conn.execute(query.order_by(fleet_alerts.c.ts).limit(1)).mappings().first()
            if open_one is not None:
                return _record(open_one)
            tx.conn.execute(insert(fleet_alerts).values(alert_id=alert.id, site=self.site, ts=alert.ts, kind=alert.kind,
                                                        device=device, message=alert.message, resolved_at=None))
            newest = (select(fleet_alerts.c.alert_id).where(fleet_alerts.c.site == self.site)
                      .order_by(fleet_alerts.c.ts.desc(), fleet_alerts.c.alert_id.desc()).limit(self.keep))
            tx.conn.execute(delete(fleet_alerts).where(fleet_alerts.c.site == self.site,
                                                       fleet_alerts.c.alert_id.not_in(newest.scalar_subquery())))
        return None

    def resolve(self, records: list["AlertRecord"]) -> None:
        """Keep when each of these alerts was resolved (the first resolution stands)."""
        if not records:
            return
        with self.store.tx() as tx:
            for record in records:
                tx.conn.execute(update(fleet_alerts).where(fleet_alerts.c.alert_id == record.alert.id,
                                                           fleet_alerts.c.resolved_at.is_(None))
                                .values(resolved_at=record.resolved_at))

    # ------------------------------------------------------------- configs
    def accepted_configs(self) -> dict[str, bytes]:
        """device -> the retained config payload it last accepted."""
        with self.store.read() as conn:
            rows = conn.execute(select(fleet_configs.c.device, fleet_configs.c.payload)
                                .where(fleet_configs.c.site == self.site)).all()
        return {device: payload.encode("utf-8") for device, payload in rows}

    def accept_config(self, device: str, payload: bytes, when: datetime) -> None:
        """Keep ``payload`` (a JSON object with its ``revision``) as the config ``device`` runs."""
        text = payload.decode("utf-8")
        revision = str(_revision(text))[:64]
        with self.store.tx() as tx:
            key = (fleet_configs.c.site == self.site, fleet_configs.c.device == device)
            done = tx.conn.execute(update(fleet_configs).where(*key)
                                   .values(revision=revision, payload=text, accepted_at=when))
            if done.rowcount == 0:
                tx.conn.execute(insert(fleet_configs).values(site=self.site, device=device, revision=revision,
                                                             payload=text, accepted_at=when))


def _revision(text: str) -> Any:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data.get("revision") if isinstance(data, dict) else None


def _record(row: Any) -> "AlertRecord":
    from queueserver.fleet.registry import AlertRecord

    alert = Alert(id=row["alert_id"], ts=row["ts"], kind=row["kind"], device=row["device"] or None, message=row["message"])
    return AlertRecord(alert, resolved_at=row["resolved_at"])
