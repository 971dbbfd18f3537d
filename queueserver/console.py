"""``ConsoleView``: what the clinician page shows: a room's waiting list with why each one is where it is."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from queueserver import rules as R
from queueserver.context import QueueContext, waiting
from queueserver.ordering import Ordering
from queueserver.results import QueueEntry
from queueserver.snapshots import Snapshots
from queueserver.store import rooms


class ConsoleView:
    """The clinician's views of a room."""

    def __init__(self, ctx: QueueContext, ordering: Ordering, snapshots: Snapshots) -> None:
        self.ctx = ctx
        self.ordering = ordering
        self.snapshots = snapshots

    def queue(self, room_id: str) -> list[QueueEntry]:
        """The room's waiting list in calling order, with why each one is where it is."""
        ctx = self.ctx
        room = ctx.room(room_id)
        now = ctx.clock()
        with ctx.store.read() as conn:
            row = conn.execute(select(rooms).where(rooms.c.room_id == room_id)).mappings().one()
            cand = {r.ticket_id: r for r in self.ordering.load(conn, [room], ctx.today(now))[room.id]}
            order = R.order_queue([waiting(r) for r in cand.values()], now=now, rules=ctx.rules,
                                  others_since_priority=row["others_since_priority"], tz=ctx.tz, explain=True)
        out = []
        for i, p in enumerate(order):
            waited = int(R.waited_minutes(p.ticket, now, ctx.rules))
            out.append(QueueEntry(ticket_id=p.ticket.ticket_id, number=p.ticket.number, position=i + 1,
                                  reason=p.reason, category=p.category, waited_min=waited,
                                  masked_name=cand[p.ticket.ticket_id].masked_name, priority=p.ticket.priority,
                                  long_wait=waited >= ctx.rules.long_wait_alert_min))
        return out

    def console(self, room_id: str) -> dict[str, Any]:
        """Everything the clinician page shows: room state, current ticket with its reason, queue, alerts."""
        ctx = self.ctx
        state = self.snapshots.room_state(room_id)
        current = None
        with ctx.store.read() as conn:
            row = conn.execute(select(rooms).where(rooms.c.room_id == room_id)).mappings().one()
            if row["current_ticket_id"]:
                t = ctx.ticket_row(conn, row["current_ticket_id"])
                if t["status"] in ("called", "serving"):
                    current = {"ticket_id": t["ticket_id"], "number": t["number"], "status": t["status"],
                               "reason": t["call_reason"], "recall_count": t["recall_count"],
                               "masked_name": t["masked_name"]}
        queue = [e.__dict__ for e in self.queue(room_id)]
        alerts = [f"{e['number']} has waited {e['waited_min']} min (limit {ctx.rules.long_wait_alert_min})."
                  for e in queue if e["long_wait"]]
        return {"room": room_id, "room_name": dict(ctx.room(room_id).name), "status": state.status.value,
                "seq": state.seq, "current": current, "queue": queue, "alerts": alerts}
