"""Server-side plots (matplotlib, SVG for the page, vector in the PDF) and the table under each plot.

Every plot has a table of exactly the numbers it draws (``table``), which the page shows beside
it and offers as CSV. Colours are the Okabe-Ito palette, safe for the common kinds of colour
blindness; series also differ by hatch or marker, so nothing depends on colour alone. Chinese
text is drawn with WenQuanYi Micro Hei (Debian ``fonts-wqy-microhei``) and embedded.
"""
from __future__ import annotations

import csv
import io
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from queueserver.dashboard.labels import screen_name, word

if TYPE_CHECKING:
    from matplotlib.axes import Axes

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
HATCHES = ("", "//", "..", "xx", "\\\\", "++")
CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
_font_lock = threading.Lock()
_fonts_ready = False

FIGURE_COLUMNS = ["arrivals", "served", "median_wait_min", "p90_wait_min", "avg_wait_min", "long_waits",
                  "avg_service_min", "no_shows", "recalls", "survey_count", "survey_avg"]


def setup_fonts() -> None:
    """Load matplotlib and register the CJK font once (matplotlib's defaults draw boxes for Chinese).

    matplotlib is imported here, not at module level: it costs ~0.6 s, and every server process
    (HTTP workers, each test's server) would pay it at start for a plot nobody may ask for.
    """
    global _fonts_ready
    with _font_lock:
        if _fonts_ready:
            return
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import font_manager
        from matplotlib.rcsetup import cycler  # what matplotlib.cycler is; the stubs only type this name

        families = ["DejaVu Sans"]
        if CJK_FONT.exists():
            font_manager.fontManager.addfont(str(CJK_FONT))
            families.insert(0, "WenQuanYi Micro Hei")
        matplotlib.rcParams.update({"font.family": families, "pdf.fonttype": 42, "svg.fonttype": "path",
                                    "axes.prop_cycle": cycler(color=OKABE_ITO),
                                    "axes.spines.top": False, "axes.spines.right": False})
        _fonts_ready = True


def _name(item: dict, lang: str) -> str:
    name = item.get("name") or {}
    return name.get(lang) or name.get("en") or item.get("id") or "-"


def _scope(row: dict, lang: str) -> str:
    """A compare row's label: the whole site, or the department's name."""
    if row["scope"] == "total":
        return word("total", lang)
    return _name({"name": row.get("name"), "id": row["scope"]}, lang)


# ------------------------------------------------------------------ tables
def _figure_rows(items: list[dict], key: Callable[[dict], Any], head: str, lang: str,
                 long_wait: int) -> tuple[list[str], list[list[Any]]]:
    columns = [word(head, lang)] + [word(c, lang, n=long_wait) for c in FIGURE_COLUMNS]
    return columns, [[key(i)] + [i.get(c) for c in FIGURE_COLUMNS] for i in items]


def table(name: str, data: dict, lang: str) -> tuple[list[str], list[list[Any]]]:
    """The numbers of plot ``name`` as (header, rows), in ``lang``."""
    lw = data.get("long_wait_min", 30)
    if name in ("departments", "survey"):
        return _figure_rows(data["departments"], lambda d: _name(d, lang), "department", lang, lw)
    if name == "rooms":
        return _figure_rows(data["rooms"], lambda d: _name(d, lang), "room", lang, lw)
    if name == "hours":
        return _figure_rows(data["hours"], lambda d: f"{d['hour']:02d}:00", "hour", lang, lw)
    if name == "days":
        return _figure_rows(data["days"], lambda d: d["day"], "day", lang, lw)
    if name == "weeks":
        return _figure_rows(data["weeks"], lambda d: d["week"], "week", lang, lw)
    if name == "kiosk":
        return ([word(c, lang) for c in ("kiosk", "hour", "kind", "transactions")],
                [[r["kiosk"], f"{r['hour']:02d}:00", word(r["kind"], lang), r["transactions"]]
                 for r in data["per_kiosk_hour"]])
    if name == "kiosk_kinds":
        cols = ["kind", "done", "abandoned", "abandon_rate", "avg_seconds"]
        return [word(c, lang) for c in cols], [[word(r["kind"], lang)] + [r[c] for c in cols[1:]] for r in data["by_kind"]]
    if name == "abandoned":
        return ([word(c, lang) for c in ("kind", "screen", "sessions")],
                [[word(r["kind"], lang), screen_name(r["screen"], lang), r["sessions"]] for r in data["abandoned_at"]])
    if name == "compare":
        keys = list(data["rows"][0]["before"]) if data["rows"] else []
        header = [word("scope", lang)] + [f"{word(k, lang, n=30)} · {word(part, lang)}"
                                          for k in keys for part in ("before", "after", "change")]
        rows = [[_scope(r, lang)]
                + [r[part][k] for k in keys for part in ("before", "after", "change")] for r in data["rows"]]
        return header, rows
    raise KeyError(name)


def table_csv(name: str, data: dict, lang: str) -> str:
    header, rows = table(name, data, lang)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return buf.getvalue()


# ------------------------------------------------------------------- plots
def _bars(ax: Axes, labels: list[str], series: list[tuple[str, list[float | None]]], *, ylabel: str) -> None:
    n = max(1, len(series))
    width = 0.8 / n
    for i, (label, values) in enumerate(series):
        xs = [x + (i - (n - 1) / 2) * width for x in range(len(labels))]
        ax.bar(xs, [v or 0 for v in values], width, label=label, color=OKABE_ITO[i % len(OKABE_ITO)],
               hatch=HATCHES[i % len(HATCHES)], edgecolor="white", linewidth=0.5)
    ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 6 else 0,
                  ha="right" if len(labels) > 6 else "center")
    ax.set_ylabel(ylabel)
    _legend(ax, *ax.get_legend_handles_labels())


def _legend(ax: Axes, handles: list, names: list) -> None:
    """One row above the plot area: never over the data."""
    if handles:
        ax.legend(handles, names, frameon=False, fontsize="small", loc="lower left", bbox_to_anchor=(0, 1.0),
                  ncol=len(handles), borderaxespad=0.2)


def _trend(ax: Axes, labels: list[str], items: list[dict], lang: str) -> None:
    xs = range(len(labels))
    ax2 = ax.twinx()
    ax2.bar(xs, [i["arrivals"] for i in items], color="#BBBBBB", alpha=0.5, label=word("arrivals", lang))
    ax2.set_ylabel(word("arrivals", lang))
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    for k, (key, marker) in enumerate((("median_wait_min", "o"), ("p90_wait_min", "s"))):
        ax.plot(xs, [i[key] if i[key] is not None else float("nan") for i in items], marker=marker,
                color=OKABE_ITO[k], label=word(key, lang), markersize=3 if len(labels) > 30 else 5)
    step = max(1, len(labels) // 10)
    ax.set_xticks(list(xs)[::step], labels[::step], rotation=30, ha="right")
    ax.set_ylabel(word("minutes", lang))
    ax.set_ylim(bottom=0)
    lines, names = ax.get_legend_handles_labels()
    bars, bnames = ax2.get_legend_handles_labels()
    _legend(ax, lines + bars, names + bnames)


def draw(name: str, ax: Axes, data: dict, lang: str, *, title: bool = True) -> None:
    """Draw plot ``name`` of ``data`` (a ``Dashboard`` answer) on ``ax`` (``title``: the page has its own)."""
    setup_fonts()
    ax.set_title(word(f"plot_{name}", lang) if title else " ", loc="left", fontsize="medium", pad=22 if title else 8)
    if name == "departments":
        d = [x for x in data["departments"] if x["arrivals"]]
        _bars(ax, [_name(x, lang) for x in d], [(word(k, lang), [x[k] for x in d])
                                                for k in ("median_wait_min", "p90_wait_min")], ylabel=word("minutes", lang))
    elif name == "survey":
        d = [x for x in data["departments"] if x["survey_count"]]
        _bars(ax, [_name(x, lang) for x in d], [(word("survey_avg", lang), [x["survey_avg"] for x in d])], ylabel="1-5")
        ax.set_ylim(0, 5)
    elif name == "rooms":
        d = [x for x in data["rooms"] if x["arrivals"] and x["id"]]
        _bars(ax, [_name(x, lang) for x in d], [(word(k, lang), [x[k] for x in d])
                                                for k in ("median_wait_min", "p90_wait_min")], ylabel=word("minutes", lang))
    elif name == "hours":
        _trend(ax, [f"{h['hour']:02d}" for h in data["hours"]], data["hours"], lang)
    elif name == "days":
        _trend(ax, [d["day"][5:] for d in data["days"]], data["days"], lang)
    elif name == "weeks":
        _trend(ax, [w["week"] for w in data["weeks"]], data["weeks"], lang)
    elif name == "kiosk":
        per: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for r in data["per_kiosk_hour"]:
            per[r["kind"]][r["hour"]] += r["transactions"]
        hours = sorted({r["hour"] for r in data["per_kiosk_hour"]})
        bottom = [0] * len(hours)
        for i, kind in enumerate(k for k in ("check_in", "registration", "payment", "report") if k in per):
            values = [per[kind][h] for h in hours]
            ax.bar(range(len(hours)), values, bottom=bottom, label=word(kind, lang), color=OKABE_ITO[i],
                   hatch=HATCHES[i], edgecolor="white", linewidth=0.5)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_xticks(range(len(hours)), [f"{h:02d}" for h in hours])
        ax.set_ylabel(word("transactions", lang))
        _legend(ax, *ax.get_legend_handles_labels())
    elif name == "abandoned":
        rows = data["abandoned_at"][:10][::-1]
        ax.barh(range(len(rows)), [r["sessions"] for r in rows], color=OKABE_ITO[5])
        ax.set_yticks(range(len(rows)), [f"{word(r['kind'], lang)}: {screen_name(r['screen'], lang)}" for r in rows])
        ax.set_xlabel(word("sessions", lang))
    elif name == "compare":
        rows = data["rows"]
        labels = [_scope(r, lang) for r in rows]
        _bars(ax, labels, [(word("before", lang), [r["before"]["median_wait_min"] for r in rows]),
                           (word("after", lang), [r["after"]["median_wait_min"] for r in rows])],
              ylabel=word("median_wait_min", lang))
    else:
        raise KeyError(name)
    if not ax.has_data():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.5, 0.5, word("no_data", lang), ha="center", va="center", transform=ax.transAxes, color="#555555")


def svg(name: str, data: dict, lang: str, *, size: tuple[float, float] = (7.2, 3.4)) -> bytes:
    """Plot ``name`` as an SVG document (text as paths: the same glyphs in every browser)."""
    setup_fonts()
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    draw(name, fig.subplots(), data, lang, title=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()
