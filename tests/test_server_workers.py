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
        token = server.tokens["clinician"]
        with clinician.stream("GET", f"/api/v1/rooms/r1/events?access_token={token}", timeout=10) as events:
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


def _cmdlines(pids: list[int]) -> dict[int, str]:
    out = {}
    for pid in pids:
        try:
            out[pid] = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except FileNotFoundError:
            pass
    return out


def test_no_secret_on_any_command_line_and_no_address_for_the_core_channel(queue_server_factory, mosquitto):
    # The session broker is anonymous and takes any user name and password: this one must not leak.
    secret = "s3cret-broker-password"
    url = mosquitto.url.replace("mqtt://", f"mqtt://queueserver:{secret}@")
    server = queue_server_factory(broker_url=url, extra_args=["--http-workers", "2"])
    workers = wait_until(lambda: len(worker_pids(server.pid)) == 2 and worker_pids(server.pid))
    lines = _cmdlines([server.pid, *workers])
    assert len(lines) == 3
    for pid, line in lines.items():
        assert secret not in line and "queueserver:" not in line, line
    assert all("--channel-fd" in lines[w] and "--core" not in lines[w] for w in workers)
    # The channel is a socketpair: none of the server's Unix sockets has a name another process could use.
    ours = set()
    for pid in lines:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            link = os.readlink(f"/proc/{pid}/fd/{fd}") if os.path.exists(f"/proc/{pid}/fd/{fd}") else ""
            if link.startswith("socket:["):
                ours.add(link[8:-1])
    with open("/proc/net/unix") as table:  # inode -> name ("" for an unnamed socket)
        unix = {f[6]: (f[7] if len(f) > 7 else "") for f in (line.split() for line in table.readlines()[1:])}
    channels = [inode for inode in ours if inode in unix]
    assert channels, "the workers' channels are Unix sockets"
    assert not [unix[inode] for inode in channels if unix[inode]]
    with server.client("kiosk") as kiosk:  # the server took the URL from its environment (and its workers over the channel)
        assert kiosk.get("/api/v1/health").json()["mqtt_connected"] is True
