"""Help statistics for one day: requests per kiosk per hour, time to acknowledge, red flags by symptom.

A function of its own (the queue statistics call it and add its result as ``"help"``), so the
queue's statistics can change without touching these.
"""
from __future__ import annotations

import csv
import io
import statistics
from collections import Counter, defaultdict
from typing import Any

from queueserver.helpdesk import HelpDesk


def _p90(values: list[float]) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=10, method="inclusive")[-1], 1)


def help_stats(desk: HelpDesk, day: str) -> dict[str, Any]:
    """``per_kiosk_hour`` {kiosk: {"HH": n}} (local hours), ``acknowledge`` per kind (count, answered,
    avg_s, p90_s, escalated), ``red_flags_by_symptom`` {symptom: n}."""
    items = desk.items_of_day(day)
    per_kiosk: dict[str, Counter[str]] = defaultdict(Counter)
    symptoms: Counter[str] = Counter()
    waits: dict[str, list[float]] = defaultdict(list)
    counts: Counter[str] = Counter()
    escalated: Counter[str] = Counter()
    for item in items:
        counts[item.kind] += 1
        escalated[item.kind] += item.escalated_at is not None
        if item.device:
            per_kiosk[item.device][f"{item.created_at.astimezone(desk.tz).hour:02d}"] += 1
        if item.kind == "red_flag":
            symptoms.update(item.symptoms or ("unspecified",))
        if item.acknowledged_at is not None:
            waits[item.kind].append(max(0.0, (item.acknowledged_at - item.created_at).total_seconds()))
    acknowledge = {kind: {"count": counts[kind], "answered": len(waits[kind]),
                          "avg_s": round(statistics.fmean(waits[kind]), 1) if waits[kind] else None,
                          "p90_s": _p90(waits[kind]), "escalated": escalated[kind]}
                   for kind in ("help", "red_flag", "long_wait")}
    return {"per_kiosk_hour": {k: dict(sorted(v.items())) for k, v in sorted(per_kiosk.items())},
            "acknowledge": acknowledge, "red_flags_by_symptom": dict(symptoms.most_common())}


def help_stats_csv(desk: HelpDesk, day: str) -> str:
    """The same as CSV rows after the queue's: ``day, metric, key, value``."""
    data = help_stats(desk, day)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["day", "help_metric", "key", "value"])
    for kiosk, hours in data["per_kiosk_hour"].items():
        for hour, n in hours.items():
            writer.writerow([day, "requests_per_kiosk_hour", f"{kiosk} {hour}:00", n])
    for kind, values in data["acknowledge"].items():
        for field, value in values.items():
            writer.writerow([day, f"acknowledge_{field}", kind, "" if value is None else value])
    for symptom, n in data["red_flags_by_symptom"].items():
        writer.writerow([day, "red_flags_by_symptom", symptom, n])
    return buf.getvalue()
