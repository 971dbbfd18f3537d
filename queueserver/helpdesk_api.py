"""Staff side of help over HTTP: the desk page, its live stream, acknowledge and resolve.

    GET  /desk                                   the nurse-station page (token as #token=... once)
    GET  /api/v1/help-requests                   newest help items (``?open=true``: unresolved; ``?room=r1``)
    GET  /api/v1/help-events                     server-sent events: every open item after each change
    POST /api/v1/help-requests/{id}/acknowledge  我来处理: {"by": "王护士"} (optional; else the token's name)
    POST /api/v1/help-requests/{id}/resolve      done
    GET  /pages/i18n.js                          the staff pages' catalogues (queueserver.page_i18n)

Clinician and admin tokens only. The router's lifespan runs ``HelpDesk.tick`` every second
(long waits in, escalations out, other processes' changes noticed).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from protocol import topics
from protocol.payloads import Alert, Notice
from queueserver.helpdesk import HelpDesk, HelpItem
from queueserver.live import sse_stream
from queueserver.page_i18n import catalogue_script

log = logging.getLogger(__name__)
PAGES = Path(__file__).with_name("pages")
TICK_S = 1.0


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: Annotated[str, Field(max_length=100)] = ""


def hall_notice_text(item: HelpItem) -> dict[str, str]:
    """The hall board's line for an escalated item: where help is needed, never who (public screen)."""
    where_zh = f"{item.device} 号自助机" if item.device else (f"{item.room} 诊室" if item.room else "大厅")
    where_en = f"kiosk {item.device}" if item.device else (f"room {item.room}" if item.room else "the hall")
    if item.kind == "red_flag":
        return {"zh": f"请医护人员立即到{where_zh}：有患者需要紧急帮助",
                "en": f"Staff needed at {where_en} now: a patient needs urgent help"}
    return {"zh": f"请工作人员到{where_zh}协助患者", "en": f"Staff please come to {where_en} to help a patient"}


def escalation_notifier(site: str, *, publish_alert: Callable[[Alert], None],
                        bus_of: Callable[[], Any]) -> Callable[[HelpItem], None]:
    """What escalation does beyond the page's tone: an Alert again, and for red flags and kiosk calls
    the hall board's notice line (retained ``Notice`` on the site's notice topic)."""

    def notify(item: HelpItem) -> None:
        when = item.escalated_at or item.created_at
        waited = int((when - item.created_at).total_seconds())
        publish_alert(Alert(id=f"{item.help_id}-esc"[:64], ts=when, kind=item.kind,  # type: ignore[arg-type]
                            room=item.room, department=item.department, ticket=item.ticket, device=item.device,
                            message=f"Nobody has answered for {waited} s: {item.message or item.reason}"[:200]))
        bus = bus_of()
        if bus is not None and item.kind != "long_wait":
            bus.publish(topics.notice(site), Notice(ts=when, text=hall_notice_text(item)), retain=True, qos=1)

    return notify


def clear_hall_notice(site: str, bus: Any, desk: HelpDesk) -> None:
    """Clear the hall board's line once no escalated kiosk call or red flag is left unacknowledged."""
    if bus is None:
        return
    if any(i.escalated_at and i.acknowledged_at is None and i.kind != "long_wait" for i in desk.open_items()):
        return
    bus.publish(topics.notice(site), Notice(ts=desk.clock(), text={}), retain=True, qos=1)


def helpdesk_router(desk: HelpDesk, *, allow: Callable[..., Any], wake: Callable[[], None],
                    wait_change: Callable[[int, float], Any], version: Callable[[], int],
                    keepalive: float = 15.0, stream_response: type[Response] = StreamingResponse,
                    stream_doc: dict | None = None) -> APIRouter:
    """The router; ``allow`` makes the app's rights dependencies (``Allow``), ``wake``/``wait_change``/``version``
    the app's broadcaster (live streams wake on it); ``stream_response``/``stream_doc``: how the app documents a
    live stream in its OpenAPI (``text/event-stream``), so the help stream is described like the others."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(TICK_S):
                try:
                    desk.tick()
                except Exception:
                    log.exception("help desk tick failed")

        threading.Thread(target=loop, name="help-desk", daemon=True).start()
        try:
            yield
        finally:
            stop.set()

    router = APIRouter(lifespan=lifespan)
    desk_html = (PAGES / "desk.html").read_text(encoding="utf-8")
    script = catalogue_script()

    # the app's rights declarations (``queueserver.app.Allow``): checked, documented and tabled as every route's
    staff = allow("clinician", "admin", what="answer help requests")
    staff_stream = allow("clinician", "admin", what="watch help requests", stream=True)

    def listing(items: list[HelpItem]) -> list[dict]:
        now = desk.clock()
        return [i.as_dict(now) for i in items]

    @router.get("/desk", response_class=HTMLResponse, include_in_schema=False)
    def desk_page() -> HTMLResponse:
        return HTMLResponse(desk_html)

    assets = {name: (PAGES / name).read_text(encoding="utf-8") for name in ("staff.css", "staff.js")}

    @router.get("/pages/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name == "i18n.js":
            return Response(script, media_type="text/javascript; charset=utf-8", headers={"Cache-Control": "no-cache"})
        if name not in assets:
            return Response("Not found", status_code=404, media_type="text/plain")
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        return Response(assets[name], media_type=f"{kind}; charset=utf-8", headers={"Cache-Control": "no-cache"})

    @router.get("/api/v1/help-requests", tags=["help"])
    def list_help(request: Request, who: Any = Depends(staff), open: bool = False,  # noqa: A002
                  room: str | None = None) -> dict:
        """Help items, newest first (``open=true``: only those not yet resolved; ``room``: those its console shows)."""
        items = list(reversed(desk.open_items())) if open else desk.recent()
        if room is not None:
            found = request.app.state.service.hospital.room(room)
            items = [i for i in items if i.concerns_room(room, found.departments if found else ())]
        return {"help_requests": listing(items), "escalate_after_s": desk.escalate_after}

    async def answer(request: Request, mark: Callable[[str, str], HelpItem], help_id: str, by: str) -> dict:
        item = await run_in_threadpool(mark, help_id, by)
        if item.escalated_at is not None and item.kind != "long_wait":  # the hall board's line can go
            await run_in_threadpool(clear_hall_notice, request.app.state.service.site,
                                    getattr(request.app.state, "bus", None), desk)
        return item.as_dict(desk.clock())

    @router.post("/api/v1/help-requests/{help_id}/acknowledge", tags=["help"])
    async def acknowledge(help_id: str, request: Request, who: Any = Depends(staff), body: AckRequest | None = None) -> dict:
        """我来处理: record who takes it (the kiosk then says 工作人员正在赶来)."""
        return await answer(request, desk.acknowledge, help_id, (body.by if body else "") or who.name)

    @router.post("/api/v1/help-requests/{help_id}/resolve", tags=["help"])
    async def resolve(help_id: str, request: Request, who: Any = Depends(staff), body: AckRequest | None = None) -> dict:
        """Done (also acknowledges an item nobody had acknowledged)."""
        return await answer(request, desk.resolve, help_id, (body.by if body else "") or who.name)

    @router.get("/api/v1/help-events", tags=["help"], response_class=stream_response, responses=stream_doc or {})
    def help_events(request: Request, who: Any = Depends(staff_stream),
                    ticket: Annotated[str | None, Query(max_length=200, description="a stream ticket "
                                                        "(POST /api/v1/stream-tickets), for EventSource")] = None
                    ) -> StreamingResponse:
        """Server-sent events: ``{"help": [open items], "escalate_after_s": ...}`` after every change."""
        def render() -> dict:
            return {"help": listing(desk.open_items()), "escalate_after_s": desk.escalate_after}
        return sse_stream(request, render, wait_change=wait_change, version=version, keepalive=keepalive)

    desk.add_listener(wake)
    return router
