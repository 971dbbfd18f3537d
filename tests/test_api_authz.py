"""Who may call what: every API route x every kind of caller, against a real server.

The rights come from the code (each route's ``Allow`` declaration, published in the OpenAPI as
``x-clinicflow-roles`` / ``x-clinicflow-scope``); the matrix checks that the server enforces
exactly them, and that docs/api.md's rights table says the same.
"""
from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from queueserver.app import PUBLIC, rights_markdown
from queueserver.process import QueueServerProcess

DOCS = Path(__file__).resolve().parent.parent / "docs" / "api.md"
ROLE_OF = {"kiosk": "kiosk", "display": "display", "clinician:zhou": "clinician", "clinician": "clinician",
           "manager": "manager", "admin": "admin"}
CALLERS = ("no token", "bad token", "admin token in the URL", "kiosk", "display", "clinician:zhou", "clinician",
           "manager", "admin")
NOT_A_CALLER = ("no token", "bad token", "admin token in the URL")
OTHER_ROOM = "r3"  # clinician:zhou holds r1 only; the demo clinician and admin hold every room
BODIES = {  # enough for an allowed caller to reach the operation (anything else is a 422, also fine)
    "/api/v1/checkins": {"appointment_no": "AP9999"},
    "/api/v1/walkins": {"department": "surgery"},
    "/api/v1/tickets/{ticket_id}/transfer": {"department": "surgery", "placement": "keep"},
    "/api/v1/rooms/{room}/call": {"ticket_id": "t0000000000000000"},
    "/api/v1/admin/rooms/{room}": {"status": "open"},
}


@pytest.fixture(scope="module")
def server(module_queue_server: QueueServerProcess) -> QueueServerProcess:
    return module_queue_server


@pytest.fixture(scope="module")
def operations(server: QueueServerProcess) -> list[tuple[str, str, tuple[str, ...], str]]:
    spec = httpx.get(f"{server.base_url}/openapi.json").json()
    ops = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            assert "x-clinicflow-roles" in op, f"{method.upper()} {path} declares no rights"
            ops.append((method.upper(), path, tuple(op["x-clinicflow-roles"]), op["x-clinicflow-scope"]))
    return ops


def _headers(server: QueueServerProcess, caller: str) -> dict[str, str]:
    if caller in ("no token", "admin token in the URL"):
        return {}
    token = "not-a-token-of-this-server" if caller == "bad token" else server.tokens[caller]
    return {"Authorization": f"Bearer {token}"}


def _fresh_ticket(server: QueueServerProcess) -> str:
    with server.client("admin") as admin:
        return admin.post("/api/v1/walkins", json={"department": "surgery"}).json()["ticket_id"]  # queued for r3


def _session(server: QueueServerProcess) -> str:
    with server.client("kiosk") as kiosk:
        r = kiosk.post("/api/v1/patient/identify", json={"method": "qr", "appointment_no": "AP1001"})
    return r.json()["session"]


def _expected(roles: tuple[str, ...], scope: str, caller: str) -> int | None:
    """401/403 when the caller must be refused; None when it may call (any answer but 401/403/5xx)."""
    if roles == PUBLIC:
        return None
    if caller in NOT_A_CALLER:
        return 401
    if ROLE_OF[caller] not in roles:
        return 403
    if scope and caller == "clinician:zhou":  # the path names another room, or a ticket of another room
        return 403
    return None


def test_every_route_refuses_and_allows_exactly_the_callers_its_rights_say(server, operations):
    assert len(operations) >= 38  # every route of the API, the patient and the fleet API included
    wrong = []
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        for method, path, roles, scope in operations:
            session = _session(server)  # one patient session per route: no route's callers share another's
            for caller in CALLERS:
                url = path.replace("{room}", OTHER_ROOM).replace("{payment_id}", "pay-unknown-0001") \
                          .replace("{report_id}", "R1001").replace("{device}", "kiosk-lobby-1")
                if "{ticket_id}" in url:
                    url = url.replace("{ticket_id}", _fresh_ticket(server))
                params = {"room": OTHER_ROOM} if path == "/api/v1/alerts" else {}
                if caller == "admin token in the URL":  # refused everywhere: URLs end up in logs
                    params["access_token"] = server.tokens["admin"]
                headers = {**_headers(server, caller), "X-Patient-Session": session}
                body = BODIES.get(path, {}) if method in ("POST", "PUT", "PATCH") else None
                with http.stream(method, url, params=params, headers=headers, json=body) as r:
                    status = r.status_code  # a live stream stays open: the status is all we need
                want = _expected(roles, scope, caller)
                if (want is not None and status != want) or (want is None and status in (401, 403)) or status >= 500:
                    wrong.append(f"{method} {path} as {caller}: {status}, want {want or 'allowed'}")
    assert not wrong, "\n".join(wrong)


def test_a_manager_may_read_statistics_and_the_dashboard_and_nothing_else(server, operations):
    """Checked against the routes' paths, not their declared rights: a route that let a manager in by
    mistake fails here even though the matrix above (which follows the declarations) would pass."""
    allowed = {(method, path) for method, path, roles, _ in operations if roles != PUBLIC and "manager" in roles}
    reading = {(m, p) for m, p in allowed if m == "GET" and p.startswith(("/api/v1/stats", "/api/v1/dashboard/"))}
    assert allowed - reading == {("POST", "/api/v1/dashboard/reports")}  # making the weekly PDF is its only write
    assert {"/api/v1/stats", "/api/v1/stats.csv", "/api/v1/dashboard/queue"} <= {p for _, p in reading}
    with server.client("manager") as manager:  # and the server holds to it
        assert manager.get("/api/v1/stats").status_code == 200
        assert manager.get("/api/v1/rooms").status_code == 403
        r = manager.post("/api/v1/stream-tickets")
        assert r.status_code == 403 and "manager" in r.json()["detail"]


def test_a_refusal_says_why_and_a_401_names_the_scheme(server):
    with httpx.Client(base_url=server.base_url) as http:
        r = http.post("/api/v1/rooms/r1/call-next")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        r = http.post(f"/api/v1/rooms/{OTHER_ROOM}/call-next", headers=_headers(server, "clinician:zhou"))
        assert r.status_code == 403 and r.json()["detail"] == f"This clinician token is not for room {OTHER_ROOM}; it is for r1."
        r = http.post("/api/v1/rooms/r1/call-next", params={"access_token": server.tokens["admin"]})
        assert r.status_code == 401 and "not accepted in the address" in r.json()["detail"]


def test_a_clinician_cannot_cancel_or_requeue_another_rooms_patient_but_can_their_own(server):
    with server.client("kiosk") as kiosk, server.client("clinician:zhou") as zhou, server.client("admin") as admin:
        theirs = kiosk.post("/api/v1/walkins", json={"department": "surgery"}).json()  # r3
        mine = kiosk.post("/api/v1/walkins", json={"department": "internal"}).json()  # r1 (and r2)
        r = zhou.post(f"/api/v1/tickets/{theirs['ticket_id']}/cancel")
        assert r.status_code == 403 and theirs["number"] in r.json()["detail"]
        assert admin.get(f"/api/v1/tickets/{theirs['ticket_id']}").json()["status"] == "waiting"
        assert zhou.post(f"/api/v1/tickets/{mine['ticket_id']}/cancel").json()["status"] == "cancelled"

        admin.post(f"/api/v1/rooms/{OTHER_ROOM}/call", json={"ticket_id": theirs["ticket_id"]}).raise_for_status()
        admin.post(f"/api/v1/rooms/{OTHER_ROOM}/finish").raise_for_status()
        r = zhou.post(f"/api/v1/tickets/{theirs['ticket_id']}/return")
        assert r.status_code == 403
        assert admin.get(f"/api/v1/tickets/{theirs['ticket_id']}").json()["status"] == "done"


def test_the_rights_table_in_docs_api_md_is_the_one_the_code_enforces(operations):
    text = DOCS.read_text(encoding="utf-8")
    found = re.search(r"<!-- rights table: begin.*?-->\n(.*?)\n<!-- rights table: end -->", text, re.DOTALL)
    assert found, "docs/api.md has no rights table between its markers"
    generated = rights_markdown(operations)
    assert found.group(1).strip() == generated, f"docs/api.md's rights table differs from the code; it should be:\n{generated}"
