"""``RoomLanes`` keeps exactly the calling order of ``rules.order_queue`` (hypothesis).

The lanes are what the server answers from: who is called next, the five numbers on the
screen, a patient's place in line. Any drift from the reference order would call the wrong
patient, so every step of a random day is compared with ``order_queue`` on the same tickets.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from queueserver import rules as R
from queueserver.hospital_file import Rules
from queueserver.lanes import RoomLanes

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)

ticket = st.fixed_dictionaries({
    "emergency": st.sampled_from([False] * 12 + [True]),
    "priority": st.sampled_from([None, None, None, "age 71", "pregnant"]),
    "slot": st.one_of(st.none(), st.integers(-40, 60)),  # slot start relative to arrival, minutes
    "returning": st.sampled_from([False] * 8 + [True]),
    "held": st.one_of(st.none(), st.none(), st.integers(1, 20)),  # a no-show held for N minutes
    "same_instant": st.booleans(),  # arrive at the same instant as the previous ticket
})
add = st.tuples(st.just("add"), ticket)
step = st.one_of(  # arrivals outnumber the rest, so queues grow long enough for the ratio to matter
    add, add, add, add,
    st.tuples(st.just("remove"), st.integers(0, 10_000)),
    st.tuples(st.just("call"), st.none()),
    st.tuples(st.just("clock"), st.integers(-3, 45)),  # minutes; sometimes backwards (clock set by NTP)
)
rule_settings = st.builds(
    lambda ratio, bound, grace: Rules(priority_ratio=ratio, ageing_bound_min=bound, late_grace_min=grace),
    st.integers(1, 4), st.integers(20, 90), st.integers(0, 20),
)


def check_same_order(lanes: RoomLanes, waiting: dict[str, R.Waiting], now: datetime, counter: int,
                     rules: Rules) -> None:
    reference = R.order_queue(list(waiting.values()), now=now, rules=rules, others_since_priority=counter,
                              explain=False)
    assert len(lanes) == len(reference)
    head = lanes.top(5, counter=counter, now=now)
    assert [(p.ticket.ticket_id, p.category) for p in head] == \
        [(p.ticket.ticket_id, p.category) for p in reference[:5]]
    if reference:
        assert head[0].reason == reference[0].reason  # the first one's words are what the console shows
        assert lanes.first(counter=counter, now=now) == R.choose_next(
            list(waiting.values()), now=now, rules=rules, others_since_priority=counter)
    for i, p in enumerate(reference):
        assert lanes.position(p.ticket.ticket_id, counter=counter, now=now) == i + 1


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=20, max_size=100), rule_settings, st.integers(0, 5))
def test_lanes_follow_the_reference_order_through_a_day(steps, rules, counter):
    now = T0
    lanes = RoomLanes(rules, timezone.utc)
    waiting: dict[str, R.Waiting] = {}
    arrived = T0
    for n, (kind, arg) in enumerate(steps):
        if kind == "add":
            arrived = arrived if arg["same_instant"] else now
            slot = None if arg["slot"] is None else arrived + timedelta(minutes=arg["slot"])
            held = None if arg["held"] is None else now + timedelta(minutes=arg["held"])
            t = R.Waiting(ticket_id=f"t{n}", number=f"A{n:03d}", arrived_at=arrived, issue_seq=n % 7,
                          slot_start=slot, slot_end=slot and slot + timedelta(minutes=30),
                          emergency=arg["emergency"], priority=arg["priority"], returning=arg["returning"],
                          not_before=held)
            waiting[t.ticket_id] = t
            lanes.add(t, now)
        elif kind == "remove" and waiting:
            tid = sorted(waiting)[arg % len(waiting)]
            del waiting[tid]
            lanes.discard(tid)
        elif kind == "call":
            placed = lanes.first(counter=counter, now=now)
            if placed is not None:
                counter = R.counter_after(placed, counter)
                del waiting[placed.ticket.ticket_id]
                lanes.discard(placed.ticket.ticket_id)
        elif kind == "clock":
            now += timedelta(minutes=arg)
        check_same_order(lanes, waiting, now, counter, rules)


def test_built_lanes_match_and_a_changed_ticket_replaces_its_old_place():
    rules = Rules(priority_ratio=2)
    walk = [R.Waiting(ticket_id=f"w{i}", number=f"A{i:03d}", arrived_at=T0 + timedelta(minutes=i), issue_seq=i)
            for i in range(6)]
    lanes = RoomLanes(rules, timezone.utc, walk, now=T0 + timedelta(minutes=10))
    assert [p.ticket.number for p in lanes.top(3, counter=0, now=T0 + timedelta(minutes=10))] == \
        ["A000", "A001", "A002"]
    # The last walk-in is transferred "to the front": same ticket, now returning.
    front = R.Waiting(ticket_id="w5", number="A005", arrived_at=T0 + timedelta(minutes=11), issue_seq=5,
                      returning=True, front_reason="transferred from room 2, placed near the front")
    lanes.add(front, T0 + timedelta(minutes=11))
    assert len(lanes) == 6
    first = lanes.first(counter=0, now=T0 + timedelta(minutes=11))
    assert first is not None and first.ticket.number == "A005"
    assert first.reason == "transferred from room 2, placed near the front"
    assert lanes.position("w4", counter=0, now=T0 + timedelta(minutes=11)) == 6
    assert lanes.position("nobody", counter=0, now=T0) is None
