"""``clinicflow server --http-workers 1``: HTTP in a worker process, the queue in the core process.

The answers themselves are covered by running ``test_server_foundation`` in this mode too;
here is what only this mode can get wrong: live pages must still hear of every change, a
crashed worker must be replaced, and a dead core must not leave a worker holding the port.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import httpx
import pytest


def worker_pids(core_pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(core_pid), "-f", "queueserver.front"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def wait_until(predicate, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.fixture
def server(queue_server_factory):
    return queue_server_factory(extra_args=["--http-workers", "1"])


def test_the_clinician_page_stream_hears_a_check_in_made_through_the_worker(server):
    with server.client("clinician") as clinician, server.client("kiosk") as kiosk:
        ticket = clinician.post("/api/v1/stream-tickets").json()["ticket"]  # what the page's EventSource uses
        with httpx.Client(base_url=server.base_url) as browser, \
                browser.stream("GET", f"/api/v1/rooms/r1/events?ticket={ticket}", timeout=10) as events:
            lines = events.iter_lines()
            first = json.loads(next(line for line in lines if line.startswith("data: "))[6:])
            assert first["queue"] == []
            ticket = kiosk.post("/api/v1/checkins", json={"appointment_no": "AP1001"}).json()
            update = json.loads(next(line for line in lines if line.startswith("data: "))[6:])
    assert [e["number"] for e in update["queue"]] == [ticket["number"]]
    assert update["queue"][0]["reason"].startswith("appointment")


def test_a_crashed_worker_is_replaced_and_the_queue_is_untouched(server):
    with server.client("kiosk") as kiosk:
        ticket = kiosk.post("/api/v1/checkins", json={"appointment_no": "AP1001"}).json()
    (old,) = worker_pids(server.pid)
    os.kill(old, signal.SIGKILL)
    new = wait_until(lambda: [p for p in worker_pids(server.pid) if p != old])
    assert len(new) == 1

    def answers() -> bool:
        try:
            with server.client("kiosk", timeout=2) as kiosk:
                return kiosk.get(f"/api/v1/tickets/{ticket['ticket_id']}").status_code == 200
        except Exception:
            return False

    wait_until(answers)
    with server.client("kiosk") as kiosk:
        again = kiosk.post("/api/v1/checkins", json={"appointment_no": "AP1001"}).json()
    assert again["ticket_id"] == ticket["ticket_id"] and again["already_checked_in"] is True


def test_a_killed_core_takes_its_worker_down_and_restarts_on_the_same_port(server):
    (worker,) = worker_pids(server.pid)
    server.kill()  # SIGKILL: no shutdown code runs in the core

    def gone() -> bool:
        try:
            os.kill(worker, 0)
            return False
        except ProcessLookupError:
            return True

    wait_until(gone, timeout=5)  # the kernel ends the worker: nothing keeps answering without a core
    server.start()  # the same port again
    with server.client("kiosk") as kiosk:
        assert kiosk.get("/api/v1/health").json()["status"] == "ok"
