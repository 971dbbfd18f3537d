"""The queue server's HTTP side: ``create_app`` builds the FastAPI application around a ``QueueService``.

Endpoints (all JSON under ``/api/v1``; see docs/api.md): check-in and walk-in tickets,
room operations, tickets, statistics, alerts, live event streams (server-sent events), and
web pages: ``/console/{room}`` for clinicians, ``/status/{ticket_id}`` for patients; the help desk
(``/desk``, help requests: ``queueserver.helpdesk_api``), the patient API and ``/fleet`` are routers.
Errors are always ``{"detail": "<plain sentence>"}``, and the OpenAPI description says so for
every status an operation can answer (``document_errors``). Who may call what is declared once
per route with ``allow(...)``: the same declaration checks the caller, shows in the OpenAPI as
``x-clinicflow-roles`` and is what docs/api.md's rights table is tested against
(``rights_table``). Tokens come only in the ``Authorization`` header; live streams also take a
short-lived stream ticket (``POST /api/v1/stream-tickets``), because EventSource sends no headers.

Reading handlers are plain ``def`` functions: FastAPI runs them in its thread pool, where the
synchronous store and hospital backend belong. State changes are ``async``: they hand the
service call to the store's writer thread, which commits them in groups (``Store.submit``),
and wait for it without holding a worker thread; on PostgreSQL they run in the thread pool.
In an HTTP worker process (``--http-workers``) ``service`` is a ``RemoteQueueService`` and
every call goes to the queue core (``queueserver.core_link``).
"""

import asyncio
import hashlib
import logging
import os
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route, compile_path

from protocol.api import (
    CallOut,
    CallTicketRequest,
    CheckInRequest,
    ErrorOut,
    RoomStatusRequest,
    StreamTicketOut,
    SurveyRequest,
    TicketOut,
    TransferRequest,
    WalkInRequest,
)
from protocol.errors import ClinicflowError, ConflictError, NotFoundError
from protocol.payloads import RoomState
from queueserver.background import start_background_loops
from queueserver.auth import ROLES, STREAM_TICKET_TTL, Principal, TokenBook
from queueserver.core_link import RemoteQueueService
from queueserver.errors import BadRequestError, ForbiddenError, NotAuthenticated, Unavailable
from queueserver.help_stats import help_stats, help_stats_csv
from queueserver.helpdesk import HelpDesk, escalate_after_from_env
from queueserver.hospital_file import Hospital, HospitalFileError, parse_hospital
from queueserver.live import sse_stream
from queueserver.page_security import SecurityHeaders, content_security_policy, html_page
from queueserver.results import DayClosed, Issued
from queueserver.service import QueueService
from queueserver.store import Store

log = logging.getLogger(__name__)
PAGES = Path(__file__).with_name("pages")
PUBLIC = ("none",)  # the rights of a route that needs no token

# Path parameters are identifiers: anything else is a 422 before any lookup.
RoomId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
TicketId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
Day = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", json_schema_extra={"format": "date"},
                                  description="YYYY-MM-DD (default: today at the site)")]


def a_day(day: str | None) -> str | None:
    """``day`` if it is a real date (the pattern lets 2026-02-30 through)."""
    if day is not None:
        try:
            date.fromisoformat(day)
        except ValueError:
            raise ApiError(422, f"Invalid request: day: {day} is not a date.") from None
    return day



class EventStreamResponse(StreamingResponse):
    media_type = "text/event-stream"


class CsvResponse(PlainTextResponse):
    media_type = "text/csv"


def bearer_principal(request: Request, *, stream: bool = False) -> Principal:
    """The caller of ``Authorization: Bearer <token>`` (401 without one); ``stream``: a ``?ticket=`` also does."""
    tokens: TokenBook = request.app.state.tokens
    authorization = request.headers.get("authorization", "")
    if authorization[:7].lower() == "bearer " and authorization[7:].strip():
        found = tokens.lookup(authorization[7:].strip())
        if found is None:
            raise ApiError(401, "The token is not valid for this server.")
        return found
    ticket = request.query_params.get("ticket") if stream else None
    if ticket:
        found = tokens.stream_principal(ticket)
        if found is None:
            raise ApiError(401, "The stream ticket has expired or is not valid: get a new one from "
                                "POST /api/v1/stream-tickets.")
        return found
    if "access_token" in request.query_params:
        raise ApiError(401, "Tokens are not accepted in the address (they end up in logs): send "
                            "'Authorization: Bearer <token>'" + ("; a browser's EventSource takes a stream ticket "
                                                                   "(POST /api/v1/stream-tickets)." if stream else "."))
    raise ApiError(401, "This needs a bearer token: send 'Authorization: Bearer <token>'.")


class Allow:
    """The rights of a route, as a FastAPI dependency: ``dependencies=[Depends(Allow("clinician", "admin", scope="room"))]``.

    ``roles``: the token roles that may call. ``scope``: what a room-scoped clinician is limited
    to: ``"room"``, the room named by the path (or the ``room`` query parameter), checked here;
    ``"ticket"``, tickets of their rooms, checked by the service inside the transaction (the
    ticket's room is only known there). ``stream``: a live stream, which also takes a stream
    ticket. The same object is read back by ``rights_table``.
    """

    def __init__(self, *roles: str, scope: str = "", what: str = "do this", stream: bool = False) -> None:
        assert scope in ("", "room", "ticket")
        self.roles, self.scope, self.what, self.stream = roles, scope, what, stream

    async def __call__(self, request: Request) -> Principal:  # async: no thread-pool hop for plain CPU work
        who = bearer_principal(request, stream=self.stream)
        if who.role not in self.roles:
            raise ApiError(403, f"A {who.role} token cannot {self.what}.")
        room = (request.path_params.get("room") or request.query_params.get("room")) if self.scope == "room" else None
        if room is not None and not who.may_use_room(room):
            service = request.app.state.service
            if service.hospital.room(room) is None:
                raise NotFoundError(f"There is no room {room!r}.")
            raise ApiError(403, f"This clinician token is not for room {room}; it is for "
                                f"{', '.join(sorted(who.rooms or ()))}.")
        return who


def route_rights(route: APIRoute | RouteContext) -> tuple[tuple[str, ...], str]:
    """(roles, scope) of one route, from the ``Allow``-like dependencies it declares.

    A dependency declares rights by a ``roles`` tuple (``Allow``, the patient API's and the fleet
    API's checks); a route with none is public.
    """
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        roles = getattr(dep.call, "roles", None)
        if isinstance(roles, tuple):
            return roles, str(getattr(dep.call, "scope", ""))
        stack.extend(dep.dependencies)
    return PUBLIC, ""


ERROR_MEANINGS = {
    400: "impossible input (a sentence says what)",
    401: "no token, an unknown one, or (patient calls) an ended patient session",
    403: "this role or room may not do this",
    404: "unknown room, ticket, appointment, department, payment or report",
    409: "not allowed in the current state",
    422: "malformed input: which field and why",
    429: "too many failed attempts: wait for Retry-After seconds",
    503: "the queue core is restarting: retry after Retry-After seconds with the same Idempotency-Key",
}


def document_errors(schema: dict, app: FastAPI) -> dict:
    """Make the OpenAPI say what the server does: every error as ``ErrorOut`` (422 included, which
    FastAPI describes as its own array form), the statuses each operation can answer, its rights
    (``x-clinicflow-roles``, ``x-clinicflow-scope``) and its bearer security."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["ErrorOut"] = ErrorOut.model_json_schema()
    hospital_schema = Hospital.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(hospital_schema.pop("$defs", {}))
    schemas["Hospital"] = hospital_schema
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
    for (method, path), (roles, scope) in rights_table(app).items():
        op = schema["paths"][path][method.lower()]
        op["x-clinicflow-roles"] = list(roles)
        op["x-clinicflow-scope"] = scope
        statuses = {422, 503}
        if roles != PUBLIC:
            op["security"] = [{"bearer": []}]
            statuses |= {401} | ({403} if set(roles) != set(ROLES) or scope else set())
        if "{" in path or method != "GET" or op.get("parameters"):
            statuses |= {404}
        if method != "GET" or "{" in path:
            statuses |= {400, 409}
        if path.startswith("/api/v1/dashboard/"):
            statuses |= {400}  # a range that ends before it starts, a week that does not start on a Monday
        if path.startswith(("/api/v1/patient/", "/api/v1/payments/")):
            statuses |= {401, 403}  # the patient session, and someone else's card or report
        if path == "/api/v1/patient/identify":
            statuses |= {429}
        for status in sorted(statuses):
            op["responses"].setdefault(str(status), {"description": ERROR_MEANINGS[status]})
            op["responses"][str(status)].update(error)
    return schema


def rights_markdown(rows: list[tuple[str, str, tuple[str, ...], str]]) -> str:
    """docs/api.md's rights table from (method, path, roles, scope) rows (tests/test_api_authz.py checks it)."""
    def who(roles: tuple[str, ...]) -> str:
        if roles == PUBLIC:
            return "no token"
        return "any token" if set(roles) == set(ROLES) else ", ".join(r for r in ROLES if r in roles)
    scope = {"": "", "room": "their rooms only", "ticket": "tickets of their rooms only"}
    lines = ["| method and path | who may call | a clinician scoped to rooms |", "|---|---|---|"]
    for method, path, roles, limit in sorted(rows, key=lambda r: (r[1], r[0])):
        lines.append(f"| `{method} {path}` | {who(roles)} | {scope[limit]} |")
    return "\n".join(lines)


def rights_table(app: FastAPI) -> dict[tuple[str, str], tuple[tuple[str, ...], str]]:
    """(METHOD, path) -> (roles, scope) for every documented API route (docs/api.md's table)."""
    table: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {}
    for route in iter_route_contexts(app.routes):  # included routers' routes too, with their prefixes
        # an APIRoute always has methods and a path; the context types them as optional
        if isinstance(route.original_route, APIRoute) and route.include_in_schema and route.methods and route.path:
            for method in sorted(route.methods - {"HEAD"}):
                table[(method, route.path)] = route_rights(route)
    return table


# The one place a domain error becomes a status code: the first family that matches wins.
STATUS_OF: tuple[tuple[type[ClinicflowError], int], ...] = (
    (NotFoundError, 404),
    (NotAuthenticated, 401),
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
    ``data_dir``: where the dashboard keeps its weekly reports (``<data_dir>/weekly-reports``).
    ``store``: where help requests, patient sessions and answers live and what the dashboard reads
    (default: the service's own; an HTTP worker, whose service is remote, must open one on the same
    database and pass it).
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
    app.state.data_dir = hospital_path.parent if hospital_path is not None else None  # devices.json (fleet page)
    if store is None:
        if remote:
            raise ValueError("an HTTP worker's app needs the store opened on the queue's database (store=...)")
        store = service.store
    desk = HelpDesk(store, timezone_name=service.hospital.site.timezone,
                    escalate_after=escalate_after_from_env())
    app.state.helpdesk = desk
    app.state.store = store  # the fleet page keeps its alert history and accepted configs there too

    def console_with_help(room: str) -> dict:
        """The room's console view and the help items its clinician should see."""
        view = service.console(room)
        found = service.hospital.room(room)
        departments = found.departments if found is not None else ()
        now = desk.clock()
        view["help"] = [i.as_dict(now) for i in desk.open_items() if i.concerns_room(room, departments)]
        return view
    # every page the server ships (console, status, fleet, and any added later) may run its own inline blocks
    app.add_middleware(SecurityHeaders, policy=content_security_policy(sorted(Path(__file__).parent.rglob("*.html"))))

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
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
            problems.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}")
        return JSONResponse({"detail": "Invalid request: " + "; ".join(problems) + "."}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is no such address: {request.url.path}."
        headers = dict(exc.headers or {})  # a 429's Retry-After
        if exc.status_code == 405:
            allowed = methods_at(request.url.path)
            headers["Allow"] = ", ".join(allowed)  # Starlette names only the first route's methods
            if detail == "Method Not Allowed":
                detail = f"{request.url.path} takes {', '.join(allowed)}, not {request.method}."
        if exc.status_code == 401:
            headers.setdefault("WWW-Authenticate", "Bearer")
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=headers or None)

    route_methods: list[tuple[re.Pattern[str], set[str]]] = []

    def methods_at(path: str) -> list[str]:
        """Every method some route serves at ``path`` (several routes may share one path)."""
        if not route_methods:
            route_methods.extend((compile_path(r.path)[0], set(r.methods or ())) for r in iter_route_contexts(app.routes)
                                 if isinstance(r.original_route, APIRoute | Route) and r.path)
        found = set().union(*(m for rx, m in route_methods if rx.match(path)))
        return sorted(found | ({"HEAD"} if "GET" in found else set()))

    # -------------------------------------------------------------- auth
    def allow(*roles: str, scope: str = "", what: str = "do this", stream: bool = False) -> list:
        return [Depends(Allow(*roles, scope=scope, what=what, stream=stream))]

    async def principal(request: Request) -> Principal:
        return bearer_principal(request)

    Who = Annotated[Principal, Depends(principal)]

    def rooms_of(who: Principal) -> frozenset[str] | None:
        """The rooms a ticket-scoped operation is limited to (``scope="ticket"``): a clinician's, if scoped."""
        return who.rooms if who.role == "clinician" else None
    ANY = tuple(r for r in ROLES if r != "manager")  # a manager reads statistics and the dashboard, nothing else

    def idem(request: Request, who: Principal, key: str | None, body: BaseModel | None = None) -> dict:
        payload = body.model_dump_json() if body is not None else ""
        fp = hashlib.sha256(f"{request.method} {request.url.path} {payload}".encode()).hexdigest()
        return {"idem_key": f"{who.name}:{key}" if key else None, "fingerprint": fp}

    IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=100,
                                           description="one key per intended action, the same on every retry")]

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

    @app.get("/api/v1/hospital", tags=["server"], dependencies=allow(*ANY, what="read the hospital"))
    def hospital() -> dict:
        """Departments and rooms of the site (kiosks show walk-in departments from this)."""
        h = service.hospital
        return {"site": service.site, "name": dict(h.site.name), "timezone": h.site.timezone,
                "departments": [{"id": d.id, "prefix": d.prefix, "name": dict(d.name), "emergency": d.emergency,
                                 "slot_minutes": d.slot_minutes} for d in h.departments],
                "rooms": [{"id": r.id, "name": dict(r.name), "departments": list(r.departments)} for r in h.rooms],
                "priority_groups": list(h.rules.priority_groups)}

    @app.post("/api/v1/stream-tickets", tags=["live"], response_model=StreamTicketOut,
              dependencies=allow(*ANY, what="open live streams"))
    def stream_ticket(who: Who) -> StreamTicketOut:
        """A ticket that opens a live stream as this token for a minute: ``.../events?ticket=<ticket>``
        (a browser's EventSource cannot send the Authorization header; the token never goes in a URL)."""
        return StreamTicketOut(ticket=tokens.issue_stream_ticket(who), expires_in=int(STREAM_TICKET_TTL))

    # ------------------------------------------------------------ tickets
    @app.post("/api/v1/checkins", tags=["tickets"], status_code=201, response_model=TicketOut,
              dependencies=allow("kiosk", "admin", "clinician", what="check patients in"),
              responses={200: {"model": TicketOut, "description": "already checked in (a repeat)"}})
    async def check_in(body: CheckInRequest, request: Request, who: Who, key: IdemKey = None) -> JSONResponse:
        """Check in an appointment: 201 and a new ticket, or 200 with ``already_checked_in`` for a repeat."""
        return await write("check_in", body.appointment_no, **idem(request, who, key, body))

    @app.post("/api/v1/walkins", tags=["tickets"], status_code=201, response_model=TicketOut,
              dependencies=allow("kiosk", "admin", "clinician", what="issue tickets"))
    async def walk_in(body: WalkInRequest, request: Request, who: Who, key: IdemKey = None) -> JSONResponse:
        """A ticket without an appointment. Only staff (clinician, admin) may issue emergency tickets."""
        if body.emergency and who.role == "kiosk":
            raise ApiError(403, "A kiosk cannot issue emergency tickets: staff triage emergencies.")
        return await write("walk_in", body.department, priority=body.priority, emergency=body.emergency,
                           language=body.language, source="walk_in" if who.role == "kiosk" else "desk",
                           **idem(request, who, key, body))

    @app.get("/api/v1/tickets/{ticket_id}", tags=["tickets"], response_model=TicketOut)
    def get_ticket(ticket_id: TicketId) -> TicketOut:
        """A ticket by its id (no token: the unguessable id printed in the QR code is the key)."""
        return service.ticket(ticket_id)

    @app.get("/api/v1/tickets/{ticket_id}/status", tags=["tickets"])
    def ticket_status(ticket_id: TicketId) -> dict:
        """The patient page's view of a ticket: TicketOut plus ``survey_open``/``survey_done``."""
        return service.ticket_detail(ticket_id)

    @app.post("/api/v1/tickets/{ticket_id}/survey", tags=["tickets"])
    def survey(ticket_id: TicketId, body: SurveyRequest) -> dict:
        """The patient's rating (1-5) and comment, once, after the visit is finished."""
        service.survey(ticket_id, body.score, body.comment)
        return {"ok": True}

    @app.post("/api/v1/tickets/{ticket_id}/transfer", tags=["tickets"], response_model=TicketOut,
              dependencies=allow("clinician", "admin", scope="ticket", what="transfer patients"))
    async def transfer(ticket_id: TicketId, body: TransferRequest, request: Request, who: Who,
                       key: IdemKey = None) -> JSONResponse:
        """Move a ticket to another department or room, keeping its number; placement front, keep or back."""
        return await write("transfer", ticket_id, department=body.department, room=body.room,
                           placement=body.placement, by_rooms=rooms_of(who), **idem(request, who, key, body))

    @app.post("/api/v1/tickets/{ticket_id}/return", tags=["tickets"], response_model=TicketOut,
              dependencies=allow("kiosk", "clinician", "admin", scope="ticket", what="re-queue patients"))
    async def return_with_results(ticket_id: TicketId, request: Request, who: Who, key: IdemKey = None) -> JSONResponse:
        """A patient seen today is back with test results: queued near the front of the same room."""
        return await write("return_with_results", ticket_id, by_rooms=rooms_of(who), **idem(request, who, key))

    @app.post("/api/v1/tickets/{ticket_id}/cancel", tags=["tickets"], response_model=TicketOut,
              dependencies=allow("clinician", "admin", scope="ticket", what="cancel tickets"))
    async def cancel(ticket_id: TicketId, request: Request, who: Who, key: IdemKey = None) -> JSONResponse:
        """Cancel a waiting, called or serving ticket."""
        return await write("cancel", ticket_id, reason=f"cancelled by {who.name}", by_rooms=rooms_of(who),
                           **idem(request, who, key))

    # -------------------------------------------------------------- rooms
    @app.get("/api/v1/rooms", tags=["rooms"], response_model=list[RoomState], dependencies=allow(*ANY))
    def list_rooms() -> list[RoomState]:
        """Every room's snapshot."""
        return [service.room_state(r.id) for r in service.hospital.rooms]

    @app.get("/api/v1/rooms/{room}/state", tags=["rooms"], response_model=RoomState, dependencies=allow(*ANY))
    def room_state(room: RoomId) -> RoomState:
        """The room's snapshot, the same model as the retained MQTT message."""
        return service.room_state(room)

    @app.get("/api/v1/rooms/{room}/console", tags=["rooms"],
             dependencies=allow("clinician", "admin", scope="room", what="see the waiting list"))
    def console_view(room: RoomId) -> dict:
        """What the clinician page shows: current ticket and its reason, the queue with reasons, alerts."""
        return console_with_help(room)

    @app.post("/api/v1/rooms/{room}/call-next", tags=["rooms"], response_model=CallOut,
              dependencies=allow("clinician", "admin", scope="room", what="call patients"))
    async def call_next(room: RoomId, request: Request, who: Who, key: IdemKey = None,
                        confirm: Annotated[bool, Query(description="call next although this caller called here "
                                                                   "moments ago")] = False) -> JSONResponse:
        """Finish the current patient and call the next by the rules. The same caller calling next again
        within the rules' ``call_next_confirm_s`` of their last call here gets 409 unless ``confirm=true``
        (a double click must not send the patient just called away)."""
        return await write("call_next", room, by=who.name, confirm=confirm, **idem(request, who, key))

    def room_op(path: str, name: str, summary: str, model: type[BaseModel], *extra: str, by: bool = False) -> None:
        async def handler(room: RoomId, request: Request, who: Who, key: IdemKey = None) -> JSONResponse:
            caller = {"by": who.name} if by else {}
            return await write(name, room, *extra, **caller, **idem(request, who, key))
        handler.__name__ = path.replace("-", "_")
        app.post(f"/api/v1/rooms/{{room}}/{path}", tags=["rooms"], summary=summary, response_model=model,
                 dependencies=allow("clinician", "admin", scope="room", what="call patients"))(handler)

    room_op("recall", "recall", "Call the current ticket again", CallOut, by=True)
    room_op("no-show", "no_show", "The called patient did not come", TicketOut)
    room_op("start", "start_service", "The called patient is in the room", TicketOut)
    room_op("finish", "finish", "The current patient is done", TicketOut)
    room_op("pause", "set_room_status", "Pause the room", RoomState, "paused")
    room_op("resume", "set_room_status", "Resume the room", RoomState, "open")

    @app.post("/api/v1/rooms/{room}/call", tags=["rooms"], response_model=CallOut,
              dependencies=allow("clinician", "admin", scope="room", what="call patients"))
    async def call_ticket(room: RoomId, body: CallTicketRequest, request: Request, who: Who,
                          key: IdemKey = None) -> JSONResponse:
        """Call a chosen waiting ticket (out of order: the reason records it)."""
        return await write("call_ticket", room, body.ticket_id, by=who.name, **idem(request, who, key, body))

    # -------------------------------------------------------------- admin
    @app.patch("/api/v1/admin/rooms/{room}", tags=["admin"], response_model=RoomState,
               dependencies=allow("admin", what="change rooms"))
    def admin_room(room: RoomId, body: RoomStatusRequest, request: Request, who: Who, key: IdemKey = None) -> JSONResponse:
        """Open, pause or close a room."""
        return answer(service.set_room_status(room, body.status, **idem(request, who, key, body)))

    @app.get("/api/v1/admin/hospital", tags=["admin"],
             dependencies=allow("admin", what="read the hospital configuration"))
    def get_hospital_config() -> dict:
        """The running hospital configuration (the hospital file as JSON)."""
        return service.hospital.model_dump(mode="json")

    @app.put("/api/v1/admin/hospital", tags=["admin"],
             dependencies=allow("admin", what="change the hospital configuration"),
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"$ref": "#/components/schemas/Hospital"}}}}})
    def put_hospital_config(body: dict) -> dict:
        """Replace the hospital configuration (validated like the file; saved to DATA_DIR/hospital.json)."""
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

    @app.post("/api/v1/admin/end-of-day", tags=["admin"], dependencies=allow("admin", what="end the day"))
    def end_of_day(request: Request, who: Who, key: IdemKey = None) -> JSONResponse:
        """Cancel every ticket still waiting or called; finish the ones being served."""
        return answer(service.end_of_day(**idem(request, who, key)))

    @app.post("/api/v1/admin/check-alerts", tags=["admin"], dependencies=allow("admin", what="run checks"))
    def check_alerts() -> list[dict]:
        """Run the long-wait check now (it also runs every few seconds by itself)."""
        return [a.model_dump(mode="json") for a in service.check_alerts()]

    @app.get("/api/v1/alerts", tags=["stats"], dependencies=allow("clinician", "admin", scope="room", what="see alerts"))
    def alerts(who: Who, room: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = None) -> list[str]:
        """Current long waits, as sentences (for one room, or every room the token may see)."""
        if room is not None and service.hospital.room(room) is None:
            raise NotFoundError(f"There is no room {room!r}.")
        rooms = [room] if room else [r.id for r in service.hospital.rooms if who.may_use_room(r.id)]
        return [a for r in rooms for a in service.console(r)["alerts"]]

    @app.get("/api/v1/stats", tags=["stats"], dependencies=allow("admin", "clinician", "manager", what="read statistics"))
    def stats(day: Day = None) -> dict:
        """Per department and room for a day (default today): tickets, waits, service, no-shows, recalls, survey."""
        data = service.stats(a_day(day))
        data["help"] = help_stats(desk, data["day"])
        return data

    @app.get("/api/v1/stats.csv", tags=["stats"], response_class=CsvResponse,
             dependencies=allow("admin", "clinician", "manager", what="read statistics"))
    def stats_csv(day: Day = None) -> Response:
        """The statistics as CSV (``day,scope,id,...``), help statistics after them."""
        text = service.stats_csv(a_day(day)) + help_stats_csv(desk, a_day(day) or service.today())
        name = f"clinicflow-stats-{day or service.today()}.csv"
        return CsvResponse(text, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    # ------------------------------------------------------- live streams
    def sse(request: Request, render: Callable[[], dict]) -> StreamingResponse:
        return sse_stream(request, render, wait_change=broadcaster.wait, version=lambda: broadcaster.version,
                          keepalive=keepalive)

    event = {"type": "object", "required": ["data"], "properties": {
        "event": {"type": "string", "description": "message, or error (then data is an ErrorOut)"},
        "data": {"type": "string", "description": "the view as JSON"}, "id": {"type": "string"},
        "retry": {"type": "integer"}}}
    stream_doc: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {"schema": event}},
                        "description": "server-sent events, one JSON view per change"}}

    @app.get("/api/v1/rooms/{room}/events", tags=["live"], response_class=EventStreamResponse, responses=stream_doc,
             dependencies=allow("clinician", "admin", scope="room", what="see the waiting list", stream=True))
    def room_events(room: RoomId, request: Request,
                    ticket: Annotated[str | None, Query(max_length=200, description="a stream ticket "
                                                        "(POST /api/v1/stream-tickets), for EventSource")] = None
                    ) -> StreamingResponse:
        """Server-sent events: the console view of the room after every change (bearer token or ``?ticket=``)."""
        return sse(request, lambda: console_with_help(room))

    @app.get("/api/v1/tickets/{ticket_id}/events", tags=["live"], response_class=EventStreamResponse,
             responses=stream_doc)
    def ticket_events(ticket_id: TicketId, request: Request) -> StreamingResponse:
        """Server-sent events: the patient page's view of a ticket after every change."""
        service.ticket(ticket_id)  # 404 before the stream starts
        return sse(request, lambda: service.ticket_detail(ticket_id))

    # -------------------------------------------------------------- pages
    console_html = (PAGES / "console.html").read_text(encoding="utf-8")
    status_html = (PAGES / "status.html").read_text(encoding="utf-8")

    @app.get("/console/{room}", response_class=HTMLResponse, include_in_schema=False)
    def console_page(room: str) -> HTMLResponse:
        if service.hospital.room(room) is None:
            return html_page("<h1>There is no room {room}.</h1>", status_code=404, room=repr(room))
        return HTMLResponse(console_html)

    @app.get("/status/{ticket_id}", response_class=HTMLResponse, include_in_schema=False)
    def status_page(ticket_id: str) -> HTMLResponse:
        return HTMLResponse(status_html)

    @app.get("/api/v1/maps/{name}", tags=["tickets"], response_class=Response,
             responses={200: {"content": {"image/png": {}}, "description": "the floor map"},
                        404: {"model": ErrorOut, "description": "no such map"}})
    def floor_map(name: str) -> Response:
        """A floor map the hospital file names (``TicketOut.where_map``): public, like the status page."""
        from queueserver.hospital_file import MAPS_DIR

        path = data_dir / MAPS_DIR / name if data_dir is not None else None
        if path is None or name not in service.hospital.maps() or not path.is_file():
            raise ApiError(404, f"There is no floor map {name!r}.")
        return Response(path.read_bytes(), media_type="image/png", headers={"Cache-Control": "public, max-age=300"})

    from queueserver.helpdesk_api import escalation_notifier, helpdesk_router  # desk page, help loop
    desk.on_escalate = escalation_notifier(
        service.site, publish_alert=lambda a: None if service.publisher is None else service.publisher.publish_alert(a),
        bus_of=lambda: getattr(app.state, "bus", None))
    app.include_router(helpdesk_router(desk, allow=Allow, wake=lambda: broadcaster.changed(set(), set()),
                                       wait_change=broadcaster.wait, version=lambda: broadcaster.version,
                                       keepalive=keepalive, stream_response=EventStreamResponse, stream_doc=stream_doc))
    from queueserver.patient_api import patient_router  # kiosk patient API (docs/kiosk.md)
    app.include_router(patient_router(service, tokens, store=store, desk=desk))
    from queueserver.booking_api import booking_router, phone_identity  # booking, results on the phone
    from queueserver.results_api import results_router
    ident = phone_identity(service, store)
    app.include_router(booking_router(service, ident))
    app.include_router(results_router(service, store, ident))
    from queueserver.einvoice_api import einvoice_router  # e-invoices on the phone page (docs/hospital-backend.md)
    app.include_router(einvoice_router(service, ident))
    from queueserver.fleet import fleet_router  # fleet health page and API (docs/technicians.md)
    app.include_router(fleet_router())
    from queueserver.dashboard.router import dashboard_router  # managers' figures and reports (docs/dashboard.md)
    app.include_router(dashboard_router(service, store=store, allow=Allow,
                                        reports_dir=(data_dir or Path("clinicflow-data")) / "weekly-reports"))

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(get_openapi(title=app.title, version=app.version,
                                                             description=app.description, routes=app.routes), app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
