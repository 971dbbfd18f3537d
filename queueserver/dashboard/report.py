"""The weekly report: an A4 PDF (zh or en) with the week's key figures, plots and tables.

Written by the scheduler every Monday for the week before, and on demand; stored under
``<data-dir>/reports/`` and listed in ``qs_stats_reports``. Drawn with matplotlib (the same
plots as the page), fonts embedded, so it prints and forwards as it is.
"""
from __future__ import annotations

import re
import textwrap
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select

from queueserver.store import Store
from queueserver.dashboard import plots
from queueserver.dashboard.labels import word
from queueserver.dashboard.queries import Dashboard
from queueserver.dashboard.tables import reports

A4 = (8.27, 11.69)  # inches
NAME = re.compile(r"^clinicflow-week-\d{4}-\d{2}-\d{2}-(en|zh)\.pdf$")
KEY_FIGURES = ("arrivals", "median_wait_min", "p90_wait_min", "avg_wait_min", "long_waits", "avg_service_min",
               "no_shows", "recalls", "survey_count", "survey_avg")


def last_full_week(today: date) -> date:
    """The Monday of the last week that is over by ``today``."""
    return today - timedelta(days=today.weekday() + 7)


def report_name(week: date, lang: str) -> str:
    return f"clinicflow-week-{week.isoformat()}-{lang}.pdf"


def report_path(reports_dir: Path, name: str) -> Path | None:
    """The stored report called ``name`` (None for an unknown or malformed name: no path tricks)."""
    if not NAME.match(name):
        return None
    path = reports_dir / name
    return path if path.is_file() else None


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"
    return str(value)


def _table(ax: Any, header: list[str], rows: list[list[Any]], *, font: float = 7.5) -> None:
    ax.axis("off")
    if not rows:
        ax.text(0.0, 0.5, "–", transform=ax.transAxes)
        return
    t = ax.table(cellText=[[_fmt(v) for v in r] for r in rows], colLabels=header, loc="upper left",
                 cellLoc="center", colLoc="center")
    t.auto_set_font_size(False)
    t.set_fontsize(font)
    t.scale(1, 1.15)
    for (r, _c), cell in t.get_celld().items():
        cell.set_edgecolor("#BBBBBB")
        if r == 0:
            cell.set_facecolor("#E8EEF5")
            cell.get_text().set_wrap(True)


def write_pdf(path: Path, *, site: str, week: date, lang: str, this: dict, prev: dict, kiosk: dict,
              generated: datetime) -> None:
    """Draw the two A4 pages of the report into ``path``."""
    plots.setup_fonts()  # loads matplotlib
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    last = week + timedelta(days=6)
    lw = this.get("long_wait_min", 30)
    tmp = path.with_suffix(".tmp")
    with PdfPages(tmp, metadata={"Title": f"clinicflow {word('report_title', lang)} {week}", "Creator": "clinicflow"}) as pdf:
        fig = Figure(figsize=A4)
        fig.text(0.06, 0.965, f"{site} · {word('report_title', lang)}", fontsize=17)
        fig.text(0.06, 0.945, f"{week.isoformat()} – {last.isoformat()}    {word('generated', lang)}: "
                              f"{generated:%Y-%m-%d %H:%M}", fontsize=9, color="#444444")
        fig.text(0.06, 0.915, word("key_figures", lang), fontsize=12)
        help_now, help_prev = this.get("help") or {}, prev.get("help") or {}
        rows = [[word(k, lang, n=lw), this["total"][k], prev["total"][k]] for k in KEY_FIGURES]
        for k in ("help_requests", "red_flags"):
            rows.append([word(k, lang), help_now.get(k, word("not_recorded", lang)),
                         help_prev.get(k, word("not_recorded", lang))])
        _table(fig.add_axes((0.06, 0.66, 0.5, 0.24)), [word("scope", lang), word("this_week", lang),
                                                       word("last_week", lang)], rows, font=8.5)
        adv = kiosk["advice"]
        if adv["kiosks"]:
            advice = word("kiosk_advice", lang, visits=_fmt(adv["visits_per_day"]), kiosks=adv["kiosks"],
                          per=_fmt(adv["visits_per_kiosk"]), rule=adv["rule_of_thumb"], needed=adv["kiosks_needed"])
            # matplotlib wraps only at spaces, which Chinese has none of: wrap by characters
            width = 24 if lang == "zh" else 46
            fig.text(0.60, 0.89, "\n".join(textwrap.wrap(advice, width)), fontsize=8.5, va="top")
        plots.draw("departments", fig.add_axes((0.09, 0.45, 0.85, 0.15)), this, lang)
        plots.draw("days", fig.add_axes((0.09, 0.225, 0.80, 0.145)), this, lang)
        header, body = plots.table("departments", this, lang)
        keep = [0, 1, 3, 4, 6, 7, 11]  # name, arrivals, median, p90, long waits, service, satisfaction
        _table(fig.add_axes((0.06, 0.03, 0.88, 0.15)), [header[i] for i in keep],
               [[r[i] for i in keep] for r in body if r[1]], font=7.5)
        pdf.savefig(fig)

        fig = Figure(figsize=A4)
        plots.draw("hours", fig.add_axes((0.09, 0.74, 0.80, 0.2)), this, lang)
        plots.draw("rooms", fig.add_axes((0.09, 0.47, 0.85, 0.18)), this, lang)
        plots.draw("kiosk", fig.add_axes((0.09, 0.26, 0.38, 0.17)), kiosk, lang)
        plots.draw("abandoned", fig.add_axes((0.65, 0.26, 0.30, 0.17)), kiosk, lang)
        header, body = plots.table("kiosk_kinds", kiosk, lang)
        _table(fig.add_axes((0.06, 0.04, 0.88, 0.14)), header, body, font=8)
        pdf.savefig(fig)
    tmp.replace(path)


def week_in_use(board: Dashboard, week: date) -> bool:
    """Whether the week starting ``week`` had any arrival or kiosk session to report on."""
    last = (week + timedelta(days=6)).isoformat()
    if board.queue_figures(week.isoformat(), last)["total"]["arrivals"]:
        return True
    kiosk = board.kiosk_figures(week.isoformat(), last)
    return any(k["done"] or k["abandoned"] for k in kiosk["by_kind"])


def write_week(board: Dashboard, store: Store, reports_dir: Path, week: date, lang: str, *, now: datetime) -> dict:
    """Make the report of the week starting ``week`` (a Monday) in ``lang``; store and list it."""
    last = week + timedelta(days=6)
    this = board.queue_figures(week.isoformat(), last.isoformat())
    prev = board.queue_figures((week - timedelta(days=7)).isoformat(), (week - timedelta(days=1)).isoformat())
    kiosk = board.kiosk_figures(week.isoformat(), last.isoformat())
    reports_dir.mkdir(parents=True, exist_ok=True)
    name = report_name(week, lang)
    write_pdf(reports_dir / name, site=board.hospital.site.id, week=week, lang=lang, this=this, prev=prev,
              kiosk=kiosk, generated=now.astimezone(board.tz))
    row = dict(name=name, first_day=week.isoformat(), last_day=last.isoformat(), language=lang, created_at=now,
               note=f"{this['total']['arrivals']} arrivals")
    with store.tx() as tx:
        tx.conn.execute(delete(reports).where(reports.c.name == name))
        tx.conn.execute(insert(reports).values(**row))
    return {**row, "created_at": now.isoformat(), "url": f"/api/v1/dashboard/reports/{name}"}


def list_reports(store: Store) -> list[dict]:
    with store.read() as conn:
        rows = conn.execute(select(reports).order_by(reports.c.first_day.desc(), reports.c.language)).mappings().all()
    return [{**r, "created_at": r["created_at"].isoformat(), "url": f"/api/v1/dashboard/reports/{r['name']}"}
            for r in rows]
