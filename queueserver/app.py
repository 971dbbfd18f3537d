"""The queue server's HTTP side: ``create_app`` builds the FastAPI application around a ``QueueService``.

Endpoints (all JSON under ``/api/v1``; see docs/api.md): check-in and walk-in tickets,
room operations, tickets, statistics, alerts, live event streams (server-sent events), and
two web pages: ``/console/{room}`` for clinicians and ``/status/{ticket_id}`` for patients.
Errors are always ``{"detail": "<plain sentence>"}``.

Reading handlers are plain ``def`` functions: FastAPI runs them in its thread pool, where the
synchronous store and hospital backend belong. State changes are ``async``: they hand the
service call to the store's writer thread, which commits them in groups (``Store.submit``),
and wait for it without holding a worker thread; on PostgreSQL they run in the thread pool.
In an HTTP worker process (``--http-workers``) ``service`` is a ``RemoteQueueService`` and
every call goes to the queue core (``queueserver.core_link``).
"""

import asyncio
import hashlib
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from protocol.api import (
    CallOut,
    CallTicketRequest,
    CheckInRequest,
    ErrorOut,
    RoomStatusRequest,
    SurveyRequest,
    TicketOut,
    TransferRequest,
    WalkInRequest,
)
from protocol.errors import ClinicflowError, ConflictError, NotFoundError
from protocol.payloads import RoomState
from queueserver.auth import Principal, TokenBook
from queueserver.store import Store
from queueserver.core_link import RemoteQueueService
from queueserver.hospital_file import HospitalFileError, parse_hospital
from queueserver.errors import BadRequestError, ForbiddenError, Unavailable
from queueserver.results import DayClosed, Issued
from queueserver.service import QueueService

log = logging.getLogger(__name__)
PAGES = Path(__file__).with_name("pages")
ERRORS = {401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 409: {"model": ErrorOut}}


# The one place a domain error becomes a status code: the first family that matches wins.
STATUS_OF: tuple[tuple[type[ClinicflowError], int], ...] = (
    (NotFoundError, 404),
    (ForbiddenError, 403),
    (BadRequestError, 400),
    (ConflictError, 409),
    (Unavailable, 503),
)
RETRY_AFTER_S = 2  # the queue core restarts within a second or two; a retry with the same key settles it


def status_of(exc: ClinicflowError) -> int:
    """The HTTP status a domain error is answered with (400 for any other ClinicflowError)."""
    for family, status in STATUS_OF:
        if isinstance(exc, family):
            return status
    return 400


def answer(result: object) -> JSONResponse:
    """A domain result as the HTTP answer: a new ticket is 201, everything else 200."""
    if isinstance(result, Issued):
        return JSONResponse(result.ticket.model_dump(mode="json"), status_code=201 if result.created else 200)
    if isinstance(result, BaseModel):
        return JSONResponse(result.model_dump(mode="json"))
    if isinstance(result, DayClosed):
        return JSONResponse({"cancelled": result.cancelled, "finished": result.finished})
    raise TypeError(f"no HTTP answer for {type(result).__name__}")


class ApiError(ClinicflowError):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Broadcaster:
    """Wakes the live streams after every committed change (called from worker threads)."""

    def __init__(self) -> None:
        self.version = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cond: asyncio.Condition | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._cond = asyncio.Condition()

    def changed(self, rooms: set[str], tickets: set[str]) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._bump()))

    async def _bump(self) -> None:
        assert self._cond is not None
        async with self._cond:
            self.version += 1
            self._cond.notify_all()

    async def wait(self, seen: int, timeout: float) -> int:
        assert self._cond is not None
        async with self._cond:
            try:
                await asyncio.wait_for(self._cond.wait_for(lambda: self.version != seen), timeout)
            except asyncio.TimeoutError:
                pass
            return self.version


def start_background_loops(service: QueueService, *, alert_interval: float,
                           republish_interval: float) -> threading.Event:
    """Long-wait checks and (with several replicas) periodic republishing, in daemon threads; set the event to stop."""
    stop = threading.Event()

    def every(interval: float, fn: Callable[[], object], what: str) -> None:
        while not stop.wait(interval):
            try:
                fn()
            except Exception:
                log.exception("%s failed", what)

    if alert_interval > 0:
        threading.Thread(target=every, args=(alert_interval, service.check_alerts, "long-wait check"),
                         name="long-wait-alerts", daemon=True).start()
    if republish_interval > 0:
        # With several replicas two snapshots of a room can reach the broker out of order, leaving an
        # older retained one; screens order by seq, and this bounds how long a newcomer sees it.
        threading.Thread(target=every, args=(republish_interval, service.republish_all, "periodic republish"),
                         name="republish", daemon=True).start()
    return stop


def create_app(
    service: QueueService,
    tokens: TokenBook,
    *,
    on_startup: Callable[[], None] | None = None,
    on_shutdown: Callable[[], None] | None = None,
    alert_interval: float = 15.0,
    keepalive: float = 15.0,
    hospital_path: Path | None = None,
    republish_interval: float = 0.0,
    data_dir: Path | None = None,
    store: Store | None = None,
) -> FastAPI:
    """The FastAPI app of one site. ``on_startup``/``on_shutdown`` run in the lifespan (the CLI starts MQTT there).

    ``hospital_path``: where the admin API saves a changed hospital configuration (JSON).
    ``republish_interval``: seconds between republishing every room snapshot (0: only on change
    and on connect; the CLI turns it on for PostgreSQL, where several replicas may publish).
    ``data_dir``: where the dashboard keeps its weekly reports (``<data_dir>/weekly-reports``);
    ``store``: the store the dashboard reads in an HTTP worker (the service's own store otherwise).
    """
    broadcaster = Broadcaster()
    service.add_listener(broadcaster.changed)
    remote = isinstance(service, RemoteQueueService)  # an HTTP worker process: the queue core runs elsewhere

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        broadcaster.bind(asyncio.get_running_loop())
        if on_startup:
            await run_in_threadpool(on_startup)
        stop_loops = start_background_loops(service, alert_interval=alert_interval,  # type: ignore[arg-type]
                                            republish_interval=republish_interval)
        try:
            yield
        finally:
            stop_loops.set()
            if on_shutdown:
                await run_in_threadpool(on_shutdown)

    app = FastAPI(title="clinicflow queue server", version="1", lifespan=lifespan,
                  description="Queue tickets, calling rules, room operations and statistics. See docs/api.md.")
    app.state.service = service
    app.state.tokens = tokens
    app.state.broadcaster = broadcaster

    # ------------------------------------------------------------ errors
    @app.exception_handler(ClinicflowError)
    async def _domain_error(request: Request, exc: ClinicflowError) -> JSONResponse:
        status = exc.status if isinstance(exc, ApiError) else status_of(exc)
        headers = None
        if status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        elif status == 503:
            headers = {"Retry-After": str(RETRY_AFTER_S)}
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors()[:3]:
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
            problems.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}")
        return JSONResponse({"detail": "Invalid request: " + "; ".join(problems) + "."}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is no such address: {request.url.path}."
        return JSONResponse({"detail": detail}, status_code=exc.status_code)

    # -------------------------------------------------------------- auth
    async def principal(authorization: Annotated[str | None, Header()] = None,
                        access_token: Annotated[str | None, Query(include_in_schema=False)] = None) -> Principal:
        # async: a plain-CPU dependency would otherwise cost a thread-pool hop on every request
        token = None
        if authorization and authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
        elif access_token:  # EventSource cannot send headers: live streams take the token as a parameter
            token = access_token
        if not token:
            raise ApiError(401, "This needs a bearer token: send 'Authorization: Bearer <token>'.")
        found = tokens.lookup(token)
        if found is None:
            raise ApiError(401, "The token is not valid for this server.")
        return found

    Who = Annotated[Principal, Depends(principal)]

    def need(who: Principal, *roles: str, room: str | None = None, what: str = "do this") -> None:
        if who.role not in roles:
            raise ApiError(403, f"A {who.role} token cannot {what}.")
        if room is not None and not who.may_use_room(room):
            if service.hospital.room(room) is None:
                raise NotFoundError(f"There is no room {room!r}.")
            raise ApiError(403, f"This clinician token is not for room {room}; it is for "
                                f"{', '.join(sorted(who.rooms or ()))}.")

    def idem(request: Request, who: Principal, key: str | None, body: BaseModel | None = None) -> dict:
        if key is not None and not (1 <= len(key) <= 100):
            raise ApiError(400, "Idempotency-Key must be 1 to 100 characters.")
        payload = body.model_dump_json() if body is not None else ""
        fp = hashlib.sha256(f"{request.method} {request.url.path} {payload}".encode()).hexdigest()
        return {"idem_key": f"{who.name}:{key}" if key else None, "fingerprint": fp}

    IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]

    async def write(operation: str, /, *args: object, **kwargs: object) -> JSONResponse:
        """Run the state-changing service call ``operation``: at the queue core, in the next group commit
        (SQLite) or in a worker thread (PostgreSQL)."""
        if remote:
            return answer(await service.call(operation, *args, **kwargs))  # type: ignore[attr-defined]
        method = getattr(service, operation)
        if service.store.groups_commits:
            return answer(await asyncio.wrap_future(service.store.submit(partial(method, *args, **kwargs))))
        return answer(await run_in_threadpool(method, *args, **kwargs))

    # ------------------------------------------------------------ basics
    @app.get("/api/v1/health", tags=["server"])
    def health() -> dict:
        """Liveness (no token): the site and whether MQTT is connected."""
        if remote:  # the queue core's connection is the one that publishes
            return {"status": "ok", "site": service.site, "mqtt_connected": service.call_sync("mqtt_connected")}  # type: ignore[attr-defined]
        bus = getattr(app.state, "bus", None)
        return {"status": "ok", "site": service.site, "mqtt_connected": bool(bus and bus.connected)}

    @app.get("/api/v1/hospital", tags=["server"], responses=ERRORS)
    def hospital(who: Who) -> dict:
        """Departments and rooms of the site (kiosks show walk-in departments from this)."""
        h = service.hospital
        return {"site": service.site, "name": dict(h.site.name), "timezone": h.site.timezone,
                "departments": [{"id": d.id, "prefix": d.prefix, "name": dict(d.name), "emergency": d.emergency,
                                 "slot_minutes": d.slot_minutes} for d in h.departments],
                "rooms": [{"id": r.id, "name": dict(r.name), "departments": list(r.departments)} for r in h.rooms],
                "priority_groups": list(h.rules.priority_groups)}

    # ------------------------------------------------------------ tickets
    @app.post("/api/v1/checkins", tags=["tickets"], status_code=201, response_model=TicketOut, responses=ERRORS)
    async def check_in(body: CheckInRequest, request: Request, who: Who, key: IdemKey = None) -> JSONResponse:
        """Check in an appointment: 201 and a new ticket, or 200 with ``already_checked_in`` for a repeat."""
        need(who, "kiosk", "admin", "clinician", what="check patients in")
        return await write("check_in", body.appointment_no, **idem(request, who, key, body))

    @app.post("/api/v1/walkins", tags=["tickets"], status_code=201, response_model=TicketOut, responses=ERRORS)
    async def walk_in(body: WalkInRequest, request: Request, who: Who, key: IdemKey = None) -> JSONResponse:
        """A ticket without an appointment. Only staff (clinician, admin) may issue emergency tickets."""
        need(who, "kiosk", "admin", "clinician", what="issue tickets")
        if body.emergency and who.role == "kiosk":
            raise ApiError(403, "A kiosk cannot issue emergency tickets: staff triage emergencies.")
        return await write("walk_in", body.department, priority=body.priority, emergency=body.emergency,
                           language=body.language, source="walk_in" if who.role == "kiosk" else "desk",
                           **idem(request, who, key, body))

    @app.get("/api/v1/tickets/{ticket_id}", tags=["tickets"], response_model=TicketOut, responses=ERRORS)
    def get_ticket(ticket_id: str) -> TicketOut:
        """A ticket by its id (no token: the unguessable id printed in the QR code is the key)."""
        return service.ticket(ticket_id)

    @app.get("/api/v1/tickets/{ticket_id}/status", tags=["tickets"], responses=ERRORS)
    def ticket_status(ticket_id: str) -> dict:
        """The patient page's view of a ticket: TicketOut plus ``survey_open``/``survey_done``."""
        return service.ticket_detail(ticket_id)

    @app.post("/api/v1/tickets/{ticket_id}/survey", tags=["tickets"], responses=ERRORS)
    def survey(ticket_id: str, body: SurveyRequest) -> dict:
        """The patient's rating (1-5) and comment, once, after the visit is finished."""
        service.survey(ticket_id, body.score, body.comment)
        return {"ok": True}

    @app.post("/api/v1/tickets/{ticket_id}/transfer", tags=["tickets"], response_model=TicketOut, responses=ERRORS)
    async def transfer(ticket_id: str, body: TransferRequest, request: Request, who: Who,
                       key: IdemKey = None) -> JSONResponse:
        """Move a ticket to another department or room, keeping its number; placement front, keep or back."""
        need(who, "clinician", "admin", what="transfer patients")
        scope = who.rooms if who.role == "clinician" else None
        return await write("transfer", ticket_id, department=body.department, room=body.room,
                           placement=body.placement, by_rooms=scope, **idem(request, who, key, body))

    @app.post("/api/v1/tickets/{ticket_id}/return", tags=["tickets"], response_model=TicketOut, responses=ERRORS)
    async def return_with_results(ticket_id: str, request: Request, who: Who, key: IdemKey = None) -> JSONResponse:
        """A patient seen today is back with test results: queued near the front of the same room."""
        need(who, "kiosk", "clinician", "admin", what="re-queue patients")
        return await write("return_with_results", ticket_id, **idem(request, who, key))

    @app.post("/api/v1/tickets/{ticket_id}/cancel", tags=["tickets"], response_model=TicketOut, responses=ERRORS)
    async def cancel(ticket_id: str, request: Request, who: Who, key: IdemKey = None) -> JSONResponse:
        need(who, "clinician", "admin", what="cancel tickets")
        return await write("cancel", ticket_id, reason=f"cancelled by {who.name}", **idem(request, who, key))

    # -------------------------------------------------------------- rooms
    @app.get("/api/v1/rooms", tags=["rooms"], response_model=list[RoomState], responses=ERRORS)
    def list_rooms(who: Who) -> list[RoomState]:
        return [service.room_state(r.id) for r in service.hospital.rooms]

    @app.get("/api/v1/rooms/{room}/state", tags=["rooms"], response_model=RoomState, responses=ERRORS)
    def room_state(room: str, who: Who) -> RoomState:
        """The room's snapshot, the same model as the retained MQTT message."""
        return service.room_state(room)

    @app.get("/api/v1/rooms/{room}/console", tags=["rooms"], responses=ERRORS)
    def console_view(room: str, who: Who) -> dict:
        """What the clinician page shows: current ticket and its reason, the queue with reasons, alerts."""
        need(who, "clinician", "admin", room=room, what="see the waiting list")
        return service.console(room)

    def room_op(path: str, name: str, summary: str, *extra: str) -> None:
        async def handler(room: str, request: Request, who: Who, key: IdemKey = None) -> JSONResponse:
            need(who, "clinician", "admin", room=room, what="call patients")
            return await write(name, room, *extra, **idem(request, who, key))
        handler.__name__ = path.replace("-", "_")
        app.post(f"/api/v1/rooms/{{room}}/{path}", tags=["rooms"], summary=summary, responses=ERRORS)(handler)

    room_op("call-next", "call_next", "Finish the current patient and call the next by the rules (CallOut)")
    room_op("recall", "recall", "Call the current ticket again (CallOut)")
    room_op("no-show", "no_show", "The called patient did not come (TicketOut)")
    room_op("start", "start_service", "The called patient is in the room (TicketOut)")
    room_op("finish", "finish", "The current patient is done (TicketOut)")
    room_op("pause", "set_room_status", "Pause the room (RoomState)", "paused")
    room_op("resume", "set_room_status", "Resume the room (RoomState)", "open")

    @app.post("/api/v1/rooms/{room}/call", tags=["rooms"], response_model=CallOut, responses=ERRORS)
    async def call_ticket(room: str, body: CallTicketRequest, request: Request, who: Who,
                          key: IdemKey = None) -> JSONResponse:
        """Call a chosen waiting ticket (out of order: the reason records it)."""
        need(who, "clinician", "admin", room=room, what="call patients")
        return await write("call_ticket", room, body.ticket_id, **idem(request, who, key, body))

    # -------------------------------------------------------------- admin
    @app.patch("/api/v1/admin/rooms/{room}", tags=["admin"], response_model=RoomState, responses=ERRORS)
    def admin_room(room: str, body: RoomStatusRequest, request: Request, who: Who, key: IdemKey = None) -> JSONResponse:
        need(who, "admin", what="change rooms")
        return answer(service.set_room_status(room, body.status, **idem(request, who, key, body)))

    @app.get("/api/v1/admin/hospital", tags=["admin"], responses=ERRORS)
    def get_hospital_config(who: Who) -> dict:
        """The running hospital configuration (the hospital file as JSON)."""
        need(who, "admin", what="read the hospital configuration")
        return service.hospital.model_dump(mode="json")

    @app.put("/api/v1/admin/hospital", tags=["admin"], responses=ERRORS)
    def put_hospital_config(body: dict, who: Who) -> dict:
        """Replace the hospital configuration (validated like the file; saved to DATA_DIR/hospital.json)."""
        need(who, "admin", what="change the hospital configuration")
        try:
            new = parse_hospital(body, source="the hospital configuration")
        except HospitalFileError as exc:
            raise ApiError(422, "; ".join(exc.problems)) from None
        service.replace_hospital(new)
        if hospital_path is not None:
            tmp = hospital_path.with_suffix(".tmp")
            tmp.write_text(new.model_dump_json(indent=2), encoding="utf-8")
            os.replace(tmp, hospital_path)
        return new.model_dump(mode="json")

    @app.post("/api/v1/admin/end-of-day", tags=["admin"], responses=ERRORS)
    def end_of_day(request: Request, who: Who, key: IdemKey = None) -> JSONResponse:
        """Cancel every ticket still waiting or called; finish the ones being served."""
        need(who, "admin", what="end the day")
        return answer(service.end_of_day(**idem(request, who, key)))

    @app.post("/api/v1/admin/check-alerts", tags=["admin"], responses=ERRORS)
    def check_alerts(who: Who) -> list[dict]:
        """Run the long-wait check now (it also runs every few seconds by itself)."""
        need(who, "admin", what="run checks")
        return [a.model_dump(mode="json") for a in service.check_alerts()]

    @app.get("/api/v1/alerts", tags=["stats"], responses=ERRORS)
    def alerts(who: Who, room: str | None = None) -> list[str]:
        """Current long waits, as sentences (for one room, or every room the token may see)."""
        need(who, "clinician", "admin", room=room, what="see alerts")
        rooms = [room] if room else [r.id for r in service.hospital.rooms if who.may_use_room(r.id)]
        return [a for r in rooms for a in service.console(r)["alerts"]]

    @app.get("/api/v1/stats", tags=["stats"], responses=ERRORS)
    def stats(who: Who, day: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")] = None) -> dict:
        """Per department and room for a day (default today): tickets, waits, service, no-shows, recalls, survey."""
        need(who, "admin", "clinician", "manager", what="read statistics")
        return service.stats(day)

    @app.get("/api/v1/stats.csv", tags=["stats"], responses=ERRORS)
    def stats_csv(who: Who, day: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")] = None) -> Response:
        need(who, "admin", "clinician", "manager", what="read statistics")
        text = service.stats_csv(day)
        name = f"clinicflow-stats-{day or service.today()}.csv"
        return PlainTextResponse(text, media_type="text/csv",
                                 headers={"Content-Disposition": f'attachment; filename="{name}"'})

    # ------------------------------------------------------- live streams
    def sse(request: Request, render: Callable[[], dict]) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            last = None
            seen = -1
            while not await request.is_disconnected():
                try:
                    data = await run_in_threadpool(render)
                except ClinicflowError as exc:
                    yield f"event: error\ndata: {json.dumps({'detail': str(exc)})}\n\n"
                    return
                text = json.dumps(data, ensure_ascii=False, default=str)
                if text != last:
                    yield f"data: {text}\n\n"
                    last = text
                else:
                    yield ": keep-alive\n\n"
                seen = await broadcaster.wait(seen if seen >= 0 else broadcaster.version, keepalive)
        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.get("/api/v1/rooms/{room}/events", tags=["live"], responses=ERRORS)
    def room_events(room: str, request: Request, who: Who) -> StreamingResponse:
        """Server-sent events: the console view of the room after every change (token as ?access_token=)."""
        need(who, "clinician", "admin", room=room, what="see the waiting list")
        return sse(request, lambda: service.console(room))

    @app.get("/api/v1/tickets/{ticket_id}/events", tags=["live"], responses=ERRORS)
    def ticket_events(ticket_id: str, request: Request) -> StreamingResponse:
        """Server-sent events: the patient page's view of a ticket after every change."""
        service.ticket(ticket_id)  # 404 before the stream starts
        return sse(request, lambda: service.ticket_detail(ticket_id))

    # -------------------------------------------------------------- pages
    console_html = (PAGES / "console.html").read_text(encoding="utf-8")
    status_html = (PAGES / "status.html").read_text(encoding="utf-8")

    @app.get("/console/{room}", response_class=HTMLResponse, include_in_schema=False)
    def console_page(room: str) -> HTMLResponse:
        if service.hospital.room(room) is None:
            return HTMLResponse(f"<h1>There is no room {room!r}.</h1>", status_code=404)
        return HTMLResponse(console_html)

    @app.get("/status/{ticket_id}", response_class=HTMLResponse, include_in_schema=False)
    def status_page(ticket_id: str) -> HTMLResponse:
        return HTMLResponse(status_html)

    from queueserver.patient_api import patient_router  # kiosk patient API (docs/kiosk.md)
    app.include_router(patient_router(service, tokens))
    from queueserver.fleet import fleet_router  # fleet health page and API (docs/technicians.md)
    app.include_router(fleet_router())
    dashboard_store = store or getattr(service, "store", None)
    if dashboard_store is not None:  # managers' figures and reports (docs/dashboard.md)
        from queueserver.dashboard.router import dashboard_router
        app.include_router(dashboard_router(service, store=dashboard_store,
                                            reports_dir=(data_dir or Path("clinicflow-data")) / "weekly-reports"))
    return app
