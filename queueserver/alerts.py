"""``LongWaitAlerts``: one alert per ticket that has waited longer than the rules allow."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from protocol.payloads import Alert
from queueserver import rules as R
from queueserver.context import QueueContext, waiting
from queueserver.store import tickets


class LongWaitAlerts:
    """The periodic long-wait check (see ``check``)."""

    def __init__(self, ctx: QueueContext) -> None:
        self.ctx = ctx

    def check(self) -> list[Alert]:
        """Raise one long-wait alert per ticket that passed the threshold (published; shown on the page)."""
        ctx = self.ctx
        now = ctx.clock()
        # Read without holding up the writer: only a ticket that arrived before the limit can have
        # waited that long (an early appointment's wait starts later, never sooner).
        limit = now - timedelta(minutes=ctx.rules.long_wait_alert_min)
        with ctx.store.read() as conn:
            rows = {r["ticket_id"]: r for r in conn.execute(select(tickets).where(
                tickets.c.status == "waiting", tickets.c.day == ctx.today(now), tickets.c.alerted_at.is_(None),
                tickets.c.arrived_at <= limit)).mappings()}
        due = R.long_waits([waiting(r) for r in rows.values()], now=now, rules=ctx.rules)
        raised: list[Alert] = []
        if not due:
            return raised
        with ctx.store.tx() as tx:
            for t, minutes in due:
                # Still waiting and not yet alerted (a call, or another replica, may have come first).
                marked = tx.conn.execute(update(tickets).where(
                    tickets.c.ticket_id == t.ticket_id, tickets.c.status == "waiting",
                    tickets.c.alerted_at.is_(None)).values(alerted_at=now)).rowcount
                if not marked:
                    continue
                r = rows[t.ticket_id]
                raised.append(Alert(id=f"lw-{t.ticket_id}"[:64].replace("_", "-"), ts=now, kind="long_wait",
                                    room=r["room"], department=r["department"], ticket=r["number"],
                                    message=f"{r['number']} has waited {minutes} min "
                                            f"(limit {ctx.rules.long_wait_alert_min} min)."))
        if ctx.publisher is not None:
            for alert in raised:
                ctx.publisher.publish_alert(alert)
        return raised
