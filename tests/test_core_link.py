"""The channel between HTTP workers and the queue core, in one process: what crosses it and what cannot.

Real QueueService on real SQLite at the core's end; the worker's end is a RemoteQueueService,
or the test itself writing frames as a hostile or broken peer would.
"""
from __future__ import annotations

import asyncio
import json
import pickle
import struct
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from protocol.api import TicketOut
from protocol.errors import ConflictError
from queueserver import codec
from queueserver.core_link import CoreServer, RemoteQueueService, _receive, _send
from queueserver.core_process import RestartBudget
from queueserver.errors import NothingWaiting, Unavailable
from queueserver.results import DayClosed, Issued
from tests.clinic_day import ClinicDay

HEADER = struct.Struct(">I")


class _Planted:
    """Unpickling this runs ``open(path, "w")``: the proof that a frame was decoded with pickle."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.path), "w"))


@pytest.fixture
def clinic(tmp_path):
    day = ClinicDay(tmp_path).at("08:00")
    yield day
    day.close()


def run(scenario):  # type: ignore[no-untyped-def]
    """``asyncio.run(scenario())`` in a thread of its own: other tests (Playwright) may leave a loop running here."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, scenario()).result()


def _frame(data: bytes) -> bytes:
    return HEADER.pack(len(data)) + data


def test_the_codec_carries_results_and_domain_errors_and_refuses_unknown_kinds():
    ticket = TicketOut(ticket_id="t1", number="A001", department="internal", department_name={"en": "Internal"},
                       status="waiting", issued_at=datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc),
                       status_url="http://x/status/t1")
    value = {"issued": Issued(ticket, created=True), "day": DayClosed(2, 1), "rooms": frozenset({"r1", "r2"}),
             "pair": ("a", 1), "$": "a user's dollar key", "error": NothingWaiting("Nobody is waiting for room 1.")}
    back = codec.loads(codec.dumps(value))
    assert back["issued"] == value["issued"] and back["day"] == value["day"] and back["rooms"] == value["rooms"]
    assert back["pair"] == ("a", 1) and back["$"] == "a user's dollar key"
    assert isinstance(back["error"], NothingWaiting) and isinstance(back["error"], ConflictError)
    assert str(back["error"]) == "Nobody is waiting for room 1."
    for forged in ('{"$": "posix.system", "v": "touch /tmp/x"}', '{"$": "Issued", "v": {"__class__": 1}}',
                   pickle.dumps(["anything"])):
        with pytest.raises(codec.DecodeError):
            codec.loads(forged)
    odd = codec.loads('{"$": "error", "v": {"type": "SystemExit", "message": "bye"}}')
    assert type(odd) is RuntimeError  # only errors from the fixed table cross as themselves


def test_a_forged_frame_on_the_core_channel_is_dropped_and_never_decoded_as_code(clinic, tmp_path):
    planted = tmp_path / "planted-by-pickle"

    async def scenario() -> dict:
        core = CoreServer(clinic.service, mqtt_connected=lambda: False)
        await core.start()
        reader, writer = await asyncio.open_unix_connection(sock=core.channel())
        writer.write(_frame(pickle.dumps(_Planted(planted))))  # what the old channel would have run
        writer.write(_frame(b'{"k": "call", "id": 1, "op": "today", "args": {"$": "builtins.eval"}, "kwargs": {}}'))
        writer.write(_frame(json.dumps({"k": "call", "id": 2, "op": "__class__", "args": [], "kwargs": {}}).encode()))
        await _send(writer, {"k": "call", "id": 3, "op": "today", "args": [], "kwargs": {}})
        answers = [codec.loads(await asyncio.wait_for(_receive(reader), 5)) for _ in range(2)]
        writer.close()
        await core.close()
        return {a["id"]: a for a in answers}

    answers = run(scenario)
    assert not planted.exists()
    assert answers[2]["ok"] is False and isinstance(answers[2]["value"], PermissionError)  # not offered
    assert answers[3] == {"k": "result", "id": 3, "ok": True, "value": "2026-03-02"}  # the channel still works


def test_a_worker_carries_out_operations_at_the_core_and_keeps_reading_after_a_bad_message(clinic):
    async def scenario() -> None:
        core = CoreServer(clinic.service, mqtt_connected=lambda: True, worker_settings={"broker": "mqtt://b:1"})
        await core.start()
        remote = await RemoteQueueService.connect(core.channel(), backend=clinic.backend)
        assert remote.settings == {"broker": "mqtt://b:1"} and remote.hospital == clinic.service.hospital
        heard: list[set[str]] = []
        remote.add_listener(lambda rooms, tickets: heard.append(rooms))
        issued = await remote.call("walk_in", "internal", name="王小明")
        assert isinstance(issued, Issued) and issued.created and issued.ticket.masked_name == "王*明"
        with pytest.raises(NothingWaiting):
            await remote.call("call_next", "r3")
        # A message the worker cannot use (a listener that fails) is logged, and the worker goes on.
        remote.add_listener(lambda rooms, tickets: 1 / 0)
        call = await remote.call("call_next", "r1")
        assert call.ticket.ticket_id == issued.ticket.ticket_id
        assert (await remote.call("room_state", "r1")).current.ticket == issued.ticket.number
        assert heard and not remote.closed.done()
        await core.close()

    run(scenario)


def test_a_call_in_flight_when_the_core_goes_away_or_stays_silent_is_unavailable(clinic):
    async def scenario() -> None:
        import socket

        ours, theirs = socket.socketpair()
        core_reader, core_writer = await asyncio.open_unix_connection(sock=ours)

        async def fake_core() -> None:  # answers hello, then never answers, then dies
            await _receive(core_reader)
            await _send(core_writer, {"k": "result", "id": 0, "ok": True, "value": {
                "site": "demo", "public_url": "http://x", "hospital": clinic.service.hospital}})
            await _receive(core_reader)  # the call that will time out
            await _receive(core_reader)  # the call in flight when the core dies
            core_writer.close()

        task = asyncio.ensure_future(fake_core())
        remote = await RemoteQueueService.connect(theirs, backend=clinic.backend, timeout=0.3)
        with pytest.raises(Unavailable, match="did not answer"):
            await remote.call("today")
        with pytest.raises(Unavailable, match="restarting"):
            await remote.call("call_next", "r1")
        with pytest.raises(Unavailable):
            await remote.call("today")  # the core is gone: at once, no waiting
        await task

    run(scenario)


def test_the_http_answer_while_the_core_is_gone_is_503_with_retry_after(clinic, tmp_path):
    from queueserver.app import create_app
    from queueserver.auth import TokenBook

    async def scenario() -> httpx.Response:
        import socket

        ours, theirs = socket.socketpair()
        core_reader, core_writer = await asyncio.open_unix_connection(sock=ours)
        await _send(core_writer, {"k": "result", "id": 0, "ok": True, "value": {
            "site": "demo", "public_url": "http://x", "hospital": clinic.service.hospital}})
        remote = await RemoteQueueService.connect(theirs, backend=clinic.backend)
        tokens = TokenBook.load_or_create(tmp_path, remote.hospital)
        # as an HTTP worker does (queueserver/front.py): its own store on the core's database
        app = create_app(remote, tokens, alert_interval=0,  # type: ignore[arg-type]
                         store=clinic.store)

        async def die_on_call() -> None:
            await _receive(core_reader)  # hello
            await _receive(core_reader)  # the call-next in flight
            core_writer.close()

        task = asyncio.ensure_future(die_on_call())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as http:
            response = await http.post("/api/v1/rooms/r1/call-next", headers={
                "Authorization": f"Bearer {tokens.tokens()['admin']}", "Idempotency-Key": "k1"})
        await task
        return response

    response = run(scenario)
    assert response.status_code == 503 and response.headers["retry-after"] == "2"
    assert "try again" in response.json()["detail"]


def test_the_restart_budget_gives_up_on_a_worker_that_cannot_start_but_forgives_after_a_healthy_period():
    budget = RestartBudget(quick_s=5, max_quick=3, healthy_s=60)
    assert not any(budget.exhausted(ran_for=1, now=t) for t in (10, 11, 12))  # three quick exits: restarted
    assert budget.exhausted(ran_for=1, now=13)  # a fourth in a row: it will not start next time either
    budget = RestartBudget(quick_s=5, max_quick=3, healthy_s=60)
    for day in range(10):  # a crash now and then over a long life, each after a healthy hour
        for t in (0, 1, 2):
            assert not budget.exhausted(ran_for=1, now=day * 3600 + t)
    assert not budget.exhausted(ran_for=3600, now=36000 + 3600)  # a long run is never counted
