"""Invariants of the calling rules over generated clinic days (hypothesis).

Pure-rule properties run on ``queueserver.rules`` directly; the last property runs random
operations against the real service and store and checks numbers and calls over the day.
"""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.errors import ConflictError, NotFoundError
from queueserver import rules as R
from queueserver.context import waiting
from queueserver.hospital_file import Rules

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)

arrival = st.fixed_dictionaries({
    "emergency": st.sampled_from([False] * 9 + [True]),
    "priority": st.sampled_from([None, None, None, "age 71", "pregnant"]),
    "slot": st.one_of(st.none(), st.integers(-40, 90)),  # slot start relative to arrival, minutes
    "returning": st.sampled_from([False] * 8 + [True]),
})
step = st.one_of(
    st.tuples(st.just("arrive"), st.integers(0, 6), arrival),
    st.tuples(st.just("call"), st.integers(0, 12), st.none()),
)
rule_settings = st.builds(
    lambda ratio, bound, grace: Rules(priority_ratio=ratio, ageing_bound_min=bound, late_grace_min=grace),
    st.integers(1, 4), st.integers(20, 90), st.integers(0, 20),
)


def simulate(steps, rules: Rules):  # type: ignore[no-untyped-def]
    """Run a generated day through the rules; yields (now, waiting before the call, counter before, placed)."""
    now, counter, seq = T0, 0, itertools.count(1)
    waiting: list[R.Waiting] = []
    for kind, gap, spec in steps:
        now += timedelta(minutes=gap)
        if kind == "arrive":
            n = next(seq)
            slot = None if spec["slot"] is None else now + timedelta(minutes=spec["slot"])
            waiting.append(R.Waiting(ticket_id=f"t{n}", number=f"A{n:03d}", arrived_at=now, issue_seq=n,
                                     slot_start=slot, slot_end=slot and slot + timedelta(minutes=30),
                                     emergency=spec["emergency"], priority=spec["priority"],
                                     returning=spec["returning"]))
            continue
        before = list(waiting)
        placed = R.choose_next(waiting, now=now, rules=rules, others_since_priority=counter)
        yield now, before, counter, placed
        if placed is not None:
            waiting.remove(placed.ticket)
            counter = R.counter_after(placed, counter)


@settings(max_examples=200, deadline=None)
@given(st.lists(step, max_size=120), rule_settings)
def test_no_ticket_is_ever_called_twice_and_only_waiting_ones_are(steps, rules):
    called: set[str] = set()
    for _, before, _, placed in simulate(steps, rules):
        if placed is None:
            assert not before
            continue
        assert placed.ticket in before
        assert placed.ticket.ticket_id not in called
        assert placed.reason  # every call says why
        called.add(placed.ticket.ticket_id)


@settings(max_examples=200, deadline=None)
@given(st.lists(step, max_size=120), rule_settings)
def test_emergency_is_always_first(steps, rules):
    for _, before, _, placed in simulate(steps, rules):
        emergencies = [t for t in before if t.emergency]
        if emergencies:
            assert placed is not None and placed.category == R.EMERGENCY
            assert placed.ticket == min(emergencies, key=lambda t: (t.arrived_at, t.issue_seq))


@settings(max_examples=200, deadline=None)
@given(st.lists(step, max_size=120), rule_settings)
def test_nobody_is_outranked_past_the_ageing_bound(steps, rules):
    bound = timedelta(minutes=rules.ageing_bound_min)
    for now, before, _, placed in simulate(steps, rules):
        if any(t.emergency for t in before):
            continue
        overdue = [t for t in before if now - R.wait_started(t, rules) >= bound]
        if overdue:
            assert placed is not None and placed.category == R.AGED
            longest = min(R.wait_started(t, rules) for t in overdue)
            assert R.wait_started(placed.ticket, rules) == longest


@settings(max_examples=200, deadline=None)
@given(st.lists(step, max_size=120), rule_settings)
def test_priority_turn_comes_exactly_at_the_ratio(steps, rules):
    for now, before, counter, placed in simulate(steps, rules):
        if placed is None:
            continue
        order = R.order_queue(before, now=now, rules=rules, others_since_priority=counter)
        lanes = {p.category for p in order}
        others_waiting = any(p.category in (R.RETURNING, R.APPOINTMENT, R.WALK_IN, R.LATE) for p in order)
        if placed.category == R.PRIORITY and others_waiting:
            assert counter >= rules.priority_ratio  # a priority patient never jumps the turn
        if placed.category in (R.RETURNING, R.APPOINTMENT, R.WALK_IN, R.LATE) and R.PRIORITY in lanes:
            assert counter < rules.priority_ratio  # and is never passed over when it is their turn


@settings(max_examples=100, deadline=None)
@given(st.lists(step, max_size=80), rule_settings)
def test_the_fast_order_is_the_explained_order(steps, rules):
    for now, before, counter, _ in simulate(steps, rules):
        full = R.order_queue(before, now=now, rules=rules, others_since_priority=counter, explain=True)
        fast = R.order_queue(before, now=now, rules=rules, others_since_priority=counter, explain=False)
        assert [(p.ticket, p.category) for p in fast] == [(p.ticket, p.category) for p in full]
        assert not fast or fast[0].reason == full[0].reason


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(0, 30), st.integers(0, 30))
def test_ratio_holds_over_a_long_run(ratio, n_priority, n_other):
    rules = Rules(priority_ratio=ratio, ageing_bound_min=24 * 60)
    waiting = [R.Waiting(ticket_id=f"o{i}", number=f"A{i:03d}", arrived_at=T0, issue_seq=i) for i in range(n_other)]
    waiting += [R.Waiting(ticket_id=f"p{i}", number=f"B{i:03d}", arrived_at=T0, issue_seq=100 + i, priority="age 80")
                for i in range(n_priority)]
    counter, lanes = 0, []
    now = T0 + timedelta(minutes=1)
    while waiting:
        placed = R.choose_next(waiting, now=now, rules=rules, others_since_priority=counter)
        assert placed is not None
        lanes.append("P" if placed.category == R.PRIORITY else "O")
        waiting.remove(placed.ticket)
        counter = R.counter_after(placed, counter)
    both = "".join(lanes)
    run = seen_p = seen_o = 0
    for lane in lanes:  # while both kinds wait: exactly `ratio` others, then one priority, repeated
        if seen_p == n_priority or seen_o == n_other:
            break
        if lane == "P":
            assert run == ratio, both
            run, seen_p = 0, seen_p + 1
        else:
            assert run < ratio, both
            run, seen_o = run + 1, seen_o + 1
    assert both.count("P") == n_priority and both.count("O") == n_other


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["walk_in", "priority", "emergency", "call_r1", "call_r2", "call_r3",
                                           "finish_r1", "no_show_r1", "cancel", "transfer"]),
                          st.integers(0, 1000)), min_size=5, max_size=40))
def test_service_day_never_repeats_a_number_or_calls_twice(tmp_path_factory, ops):
    from tests.clinic_day import ClinicDay

    clinic = ClinicDay(tmp_path_factory.mktemp("day"))
    svc = clinic.service
    issued: list[dict] = []
    calls: list[str] = []
    requeued: dict[str, int] = {}  # transfers put a ticket back in a queue: it may be called again
    try:
        for op, pick in ops:
            clinic.later(minutes=1)
            try:
                if op in ("walk_in", "priority", "emergency"):
                    dept = ["internal", "surgery"][pick % 2]
                    issued.append(clinic.walk_in(dept, priority="elderly" if op == "priority" else None,
                                                 emergency=op == "emergency"))
                elif op.startswith("call_"):
                    calls.append(svc.call_next(op[5:]).ticket.ticket_id)
                elif op == "finish_r1":
                    svc.finish("r1")
                elif op == "no_show_r1":
                    svc.no_show("r1")
                elif issued and op == "cancel":
                    svc.cancel(issued[pick % len(issued)]["ticket_id"])
                elif issued and op == "transfer":
                    moved = svc.transfer(issued[pick % len(issued)]["ticket_id"], department="surgery",
                                         placement="keep")
                    requeued[moved.ticket_id] = requeued.get(moved.ticket_id, 0) + 1
            except (ConflictError, NotFoundError):
                pass  # refusals (nobody waiting, already cancelled...) are part of the day
        numbers = [t["number"] for t in issued]
        assert len(numbers) == len(set(numbers))
        for prefix in ("A", "B"):
            mine = sorted(int(n[1:]) for n in numbers if n.startswith(prefix))
            assert mine == list(range(1, len(mine) + 1))  # contiguous per department: nothing skipped
        # A ticket is called at most once, except after a no-show or a transfer put it back in a queue.
        from sqlalchemy import select

        from queueserver.store import calls as calls_table, rooms, tickets
        with clinic.store.read() as conn:
            rows = list(conn.execute(select(calls_table.c.ticket_id, calls_table.c.kind)))
            no_shows = {r.ticket_id: r.no_show_count for r in conn.execute(select(tickets.c.ticket_id,
                                                                                   tickets.c.no_show_count))}
        for tid in {r.ticket_id for r in rows}:
            n_calls = sum(1 for r in rows if r.ticket_id == tid and r.kind == "call")
            assert n_calls <= 1 + no_shows[tid] + requeued.get(tid, 0)
        # The server's in-memory calling order agrees with the database, room by room.
        now = svc.clock()
        with clinic.store.read() as conn:
            room_counters = {r.room_id: r.others_since_priority for r in conn.execute(select(rooms))}
            loaded = svc.ordering.load(conn, svc.hospital.rooms, svc.today(now))
        kept = svc.ordering.kept_lanes()
        if kept is not None:
            for room in svc.hospital.rooms:
                lanes = kept[room.id]
                reference = R.order_queue([waiting(r) for r in loaded[room.id]], now=now, rules=svc.rules,
                                          others_since_priority=room_counters[room.id], tz=svc.tz)
                assert [p.ticket for p in lanes.top(len(reference) + 1, counter=room_counters[room.id], now=now)] \
                    == [p.ticket for p in reference]
    finally:
        clinic.close()
