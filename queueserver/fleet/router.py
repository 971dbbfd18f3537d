"""``/fleet`` page and ``/api/v1/fleet`` API: the technicians' view of a site's devices (admin token).

    GET  /api/v1/fleet                       every device, its problems, recent fleet alerts
    GET  /api/v1/fleet/{device}              one device
    POST /api/v1/fleet/{device}/commands     {"command": "self_test", "args": {}, "wait": 10}
    PUT  /api/v1/fleet/{device}/config       {"rooms": ["r3"], "volume": 60}: validated, pushed retained
    GET  /fleet                              the page (token as #token=... once, like the console)

The router brings its own lifespan: after the app's own start-up (which starts the
server's MQTT bus, ``app.state.bus``), it creates the ``FleetRegistry`` for the app's
site, subscribes it on that bus and keeps it in ``app.state.fleet``.
"""
from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from config.schema import ConfigError, validate_settings
from queueserver.fleet.registry import FleetRegistry

PAGE = Path(__file__).with_name("fleet.html")
GRACE_ENV = "CLINICFLOW_FLEET_OFFLINE_GRACE"


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    command: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    args: dict[str, Any] = Field(default_factory=dict)
    wait: float = Field(10.0, ge=0, le=60, description="seconds to wait for the device's answer")


def site_open(hospital: Any) -> Callable[[datetime], bool]:
    """Open when any department is open at the site's local time (the hospital file's hours)."""

    def is_open(now: datetime) -> bool:
        local = now.astimezone(hospital.tz).time()
        return any(d.opens <= local and (d.closes is None or local < d.closes) for d in hospital.departments)

    return is_open


def _admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    # Only the header: a token in the address would end up in access and proxy logs.
    token = authorization[7:].strip() if authorization and authorization.lower().startswith("bearer ") else None
    if not token:
        raise HTTPException(401, "This needs a bearer token: send 'Authorization: Bearer <token>'.")
    who = request.app.state.tokens.lookup(token)
    if who is None:
        raise HTTPException(401, "The token is not valid for this server.")
    if who.role != "admin":
        raise HTTPException(403, f"A {who.role} token cannot manage devices; use an admin token.")


def _registry(request: Request) -> FleetRegistry:
    registry = getattr(request.app.state, "fleet", None)
    if registry is None:
        raise HTTPException(503, "The fleet registry is not running (the server has no MQTT broker).")
    return registry


_admin.roles = ("admin",)  # type: ignore[attr-defined]  # read by queueserver.app.rights_table
Admin = Depends(_admin)


def _answer(key: str, transaction: str, response: Any, wait: float) -> JSONResponse:
    if response is None:
        return JSONResponse({key: transaction, "response": None,
                             "detail": f"No answer within {wait:g} s; the device may be offline or busy."}, status_code=202)
    return JSONResponse({key: transaction, "response": response.model_dump(mode="json")})


def fleet_router(*, offline_grace: float | None = None, stale_after: float = 180.0) -> APIRouter:
    """The router to ``include_router`` into the queue server's app."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = app.state.service
        grace = offline_grace if offline_grace is not None else float(os.environ.get(GRACE_ENV, "60"))
        registry = FleetRegistry(service.site, is_open=site_open(service.hospital), offline_grace=grace,
                                 stale_after=stale_after, tz=service.hospital.tz)
        bus = getattr(app.state, "bus", None)
        if bus is not None:
            registry.attach(bus)
            app.state.fleet = registry
        try:
            yield
        finally:
            registry.stop()

    router = APIRouter(lifespan=lifespan)
    page = PAGE.read_text(encoding="utf-8")

    @router.get("/fleet", response_class=HTMLResponse, include_in_schema=False)
    def fleet_page() -> HTMLResponse:
        return HTMLResponse(page)

    @router.get("/api/v1/fleet", tags=["fleet"], dependencies=[Admin])
    def fleet(request: Request) -> dict:
        """Every device of the site with its health and problems, and recent fleet alerts."""
        registry = _registry(request)
        now = registry.clock()
        return {"site": registry.site, "open": registry.is_open(now), "devices": registry.devices(),
                "alerts": registry.alerts()[:50]}

    @router.get("/api/v1/fleet/{device}", tags=["fleet"], dependencies=[Admin])
    def fleet_device(device: str, request: Request) -> dict:
        found = _registry(request).device(device)
        if found is None:
            raise HTTPException(404, f"There is no device {device!r} in the fleet (it has never reported).")
        return found

    @router.post("/api/v1/fleet/{device}/commands", tags=["fleet"], dependencies=[Admin])
    def command(device: str, body: CommandRequest, request: Request) -> JSONResponse:
        """Send self_test, reload, test_announcement, reboot (waits for a kiosk session to end) or status."""
        registry = _registry(request)
        if registry.device(device) is None:
            raise HTTPException(404, f"There is no device {device!r} in the fleet (it has never reported).")
        transaction, response = registry.send_command(device, body.command, body.args, wait=body.wait)
        return _answer("transaction", transaction, response, body.wait)

    @router.put("/api/v1/fleet/{device}/config", tags=["fleet"], dependencies=[Admin])
    def push_config(device: str, settings: dict[str, Any], request: Request,
                    wait: Annotated[float, Query(ge=0, le=60)] = 10.0) -> JSONResponse:
        """Replace the device's pushed settings (keys left out come from its file); applied live."""
        registry = _registry(request)
        found = registry.device(device)
        if found is None:
            raise HTTPException(404, f"There is no device {device!r} in the fleet (it has never reported).")
        settings.pop("revision", None)
        try:
            validate_settings(found["role"] or "kiosk", settings, partial=True)
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from None
        revision, response = registry.push_config(device, settings, wait=wait)
        return _answer("revision", revision, response, wait)

    return router
