"""Group commit on SQLite: jobs share a transaction, but each one succeeds or fails on its own.

A kiosk whose check-in is refused (409) must not take a neighbour's ticket down with it,
and a refused change must leave nothing behind, even when both ran in the same commit.
"""
from __future__ import annotations

import threading
from concurrent.futures import wait

import pytest
from sqlalchemy import insert, select

from protocol.errors import ConflictError
from queueserver.store import Store, counters


@pytest.fixture()
def store(sqlite_store):
    return sqlite_store


def _stored(store: Store) -> dict[str, int]:
    with store.read() as conn:
        return {r.department: r.last for r in conn.execute(select(counters))}


def test_a_failing_job_rolls_back_alone_and_the_others_are_stored(store):
    gate = threading.Event()
    # The first job holds the writer until every other job is queued, so they all share one batch.
    first = store.submit(lambda: gate.wait(5))
    jobs = {}
    for i in range(30):
        def job(i: int = i) -> int:
            with store.tx() as tx:
                tx.conn.execute(insert(counters).values(department=f"d{i}", day="2026-11-23", last=i))
                if i % 3 == 0:
                    raise ConflictError(f"job {i} refused after writing")
            return i
        jobs[i] = store.submit(job)
    gate.set()
    wait([first, *jobs.values()], timeout=10)
    for i, future in jobs.items():
        if i % 3 == 0:
            with pytest.raises(ConflictError, match=f"job {i} refused"):
                future.result()
        else:
            assert future.result() == i
    assert _stored(store) == {f"d{i}": i for i in range(30) if i % 3}


def test_after_commit_hooks_run_in_order_before_the_answer(store):
    seen: list[int] = []

    def job(i: int) -> int:
        with store.tx() as tx:
            tx.conn.execute(insert(counters).values(department=f"h{i}", day="2026-11-23", last=i))
            tx.after_commit(lambda: seen.append(i))
        return i

    futures = [store.submit(lambda i=i: job(i)) for i in range(20)]
    assert [f.result(timeout=10) for f in futures] == list(range(20))
    assert seen == list(range(20))  # published in commit order, and before each caller got its answer
    assert len(_stored(store)) == 20


def test_a_failed_commit_fails_every_job_of_the_batch_and_stores_nothing(store):
    # A deferred foreign key is only checked at COMMIT: the way to make the commit itself fail.
    with store.tx() as tx:
        tx.conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        tx.conn.exec_driver_sql("CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER "
                                "REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
    undone: list[str] = []
    gate = threading.Event()
    first = store.submit(lambda: gate.wait(5))

    def good() -> str:
        with store.tx() as tx:
            tx.conn.execute(insert(counters).values(department="kept?", day="2026-11-23", last=1))
            tx.on_rollback(lambda: undone.append("good"))
        return "ok"

    def orphan() -> str:
        with store.tx() as tx:
            tx.conn.exec_driver_sql("INSERT INTO child (id, parent_id) VALUES (1, 99)")
        return "ok"

    a, b = store.submit(good), store.submit(orphan)
    gate.set()
    for future in (first, a, b):
        with pytest.raises(Exception, match="FOREIGN KEY"):
            future.result(timeout=10)
    assert undone == ["good"]  # in-memory state changed with the lost batch is dropped
    assert _stored(store) == {}
    # The writer goes on with the next batch.
    assert store.submit(good).result(timeout=10) == "ok"
    assert _stored(store) == {"kept?": 1}


def test_a_broken_transaction_answers_every_waiting_job_instead_of_leaving_it_hanging(store):
    gate = threading.Event()
    first = store.submit(lambda: gate.wait(5))

    def breaks_the_transaction() -> None:
        with store.tx() as tx:  # ends the group's transaction under its feet: its SAVEPOINT is gone
            tx.conn.connection.driver_connection.execute("ROLLBACK")

    bad = store.submit(breaks_the_transaction)
    after = store.submit(lambda: "never ran")
    gate.set()
    for future in (first, bad, after):
        with pytest.raises(Exception, match="savepoint"):
            future.result(timeout=10)  # an error, not a kiosk waiting forever
    assert store.submit(lambda: "next group").result(timeout=10) == "next group"


def test_check_ins_in_one_group_commit_get_numbers_in_order_and_the_his_hears_of_each(tmp_path):
    from tests.clinic_day import ClinicDay

    clinic = ClinicDay(tmp_path).at("09:00")
    svc = clinic.service
    try:
        booked = [clinic.book("09:00") for _ in range(12)]
        gate = threading.Event()
        first = clinic.store.submit(lambda: gate.wait(5))
        futures = [clinic.store.submit(lambda no=no: svc.check_in(no)) for no in booked]
        retry = clinic.store.submit(lambda: svc.check_in(booked[0]))  # a kiosk retrying in the same batch
        unknown = clinic.store.submit(lambda: svc.check_in("AP404404"))
        gate.set()
        assert first.result(timeout=10) is True
        tickets = [f.result(timeout=10) for f in futures]
        assert [issued.created for issued in tickets] == [True] * 12
        assert [issued.ticket.number for issued in tickets] == [f"A{i:03d}" for i in range(1, 13)]
        retried = retry.result(timeout=10)
        assert not retried.created and retried.ticket.already_checked_in is True
        with pytest.raises(Exception, match="no appointment"):
            unknown.result(timeout=10)
        assert all(clinic.backend.find_appointment(no).status == "checked_in" for no in booked)
        state = svc.room_state("r1")
        assert state.waiting_count == 12 and state.next_tickets[:2] == ("A001", "A002")
    finally:
        clinic.close()


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int]] = []

    def publish_state(self, state) -> None:  # type: ignore[no-untyped-def]
        self.sent.append(("state", state.room, state.seq))

    def publish_call(self, event) -> None:  # type: ignore[no-untyped-def]
        self.sent.append(("call", event.room, event.seq))

    def publish_alert(self, alert) -> None:  # type: ignore[no-untyped-def]
        pass


def test_a_group_commit_sends_each_call_with_its_snapshot_and_folds_the_other_snapshots(tmp_path):
    from tests.clinic_day import ClinicDay

    publisher = RecordingPublisher()
    clinic = ClinicDay(tmp_path, publisher=publisher).at("09:00")
    svc = clinic.service
    try:
        for _ in range(2):
            clinic.walk_in("surgery")  # B001, B002; room 3 is at seq 2
        publisher.sent.clear()
        gate = threading.Event()
        first = clinic.store.submit(lambda: gate.wait(5))
        jobs = [clinic.store.submit(lambda: svc.walk_in("surgery")),   # seq 3
                clinic.store.submit(lambda: svc.walk_in("surgery")),   # seq 4
                clinic.store.submit(lambda: svc.call_next("r3")),      # seq 5: B001 called
                clinic.store.submit(lambda: svc.walk_in("surgery")),   # seq 6
                clinic.store.submit(lambda: svc.call_next("r3")),      # seq 7: B002 called
                clinic.store.submit(lambda: svc.walk_in("surgery")),   # seq 8
                clinic.store.submit(lambda: svc.walk_in("surgery"))]   # seq 9
        gate.set()
        assert first.result(timeout=10) is True
        answers = [f.result(timeout=10) for f in jobs]
        assert [answers[2].ticket.number, answers[4].ticket.number] == ["B001", "B002"]
        # Each call goes out right after the snapshot that shows it (screens draw the room, then
        # announce); the waiting-list-only snapshots in between are folded away, none is lost.
        assert publisher.sent == [("state", "r3", 5), ("call", "r3", 5), ("state", "r3", 7), ("call", "r3", 7),
                                  ("state", "r3", 9)]  # the group's newest, once, at its end
        clinic.walk_in("surgery")
        assert publisher.sent[-1] == ("state", "r3", 10)
        assert svc.room_state("r3").next_tickets == ("B003", "B004", "B005", "B006", "B007")
    finally:
        clinic.close()
