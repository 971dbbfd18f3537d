"""``/fleet`` page and ``/api/v1/fleet`` API: the technicians' view of a site's devices (admin token).

    GET  /api/v1/fleet                       every device, its problems, recent fleet alerts
    GET  /api/v1/fleet/{device}              one device
    POST /api/v1/fleet/{device}/commands     {"command": "self_test", "args": {}, "wait": 10}
    PUT  /api/v1/fleet/{device}/config       {"rooms": ["r3"], "volume": 60}: validated, pushed retained
    GET  /api/v1/fleet/{device}/screenshot.png   the PNG of its last ``screenshot`` answer
    POST /api/v1/fleet/updates               {"version": "0.2.0", "devices": ["kiosk-1"]} or {"role": "kiosk", "first": 1}
    GET  /api/v1/fleet/updates               the rollouts so far (waves, each device's result)
    GET  /releases/{version}/{file}          signed release files (``clinicflow release publish``), no token
    GET  /fleet                              the page (token as #token=... once, like the console)

The router brings its own lifespan: after the app's own start-up (which starts the
server's MQTT bus, ``app.state.bus``), it creates the ``FleetRegistry`` for the app's
site, subscribes it on that bus and keeps it in ``app.state.fleet``. The registry also
lists the devices provisioned in ``devices.json`` of the server's data directory, and keeps
its alert history and each device's accepted config in the app's store (``app.state.store``,
``queueserver.fleet.history``), so a restarted server shows what it showed before.
A command is sent only when the device says it answers it; rooms in a pushed config
must be rooms of the hospital.
"""
from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError

from config.registry import DeviceRegistry
from config.schema import ConfigError, validate_settings
from queueserver.auth import principal_with_role
from queueserver.fleet.history import FleetHistory
from queueserver.fleet.registry import FleetRegistry
from queueserver.fleet.rollout import Rollout

log = logging.getLogger(__name__)
PAGE = Path(__file__).with_name("fleet.html")
GRACE_ENV = "CLINICFLOW_FLEET_OFFLINE_GRACE"


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    command: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    args: dict[str, Any] = Field(default_factory=dict)
    wait: float = Field(10.0, ge=0, le=60, description="seconds to wait for the device's answer")


class UpdateRequest(BaseModel):
    """A rollout to a device group: name the devices (one kiosk first), or a role (then the rest)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Annotated[str, Field(pattern=r"^[0-9A-Za-z.+_-]{1,40}$")]
    devices: list[str] = Field(default_factory=list)
    role: str | None = None
    health_timeout: float = Field(120.0, ge=5, le=3600, description="seconds the new release has to report healthy")
    first: int = Field(0, ge=0, description="send to this many devices first and the rest only once they are healthy "
                                           "(0: all at once, answering when each device answered)")
    wait: float = Field(60.0, ge=0, le=300, description="seconds to wait for the devices' answers (install time)")


def site_open(hospital: Any) -> Callable[[datetime], bool]:
    """Open when any department is open at the site's local time (the hospital file's hours)."""

    def is_open(now: datetime) -> bool:
        local = now.astimezone(hospital.tz).time()
        return any(d.opens <= local and (d.closes is None or local < d.closes) for d in hospital.departments)

    return is_open


def _admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    # Only the header: a token in the address would end up in access and proxy logs.
    principal_with_role(request.app.state.tokens, authorization, request.query_params, ("admin",), "manage devices")


def _registry(request: Request) -> FleetRegistry:
    registry = getattr(request.app.state, "fleet", None)
    if registry is None:
        raise HTTPException(503, "The fleet registry is not running (the server has no MQTT broker).")
    return registry


_admin.roles = ("admin",)  # type: ignore[attr-defined]  # read by queueserver.app.rights_table
Admin = Depends(_admin)


def _found(request: Request, device: str) -> dict[str, Any]:
    found = _registry(request).device(device)
    if found is None:
        raise HTTPException(404, f"There is no device {device!r} in the fleet (not registered and it has never reported).")
    return found


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
        from config.tls import site_certificates

        data_dir = getattr(app.state, "data_dir", None)
        known = DeviceRegistry(Path(data_dir) / "devices.json").all if data_dir is not None else None
        store = getattr(app.state, "store", None)
        history = FleetHistory(store, service.site) if store is not None else None
        make = partial(FleetRegistry, service.site, is_open=site_open(service.hospital), offline_grace=grace,
                       stale_after=stale_after, tz=service.hospital.tz, certificates=site_certificates(), known=known)
        try:
            registry = make(history=history)
        except SQLAlchemyError:  # the page must come up, even if it forgets again at the next restart
            log.exception("could not read the fleet's history from the store; keeping it in memory only")
            registry = make()
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
        return {"site": registry.site, "open": registry.is_open(now), "tz": str(registry.tz),
                "now": now.astimezone(registry.tz).isoformat(), "devices": registry.devices(),
                "alerts": registry.alerts()[:50],
                "rollouts": [r.to_json() for r in reversed(getattr(request.app.state, "fleet_rollouts", [])[-5:])]}

    @router.get("/api/v1/fleet/updates", tags=["fleet"], dependencies=[Admin])
    def rollouts(request: Request) -> dict:
        """Rollouts started with ``first`` (newest first): state running | done | halted, each device's result."""
        return {"rollouts": [r.to_json() for r in reversed(getattr(request.app.state, "fleet_rollouts", []))]}

    @router.get("/api/v1/fleet/{device}", tags=["fleet"], dependencies=[Admin])
    def fleet_device(device: str, request: Request) -> dict:
        return _found(request, device)

    @router.get("/api/v1/fleet/{device}/screenshot.png", tags=["fleet"], dependencies=[Admin])
    def screenshot(device: str, request: Request) -> Response:
        """The device's screen as it last answered the ``screenshot`` command."""
        _found(request, device)
        png = _registry(request).screenshot(device)
        if png is None:
            raise HTTPException(404, f"No screenshot of {device!r} yet: send it the 'screenshot' command.")
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    def releases_dir(request: Request) -> Path:
        data_dir = getattr(request.app.state, "data_dir", None)
        if data_dir is None:
            raise HTTPException(404, "This server has no data directory for releases.")
        return Path(data_dir) / "releases"

    @router.get("/releases/{version}/{name}", include_in_schema=False)
    def release_file(version: str, name: str, request: Request) -> FileResponse:
        """Signed release files; integrity comes from ``manifest.sig``, so no token is needed."""
        root = releases_dir(request)
        path = (root / version / name).resolve()
        if root.resolve() not in path.parents or not path.is_file() or version.startswith(".") or name.startswith("."):
            raise HTTPException(404, f"No release file {version}/{name}.")
        return FileResponse(path)

    @router.post("/api/v1/fleet/updates", tags=["fleet"], dependencies=[Admin])
    def update(body: UpdateRequest, request: Request) -> Any:
        """Send ``update`` to a device group; each device installs beside its running release and rolls back by itself."""
        registry = _registry(request)
        if not (releases_dir(request) / body.version / "manifest.sig").is_file():
            raise HTTPException(404, f"Release {body.version} is not published. Fix: clinicflow release publish WHEEL")
        targets = [d for d in registry.devices() if (d["device"] in body.devices or (body.role and d["role"] == body.role))]
        missing = sorted(set(body.devices) - {d["device"] for d in targets})
        if missing:
            raise HTTPException(404, f"Not in the fleet: {', '.join(missing)}.")
        if not targets:
            raise HTTPException(422, "Name the devices (e.g. one kiosk first) or a role to update.")
        unable = [d["device"] for d in targets if d["commands"] and "update" not in d["commands"]]
        if unable:
            raise HTTPException(422, f"{', '.join(unable)} cannot update itself (not running from an app root).")
        url = str(request.base_url).rstrip("/") + f"/releases/{body.version}/"
        if body.first:
            rollout = Rollout(registry, version=body.version, url=url, devices=[d["device"] for d in targets],
                              first=body.first, health_timeout=body.health_timeout).start()
            request.app.state.fleet_rollouts = [*getattr(request.app.state, "fleet_rollouts", [])[-19:], rollout]
            return JSONResponse({"rollout": rollout.to_json()}, status_code=202)
        sent = {d["device"]: registry.send_command(d["device"], "update", {"version": body.version, "url": url,
                                                                           "health_timeout": body.health_timeout},
                                                   wait=0)[0] for d in targets}
        answers = {device: registry.wait_response(tx, body.wait) for device, tx in sent.items()}
        return {"version": body.version, "devices": {device: (a.model_dump(mode="json") if a else None)
                                                     for device, a in answers.items()}}

    @router.post("/api/v1/fleet/{device}/commands", tags=["fleet"], dependencies=[Admin])
    def command(device: str, body: CommandRequest, request: Request) -> JSONResponse:
        """Send self_test, reload, test_announcement, reboot (waits for a kiosk session to end) or status."""
        registry = _registry(request)
        found = _found(request, device)
        if found["commands"] and body.command not in found["commands"]:
            raise HTTPException(422, f"{device} does not answer {body.command!r}; it answers {', '.join(found['commands'])}.")
        transaction, response = registry.send_command(device, body.command, body.args, wait=body.wait)
        return _answer("transaction", transaction, response, body.wait)

    @router.put("/api/v1/fleet/{device}/config", tags=["fleet"], dependencies=[Admin])
    def push_config(device: str, settings: dict[str, Any], request: Request,
                    wait: Annotated[float, Query(ge=0, le=60)] = 10.0) -> JSONResponse:
        """Replace the device's pushed settings (keys left out come from its file); applied live."""
        registry = _registry(request)
        found = _found(request, device)
        settings.pop("revision", None)
        try:
            validate_settings(found["role"] or "kiosk", settings, partial=True)
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from None
        hospital = request.app.state.service.hospital
        unknown = [r for r in settings.get("rooms", ()) if hospital.room(r) is None]
        if unknown:
            rooms = ", ".join(r.id for r in hospital.rooms)
            raise HTTPException(422, f"settings.rooms: {', '.join(unknown)} is not a room of this hospital. "
                                     f"Fix: use one of {rooms}")
        revision, response = registry.push_config(device, settings, wait=wait)
        return _answer("revision", revision, response, wait)

    return router
