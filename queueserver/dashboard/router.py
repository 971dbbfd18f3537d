"""HTTP side of the dashboard: the page, its JSON, plots (SVG), CSV per plot, weekly reports, kiosk events.

    GET  /dashboard                                   the page (token once as #token=..., like the console)
    GET  /api/v1/dashboard/queue?first=&last=&department=      figures per department, room, hour, day, week
    GET  /api/v1/dashboard/compare?before=A..B&after=C..D      two ranges side by side
    GET  /api/v1/dashboard/kiosk?first=&last=                  self-service figures
    GET  /api/v1/dashboard/plots/{plot}.svg?...&lang=zh|en     a plot;  .../tables/{plot}.csv: its numbers
    GET  /api/v1/dashboard/reports                             stored weekly PDFs;  POST: make one now
    GET  /api/v1/dashboard/reports/{name}                      one PDF
    POST /api/v1/kiosk-events                                  a kiosk reports a finished or abandoned session

Reading needs a ``manager`` or ``admin`` token (managers can read nothing else and change
nothing); kiosk events need the ``kiosk`` token. The rights are the app's ``Allow`` (injected), so
they are enforced, published and refused in a URL like every other route's. The router's lifespan runs the scheduler
(``scheduler.DashboardScheduler``): past days are closed into aggregates, weekly reports written.
"""
from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from queueserver.dashboard import plots, report
from queueserver.dashboard.kiosk_events import KioskEvent, record_kiosk_event
from queueserver.hospital.desk_records import PaymentChannels
from queueserver.dashboard.queries import Dashboard, RangeError
from queueserver.dashboard.scheduler import DashboardScheduler
from queueserver.store import Store

PAGES = Path(__file__).resolve().parent.parent / "pages"
STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
QUEUE_PLOTS = ("departments", "rooms", "hours", "days", "weeks", "survey")
KIOSK_PLOTS = ("kiosk", "kiosk_kinds", "abandoned")
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
Day = Annotated[str, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", json_schema_extra={"format": "date"}, description="YYYY-MM-DD")]
Lang = Annotated[Literal["en", "zh"], Query()]
RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")


class ReportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    week_start: date | None = Field(None, description="Monday of the week; default: the last full week")
    language: Literal["en", "zh"] = "zh"


def _range(text: str, label: str) -> tuple[str, str]:
    m = RANGE.match(text)
    if not m:
        raise HTTPException(400, f"{label} is FIRST..LAST, e.g. 2026-11-01..2026-11-30.")
    return m.group(1), m.group(2)


def dashboard_router(service: Any, *, store: Store, reports_dir: Path, allow: Callable[..., Any],
                     schedule: bool = True) -> APIRouter:
    """The router to ``include_router`` into the queue server's app.

    ``service`` gives the hospital file (a ``QueueService`` or, in an HTTP worker, its stand-in)
    and its clock if it has one; ``store`` is read for the figures and written for kiosk events;
    ``allow`` makes a route's rights dependency (``queueserver.app.Allow``).
    """
    Reader = Depends(allow("manager", "admin", what="read the dashboard"))  # noqa: N806  (a dependency, like a type)
    clock = getattr(service, "clock", None) or (lambda: datetime.now(timezone.utc))

    def today() -> str:
        return clock().astimezone(service.hospital.tz).date().isoformat()

    backend = getattr(service, "backend", None)
    board = Dashboard(hospital=service.hospital, read=store.read, today=today,
                      payments=backend if isinstance(backend, PaymentChannels) else None)
    scheduler = DashboardScheduler(board, store, reports_dir=reports_dir, clock=clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if schedule:
            scheduler.start()
        try:
            yield
        finally:
            scheduler.stop()

    router = APIRouter(lifespan=lifespan)
    router.board = board  # type: ignore[attr-defined]  # tests and the bench reach the queries
    router.scheduler = scheduler  # type: ignore[attr-defined]

    def refresh() -> None:
        board.hospital = service.hospital

    def queue(first: str, last: str, department: str | None) -> dict:
        refresh()
        try:
            return board.queue_figures(first, last, department=department or None)
        except RangeError as exc:
            raise HTTPException(400, str(exc)) from None

    def kiosk(first: str, last: str) -> dict:
        refresh()
        try:
            return board.kiosk_figures(first, last)
        except RangeError as exc:
            raise HTTPException(400, str(exc)) from None

    def compare(before: str, after: str, department: str | None) -> dict:
        refresh()
        try:
            return board.compare(_range(before, "before"), _range(after, "after"), department=department or None)
        except RangeError as exc:
            raise HTTPException(400, str(exc)) from None

    def data_for(plot: str, first: str | None, last: str | None, department: str | None,
                 before: str | None, after: str | None) -> dict:
        if plot == "compare":
            if not before or not after:
                raise HTTPException(400, "The compare plot needs before=FIRST..LAST and after=FIRST..LAST.")
            return compare(before, after, department)
        if not first or not last:
            raise HTTPException(400, "This needs first= and last= (YYYY-MM-DD).")
        if plot in QUEUE_PLOTS:
            return queue(first, last, department)
        if plot in KIOSK_PLOTS:
            return kiosk(first, last)
        raise HTTPException(404, f"There is no plot {plot!r}; plots: "
                                 f"{', '.join(QUEUE_PLOTS + KIOSK_PLOTS + ('compare',))}.")

    page = (PAGES / "dashboard.html").read_text(encoding="utf-8")

    @router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
    def dashboard_page() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store"})

    @router.get("/dashboard/{name}", include_in_schema=False)
    def dashboard_static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, f"There is no such address: /dashboard/{name}.")
        return Response((PAGES / name).read_bytes(), media_type=STATIC[name])

    @router.get("/api/v1/dashboard/queue", tags=["dashboard"], dependencies=[Reader])
    async def queue_figures(first: Day, last: Day, department: str | None = None) -> dict:
        """Per department, room, hour of day, day and week: arrivals, waits, long waits, service, no-shows, survey."""
        return await run_in_threadpool(queue, first, last, department)

    @router.get("/api/v1/dashboard/compare", tags=["dashboard"], dependencies=[Reader])
    async def compare_ranges(before: str, after: str, department: str | None = None) -> dict:
        """Two date ranges side by side (``before=2026-10-01..2026-10-31&after=2026-11-01..2026-11-30``)."""
        return await run_in_threadpool(compare, before, after, department)

    @router.get("/api/v1/dashboard/kiosk", tags=["dashboard"], dependencies=[Reader])
    async def kiosk_figures(first: Day, last: Day) -> dict:
        """Kiosk transactions per kiosk and hour, time per transaction, abandoned sessions, shares, advice."""
        return await run_in_threadpool(kiosk, first, last)

    @router.get("/api/v1/dashboard/plots/{plot}.svg", tags=["dashboard"], dependencies=[Reader], response_class=Response,
                responses={200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}}, "description": "the plot"}})
    async def plot_svg(plot: str, lang: Lang = "zh", first: Day | None = None, last: Day | None = None,
                       department: str | None = None, before: str | None = None, after: str | None = None) -> Response:
        if plot == "kiosk_kinds":
            raise HTTPException(404, "kiosk_kinds is a table without a plot.")
        data = await run_in_threadpool(data_for, plot, first, last, department, before, after)
        body = await run_in_threadpool(plots.svg, plot, data, lang)
        return Response(body, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})

    @router.get("/api/v1/dashboard/tables/{plot}.csv", tags=["dashboard"], dependencies=[Reader], response_class=PlainTextResponse,
                responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "the plot's numbers"}})
    async def plot_csv(plot: str, lang: Lang = "zh", first: Day | None = None, last: Day | None = None,
                       department: str | None = None, before: str | None = None, after: str | None = None) -> Response:
        data = await run_in_threadpool(data_for, plot, first, last, department, before, after)
        text = plots.table_csv(plot, data, lang)
        name = f"clinicflow-{plot}-{first or ''}-{last or ''}.csv".replace("--", "-")
        return PlainTextResponse("\ufeff" + text, media_type="text/csv; charset=utf-8",  # BOM: Excel reads UTF-8
                                 headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @router.get("/api/v1/dashboard/reports", tags=["dashboard"], dependencies=[Reader])
    async def list_reports() -> list[dict]:
        """The stored weekly reports, newest first."""
        return await run_in_threadpool(report.list_reports, store)

    @router.post("/api/v1/dashboard/reports", tags=["dashboard"], dependencies=[Reader], status_code=201)
    async def make_report(body: ReportRequest) -> dict:
        """Write the weekly PDF now (it is also written every Monday by itself)."""
        week = body.week_start or report.last_full_week(date.fromisoformat(today()))
        if week.weekday() != 0:
            raise HTTPException(400, f"week_start {week} is a {week:%A}; weeks start on Monday.")
        refresh()
        return await run_in_threadpool(scheduler.write_report, week, body.language)

    @router.get("/api/v1/dashboard/reports/{name}", tags=["dashboard"], dependencies=[Reader], response_class=FileResponse,
                responses={200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
                                 "description": "the weekly report (PDF)"}})
    def get_report(name: str) -> FileResponse:
        path = report.report_path(reports_dir, name)
        if path is None:
            raise HTTPException(404, f"There is no report {name!r}.")
        return FileResponse(path, media_type="application/pdf", filename=name)

    @router.post("/api/v1/kiosk-events", tags=["kiosk"], dependencies=[Depends(allow("kiosk", what="report kiosk sessions"))], status_code=202)
    async def kiosk_event(body: KioskEvent) -> dict:
        """A kiosk session ended: what it was for, done or abandoned, on which screen, how long it took."""
        now = clock()
        stored = await run_in_threadpool(record_kiosk_event, store, body, now=now,
                                         day=now.astimezone(service.hospital.tz).date().isoformat())
        if stored:
            board.forget_open_days()
        return {"stored": stored}

    return router
