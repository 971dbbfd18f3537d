"""Figures recorded by other parts of the server, plugged into the dashboard through one function.

Help requests and red flags from kiosks: when the store has a table of them (``KNOWN_TABLES``),
``help_figures`` counts them per day and department; otherwise it answers ``None`` and the page
says they are not recorded. A new table name goes into ``KNOWN_TABLES`` and nowhere else.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import MetaData, Table, inspect, select
from sqlalchemy.engine import Connection

# table -> (time column, kind column, department column); kinds counted: "help", "red_flag"
KNOWN_TABLES: dict[str, tuple[str, str, str]] = {
    "qs_help_requests": ("created_at", "kind", "department"),  # the desk's store of help requests (migration 0004)
}


def help_figures(conn: Connection, first: str, last: str, *, tz: ZoneInfo) -> dict[str, Any] | None:
    """Help requests and red flags per day (hospital time) and department, or None when not recorded."""
    names = set(inspect(conn).get_table_names())
    for name, (at_col, kind_col, dept_col) in KNOWN_TABLES.items():
        if name not in names:
            continue
        table = Table(name, MetaData(), autoload_with=conn)
        start = datetime.fromisoformat(first).replace(tzinfo=tz)
        end = datetime.fromisoformat(last).replace(tzinfo=tz) + timedelta(days=1)
        counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for at, kind, dept in conn.execute(select(table.c[at_col], table.c[kind_col], table.c[dept_col])
                                             .where(table.c[at_col] >= start, table.c[at_col] < end)):
            if isinstance(at, str):
                at = datetime.fromisoformat(at)
            if at.tzinfo is None:
                at = at.replace(tzinfo=ZoneInfo("UTC"))
            if kind not in ("help", "red_flag"):  # e.g. long-wait alerts kept in the same table
                continue
            cell = counts[(at.astimezone(tz).date().isoformat(), dept or "")]
            cell[1 if kind == "red_flag" else 0] += 1
        rows = [{"day": d, "department": dept, "help_requests": h, "red_flags": r}
                for (d, dept), (h, r) in sorted(counts.items())]
        return {"table": name, "rows": rows, "help_requests": sum(r["help_requests"] for r in rows),
                "red_flags": sum(r["red_flags"] for r in rows)}
    return None
