"""The v1 contract: topics built and parsed in one place, payloads that reject bad input."""
import json
from datetime import datetime, timezone

import pytest

from protocol import CallEvent, ProtocolError, RoomState, decode_payload, encode_payload, mask_name, topics
from protocol.announce import announcement_texts
from protocol.payloads import RoomStatus

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=timezone.utc)


def _call(**overrides):
    fields = dict(id="c1", seq=3, ts=NOW, site="demo", room="r3", department="A", ticket="A012", kind="call",
                  announce=announcement_texts("A012", "r3", {"zh": "3 诊室", "en": "room 3"}))
    fields.update(overrides)
    return CallEvent(**fields)


def test_topics_round_trip_through_the_parser():
    assert topics.parse(topics.room_state("demo", "r3")) == topics.TopicMatch("room_state", "demo", room="r3")
    assert topics.parse(topics.calls("demo")).kind == "calls"
    assert topics.parse(topics.device("demo", "hall-2", "status")) == topics.TopicMatch("device_status", "demo", device="hall-2")
    assert topics.parse("clinicflow/v1/demo/rooms/r3/state/extra") is None
    assert topics.parse("other/v1/demo/calls") is None


def test_topic_levels_reject_wildcards():
    with pytest.raises(ValueError):
        topics.room_state("demo", "r/#")
    with pytest.raises(ValueError):
        topics.calls("+")


def test_call_event_survives_the_wire():
    event = _call()
    assert decode_payload(CallEvent, encode_payload(event)) == event
    assert event.announce == {"zh": "请 A012 号到 3 诊室就诊", "en": "Number A012, please go to room 3",
                              "yue": "请 A012 号到 3 诊室睇症"}


@pytest.mark.parametrize("raw, reason", [
    (b"not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"v": 2}', "version"),
    (b"x" * 70000, "exceeds"),
    (b"\xff\xfe", "not JSON"),
])
def test_bad_payloads_raise_protocol_error_only(raw, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode_payload(CallEvent, raw)


def test_extra_keys_and_bad_ticket_numbers_are_rejected():
    good = encode_payload(_call()).decode()
    with pytest.raises(ProtocolError, match="full_name: Extra inputs"):
        decode_payload(CallEvent, good[:-1] + ', "full_name": "Zhang San"}')
    with pytest.raises(ProtocolError, match="ticket"):
        decode_payload(CallEvent, good.replace('"A012"', '"A 012"'))


def test_a_payload_without_its_version_is_rejected():
    raw = json.loads(encode_payload(_call()))
    del raw["v"]
    with pytest.raises(ProtocolError, match="without its version field"):
        decode_payload(CallEvent, json.dumps(raw))


def test_calls_carry_their_epoch_and_announcement_window_and_refuse_nonsense():
    event = decode_payload(CallEvent, encode_payload(_call(epoch="3fa2c1d0e9b8", announce_within_s=15)))
    assert (event.epoch, event.announce_within_s) == ("3fa2c1d0e9b8", 15)
    for bad in ({"announce_within_s": 0}, {"epoch": "a/b"}):
        raw = json.loads(encode_payload(_call()))
        raw.update(bad)
        with pytest.raises(ProtocolError):
            decode_payload(CallEvent, json.dumps(raw))
    state = RoomState(seq=1, ts=NOW, site="demo", room="r3", department="A", status="open", timezone="Asia/Shanghai")
    assert decode_payload(RoomState, encode_payload(state)).timezone == "Asia/Shanghai"


def test_room_state_is_frozen():
    state = RoomState(seq=1, ts=NOW, site="demo", room="r3", department="A", status="open")
    with pytest.raises(Exception):
        state.seq = 2  # type: ignore[misc]


@pytest.mark.parametrize("name, masked", [
    ("张三丰", "张*丰"), ("张三", "张*"), ("欧阳娜娜", "欧**娜"), ("John Smith", "J*** S."),
    ("Mary Ann Jones", "M*** J."), ("Li", "L*"), ("", ""),
])
def test_mask_name_never_shows_a_full_name(name, masked):
    assert mask_name(name) == masked


def test_a_call_without_a_room_location_is_what_older_screens_accept_and_one_with_it_round_trips():
    """Payloads refuse unknown keys, so ``room_where`` stays off the wire while empty: a site without room
    locations keeps working with screens from before the field existed."""
    plain = encode_payload(_call())
    assert b"room_where" not in plain
    where = {"zh": "门诊楼 2 楼，出电梯左转", "en": "Outpatient building, floor 2, left from the lifts"}
    located = decode_payload(CallEvent, encode_payload(_call().model_copy(update={"room_where": where})))
    assert located.room_where == where and decode_payload(CallEvent, plain).room_where == {}


def test_a_room_snapshot_carries_its_location_only_when_it_has_one():
    state = RoomState(seq=1, ts=datetime(2026, 12, 3, tzinfo=timezone.utc), site="demo", room="r1",
                      department="internal", status=RoomStatus.OPEN)
    plain = encode_payload(state)
    assert b"room_where" not in plain and decode_payload(RoomState, plain).room_where == {}
    where = {"zh": "门诊楼 2 楼，出电梯左转", "en": "Clinic building, floor 2, left from the lifts"}
    located = decode_payload(RoomState, encode_payload(state.model_copy(update={"room_where": where})))
    assert located.room_where == where


def test_the_announcement_says_where_the_room_is_and_stays_within_a_payload():
    where = {"zh": "门诊楼 2 楼，出电梯左转", "en": "Clinic building, floor 2, left from the lifts"}
    texts = announcement_texts("A012", "r3", {"zh": "3 诊室", "en": "room 3"}, where=where, recall=True)
    assert texts == {"zh": "再次呼叫，请 A012 号到 3 诊室就诊，门诊楼 2 楼，出电梯左转",
                     "en": "Calling again. Number A012, please go to room 3, Clinic building, floor 2, left from the lifts",
                     "yue": "再次呼叫，请 A012 号到 3 诊室睇症，门诊楼 2 楼，出电梯左转"}
    # A location too long to say within a call's 200 characters is left to the screen, never refused.
    huge = announcement_texts("A012", "r3", {"zh": "3 诊室", "en": "room 3"}, where={"en": "x" * 190})
    assert huge["en"] == "Number A012, please go to room 3"
