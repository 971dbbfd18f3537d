"""``Statistics``: one day per department and room: tickets, waits (avg, p90), service, no-shows, recalls, survey.

Waits, service times and p90 are defined as on the managers' dashboard (``queueserver.dashboard``),
which has the figures of any date range; this is the one-day view of ``/api/v1/stats``.
"""
from __future__ import annotations

import csv
import io
import statistics

from sqlalchemy import select

from queueserver.context import QueueContext, Record
from queueserver.dashboard.aggregate import service_minutes, wait_minutes
from queueserver.dashboard.quantiles import quantile
from queueserver.store import tickets


class Statistics:
    """The day's figures (``stats``) and the same as CSV (``stats_csv``)."""

    def __init__(self, ctx: QueueContext) -> None:
        self.ctx = ctx

    def stats(self, day: str | None = None) -> dict:
        """Per department and room for one day: tickets, waits (avg, p90), service time, no-shows, recalls, survey."""
        ctx = self.ctx
        day = day or ctx.today()
        with ctx.store.read() as conn:
            rows: list[Record] = list(conn.execute(select(tickets).where(tickets.c.day == day)).mappings())

        def p90(values: list[float]) -> float | None:  # the inclusive quantile (a rounded rank under-reported)
            value = quantile(values, 0.9)
            return None if value is None else round(value, 1)

        def summarise(group: list[Record]) -> dict:
            # The dashboard's definitions of a wait and a service time (docs/dashboard.md#definitions).
            waits = [w for w in (wait_minutes(r, ctx.rules) for r in group) if w is not None]
            services = [m for m in (service_minutes(r) for r in group) if m is not None]
            called = [r for r in group if r["first_called_at"] is not None]
            no_shows = [r for r in group if r["no_show_count"] > 0]
            scores = [r["survey_score"] for r in group if r["survey_score"] is not None]
            return {
                "tickets": len(group),
                "served": sum(1 for r in group if r["status"] == "done"),
                "waiting": sum(1 for r in group if r["status"] == "waiting"),
                "avg_wait_min": round(statistics.fmean(waits), 1) if waits else None,
                "p90_wait_min": p90(waits),
                "avg_service_min": round(statistics.fmean(services), 1) if services else None,
                "no_show_rate": round(len(no_shows) / len(called), 3) if called else None,
                "recalls": sum(r["recalls_total"] for r in group),
                "survey_count": len(scores),
                "survey_avg": round(statistics.fmean(scores), 2) if scores else None,
            }

        hospital = ctx.hospital
        departments = {d.id: summarise([r for r in rows if r["department"] == d.id]) for d in hospital.departments}
        room_stats = {rm.id: summarise([r for r in rows if r["call_room"] == rm.id]) for rm in hospital.rooms}
        return {"site": ctx.site, "day": day, "departments": departments, "rooms": room_stats,
                "total": summarise(rows)}

    def stats_csv(self, day: str | None = None) -> str:
        """``stats`` as CSV: one row per department, room and the site."""
        data = self.stats(day)
        buf = io.StringIO()
        fields = ["tickets", "served", "waiting", "avg_wait_min", "p90_wait_min", "avg_service_min", "no_show_rate",
                  "recalls", "survey_count", "survey_avg"]
        writer = csv.writer(buf)
        writer.writerow(["day", "scope", "id", *fields])
        for scope in ("departments", "rooms"):
            for ident, values in data[scope].items():
                writer.writerow([data["day"], scope[:-1], ident,
                                 *("" if values[f] is None else values[f] for f in fields)])
        writer.writerow([data["day"], "site", data["site"], *("" if data["total"][f] is None else data["total"][f]
                                                               for f in fields)])
        return buf.getvalue()
