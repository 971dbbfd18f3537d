"""Call-screen view-models (door screen and hall board) and the call gate, without a window."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from display import samples
from display.gate import CallGate
from display.viewmodel import HISTORY_LENGTH, CallScreenViewModel
from protocol.payloads import CurrentCall

T0 = datetime(2026, 11, 23, 9, 30, tzinfo=timezone(timedelta(hours=8)))


def door(languages=("zh", "en"), **kw) -> CallScreenViewModel:
    return CallScreenViewModel(layout="door", rooms=["r1"], languages=languages, **kw)


def test_door_screen_shows_the_called_number_masked_name_room_and_who_is_next():
    vm = door()
    vm.show_state(samples.room_state("r1", 3, "A012", name="张三丰", next_tickets=("A013", "A014"), waiting=5))
    assert vm.ticket_text == "A012"
    assert vm.name_text == "张*丰"
    assert (vm.room_title, vm.room_subtitle) == ("1 诊室", "room 1")
    assert vm.caption_text == "当前就诊" and vm.next_text == "A013  A014" and vm.waiting_text == "等候 5 人"


def test_door_screen_in_english_uses_english_words():
    vm = door(languages=("en",))
    vm.show_state(samples.room_state("r1", 3, "A012", name="John Smith"))
    assert (vm.caption_text, vm.room_title, vm.name_text, vm.room_subtitle) == ("Now serving", "room 1", "J*** S.", "")


def test_a_full_name_sent_by_mistake_is_still_masked_on_the_screen():
    state = samples.room_state("r1", 1, "A001")
    leaked = state.model_copy(update={"current": CurrentCall(call_id="x", ticket="A001", masked_name="欧阳娜娜",
                                                             called_at=T0)})
    vm = door()
    vm.show_state(leaked)
    assert vm.name_text == "欧**娜"


def test_paused_and_closed_rooms_say_so():
    vm = door(languages=("en",))
    vm.show_state(samples.room_state("r1", 1, "A001", status="paused"))
    assert vm.status_text == "Paused"
    vm.show_state(samples.room_state("r1", 2, None, status="closed"))
    assert vm.status_text == "Closed" and vm.ticket_text == "—"


def test_door_screen_ignores_other_rooms():
    vm = door()
    vm.show_state(samples.room_state("r2", 9, "A099"))
    vm.show_call(samples.call_event("r2", 9, "A099"))
    assert vm.ticket_text == "—" and vm.history == [] and vm.rooms == ["r1"]


def test_hall_board_grows_a_tile_per_reporting_room_and_keeps_a_history_newest_first():
    vm = CallScreenViewModel(layout="hall", languages=("zh", "en"))
    for i, room in enumerate(["r3", "r1", "r2"]):
        vm.show_state(samples.room_state(room, i + 1, f"A00{i}"))
    assert vm.rooms == ["r1", "r2", "r3"]
    assert [t["ticket"] for t in vm.tiles] == ["A001", "A002", "A000"]
    for n in range(HISTORY_LENGTH + 3):
        vm.show_call(samples.call_event("r1", n, f"A{n:03d}"))
    assert len(vm.history) == HISTORY_LENGTH
    assert vm.history[0]["ticket"] == f"A{HISTORY_LENGTH + 2:03d}"


def test_recall_is_highlighted_on_the_tile_and_in_the_history():
    vm = CallScreenViewModel(layout="hall", rooms=["r1", "r2"], languages=("en",), highlight_seconds=60)
    vm.show_state(samples.room_state("r1", 1, "A012"))
    vm.show_call(samples.call_event("r1", 1, "A012"))
    assert not vm.tiles[0]["highlight"]
    vm.show_call(samples.call_event("r1", 2, "A012", kind="recall", recall_count=1))
    assert vm.tiles[0]["highlight"] and not vm.tiles[1]["highlight"]
    assert vm.history[0]["recall"] and vm.history[0]["kind_text"] == "Recall" and not vm.history[1]["recall"]


def test_recall_highlight_fades():
    vm = door(highlight_seconds=0)
    vm.show_state(samples.room_state("r1", 1, "A012"))
    vm.show_call(samples.call_event("r1", 2, "A012", kind="recall"))
    vm.tick()
    assert not vm.highlight


def test_a_call_shows_where_the_room_is_on_the_call_card_until_it_fades():
    vm = CallScreenViewModel(layout="hall", rooms=["r1", "r3"], languages=("zh", "en"), call_seconds=60)
    vm.show_state(samples.room_state("r3", 1, "B001"))
    assert not vm.call_showing and vm.call_where == ""
    vm.show_call(samples.call_event("r3", 2, "B002"))
    assert vm.call_showing and (vm.call_ticket, vm.call_room_text) == ("B002", "请到 3 诊室")
    assert vm.call_where == "门诊楼 3 楼，出电梯右转"
    assert vm.call_subtext == "Please go to room 3 · Clinic building, floor 3, right from the lifts"
    vm.set_languages(("en",))
    assert (vm.call_room_text, vm.call_where, vm.call_subtext) == (
        "Please go to room 3", "Clinic building, floor 3, right from the lifts", "")
    vm.call_seconds = 0
    vm.show_call(samples.call_event("r1", 3, "A003", kind="recall"))
    assert vm.call_recall and vm.call_room_text == "Recall · Please go to room 1"
    vm.tick()
    assert not vm.call_showing and vm.call_ticket == vm.call_where == ""


def test_a_call_from_a_server_without_locations_still_shows_and_keeps_what_the_snapshot_said():
    vm = door()
    vm.show_state(samples.room_state("r1", 1, "A001", where=False))
    vm.show_call(samples.call_event("r1", 2, "A002", where=False))
    assert vm.where_text == vm.where_subtext == vm.call_where == "" and vm.call_room_text == "请到 1 诊室"
    vm.show_state(samples.room_state("r1", 3, "A002"))  # the server's snapshot says where the room is
    vm.show_call(samples.call_event("r1", 3, "A002", where=False))
    assert vm.where_text == "门诊楼 2 楼，出电梯左转第一间" and vm.call_where == vm.where_text
    assert vm.where_subtext == "Clinic building, floor 2, first door left from the lifts"


def test_notice_line_shows_both_languages_and_respects_its_rooms():
    vm = door()
    vm.show_notice(samples.notice())
    assert "李医生" in vm.notice_text and "Dr. Li's clinic is running 20 minutes late" in vm.notice_text
    vm.show_notice(samples.notice(zh="仅二诊室", en="room 2 only", rooms=("r2",)))
    assert "李医生" in vm.notice_text, "a notice for another room does not replace ours"
    vm.show_notice(samples.notice(zh="", en=""))
    assert vm.notice_text == ""


def test_offline_banner_appears_after_the_configured_time_with_the_last_update():
    vm = door(languages=("en",), offline_after=30)
    vm.set_connected(True, now=T0)
    vm.show_state(samples.room_state("r1", 1, "A012"), now=T0 + timedelta(minutes=2))
    vm.set_connected(False, now=T0 + timedelta(minutes=3))
    vm.tick(T0 + timedelta(minutes=3, seconds=10))
    assert vm.banner_text == ""
    vm.tick(T0 + timedelta(minutes=3, seconds=31))
    assert vm.banner_text == "offline, last update 09:32"
    assert vm.ticket_text == "A012", "the last known state stays on screen"
    vm.set_connected(True, now=T0 + timedelta(minutes=4))
    assert vm.banner_text == ""


def test_server_offline_banner_in_chinese():
    vm = door()
    vm.set_server_online(False)
    assert vm.banner_text == "叫号服务器离线"
    vm.set_server_online(True)
    assert vm.banner_text == ""


def test_clock_shows_hours_and_minutes():
    vm = door()
    vm.tick(T0 + timedelta(minutes=11))
    assert vm.clock_text == "09:41"


# ------------------------------------------------------------------ the gate
def test_gate_announces_each_call_id_once():
    gate = CallGate({"r1"})
    event = samples.call_event("r1", 1, "A001")
    assert gate.accept_call(event) and not gate.accept_call(event)


def test_gate_ignores_calls_older_than_the_snapshot_received_on_reconnect():
    gate = CallGate({"r1"})
    assert gate.accept_state(samples.room_state("r1", 10, "A010"), retained=True)
    assert not gate.accept_call(samples.call_event("r1", 9, "A009"))
    assert gate.accept_call(samples.call_event("r1", 11, "A011"))


def test_gate_ignores_calls_older_than_a_live_snapshot_too():
    gate = CallGate({"r1"})
    assert gate.accept_state(samples.room_state("r1", 7, "A007"), retained=False)
    assert not gate.accept_call(samples.call_event("r1", 6, "A006"))
    assert gate.accept_call(samples.call_event("r1", 7, "A007"))


def test_gate_ignores_live_snapshots_older_than_the_one_shown_but_trusts_retained_ones():
    gate = CallGate(None)
    assert gate.accept_state(samples.room_state("r1", 5, "A005"), retained=False)
    assert not gate.accept_state(samples.room_state("r1", 4, "A004"), retained=False)
    assert gate.accept_state(samples.room_state("r1", 2, "A002"), retained=True)  # server restored from backup


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _in(state, epoch):
    return state.model_copy(update={"epoch": epoch})


def test_gate_takes_a_new_epoch_as_the_truth_even_with_a_lower_seq():
    """A restored store: room r3 went from seq 16 back to 12, and its next call must be spoken."""
    gate = CallGate({"r3"})
    assert gate.accept_state(_in(samples.room_state("r3", 16, "B016"), "aaa"), retained=False)
    assert not gate.accept_state(_in(samples.room_state("r3", 12, "B012"), "aaa"), retained=False)
    assert gate.accept_state(_in(samples.room_state("r3", 12, "B012"), "bbb"), retained=False)
    assert gate.accept_call(_in(samples.call_event("r3", 13, "B013"), "bbb"))


def test_gate_drops_an_implausible_seq_jump_and_keeps_the_room_calling():
    gate = CallGate({"r1"})
    assert gate.accept_state(samples.room_state("r1", 16, "A016"), retained=False)
    bogus = gate.accept_state(samples.room_state("r1", 10**12, "A999"), retained=False)
    assert not bogus and bogus.suspicious
    assert gate.accept_state(samples.room_state("r1", 17, "A017"), retained=False)
    assert gate.accept_call(samples.call_event("r1", 17, "A017"))


def test_a_wrong_floor_stops_holding_a_room_after_the_reorder_window():
    clock = FakeClock()
    gate = CallGate({"r1"}, reorder_window=2.0, clock=clock)
    assert gate.accept_state(samples.room_state("r1", 90_000, "A999"), retained=False)  # wrong, but plausible
    clock.now += 0.5
    assert not gate.accept_state(samples.room_state("r1", 17, "A017"), retained=False), "a swap, within the window"
    clock.now += 2.0
    assert gate.accept_state(samples.room_state("r1", 18, "A018"), retained=False), "the server's real order"
    assert gate.accept_call(samples.call_event("r1", 18, "A018"))


def test_a_removed_room_is_forgotten():
    gate = CallGate(None)
    assert gate.accept_state(samples.room_state("r9", 40, "E040"), retained=False)
    gate.forget_room("r9")
    assert gate.accept_state(samples.room_state("r9", 1, "E001"), retained=False)


def test_gate_ignores_rooms_it_does_not_show():
    gate = CallGate({"r1"})
    assert not gate.accept_call(samples.call_event("r2", 1, "A001"))
    assert not gate.accept_state(samples.room_state("r2", 1, "A001"), retained=True)



@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["state", "state-retained", "call"]), st.integers(0, 6), st.integers(0, 30)),
                max_size=40))
def test_gate_never_accepts_a_call_twice_nor_one_older_than_the_snapshot_shown(messages):
    """Any interleaving of snapshots and (possibly repeated) call events for one room."""
    gate = CallGate({"r1"})
    accepted: list[str] = []
    floor = -1
    for kind, call_no, seq in messages:
        if kind.startswith("state"):
            retained = kind == "state-retained"
            if gate.accept_state(samples.room_state("r1", seq, "A001"), retained=retained):
                floor = seq
            else:
                assert not retained and seq < floor
        else:
            event = samples.call_event("r1", seq, "A001", call_id=f"call-{call_no}")
            if gate.accept_call(event):
                assert event.id not in accepted and seq >= floor
                accepted.append(event.id)


def test_hall_board_sorts_rooms_naturally_and_drops_a_removed_room():
    hall = CallScreenViewModel(layout="hall", languages=["zh", "en"])
    for room in ("r10", "r2", "r1", "r11"):
        hall.show_state(samples.room_state(room, 1, "A001"))
    assert [t["room"] for t in hall.tiles] == ["r1", "r2", "r10", "r11"]
    hall.show_call(samples.call_event("r10", 2, "A002"))
    hall.remove_room("r10")
    assert [t["room"] for t in hall.tiles] == ["r1", "r2", "r11"] and hall.history == []


def test_the_clock_shows_the_hospitals_time_zone_from_its_snapshots():
    hall = CallScreenViewModel(layout="hall", languages=["zh", "en"])
    utc_noon = datetime(2026, 12, 3, 4, 0, tzinfo=timezone.utc)
    hall.show_state(samples.room_state("r1", 1, "A001").model_copy(update={"timezone": "Asia/Shanghai"}))
    hall.tick(utc_noon)
    assert hall.clock_text == "12:00"
    hall.show_call(samples.call_event("r1", 2, "A002").model_copy(update={"ts": utc_noon}))
    assert hall.history[0]["time_text"] == "12:00"


def test_a_door_screen_whose_room_is_removed_shows_nobody():
    vm = door()
    vm.show_state(samples.room_state("r1", 3, "A003"))
    vm.remove_room("r1")
    assert vm.ticket_text == "—" and vm.name_text == "" and vm.room_title == ""


def test_a_configured_room_that_is_removed_and_added_again_returns_to_its_place():
    hall = CallScreenViewModel(layout="hall", rooms=["r3", "r1", "r2"], languages=["zh", "en"])
    hall.remove_room("r1")
    assert [t["room"] for t in hall.tiles] == ["r3", "r2"]
    hall.show_state(samples.room_state("r1", 1, "A001"))
    hall.show_state(samples.room_state("r7", 1, "A007"))  # not configured: never drawn
    assert [t["room"] for t in hall.tiles] == ["r3", "r1", "r2"]
