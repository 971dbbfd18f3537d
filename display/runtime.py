"""``CallScreen``: a call screen's whole behaviour without a window (the public entry for tests and benches).

    from display.runtime import CallScreen
    from hardware.speech import FakeSpeaker

    screen = CallScreen("mqtt://127.0.0.1:1883", "demo", ["r1"], speaker=FakeSpeaker())
    screen.start()
    screen.wait_for_call(ticket="A012", timeout=5)      # the view-model shows it
    screen.announcer.wait_for(1)                         # and it was announced
    screen.view_model.ticket_text, screen.announcements  # what a patient saw and heard
    screen.stop()

It subscribes to the site's room snapshots, calls, notice and server availability through
``PahoMessageBus``; ``CallGate`` decides what is new; ``ClockSkew`` and the call's
``announce_within_s`` decide whether a new call is still timely enough to speak (a late one is
shown, never spoken); the ``Announcer`` speaks; the view-model
is updated only on the UI thread: Kivy's main thread in the app (``ui_call`` schedules onto
``Clock``), or, headless, one private thread that plays that role.
"""
from __future__ import annotations

import logging
import queue
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo
from typing import Any

import clinicflow
from clinicflow.agent import DeviceAgent
from clinicflow.mqtt import PahoMessageBus
from display.announcer import Announcement, Announcer
from display.gate import REORDER_WINDOW_S, CallGate
from display.viewmodel import CallScreenViewModel
from display.watchdog import Watchdog
from hardware.speech.port import Speaker
from protocol import topics
from protocol.announce import announcement_texts
from protocol.errors import ProtocolError
from protocol.payloads import CallEvent, Notice, RoomState, decode_payload
from protocol.topics import OFFLINE, ONLINE

log = logging.getLogger(__name__)

TEST_TEXTS = {"zh": "语音测试，这是一条测试广播", "en": "This is a test announcement", "yue": "語音測試，呢個係測試廣播"}

UiCall = Callable[[Callable[[], None]], None]
"""Runs a function on the UI thread, later (never inline from the network thread)."""

ANNOUNCE_TOLERANCE_S = 2.0
"""Added to a call's ``announce_within_s``: delivery delay plus what is left of clock skew."""


class ClockSkew:
    """How far this screen's clock is ahead of the server's, from live snapshots' ``ts``.

    Live snapshots go out the moment they are committed, so ``received - ts`` is the skew plus
    milliseconds. The median of the last few keeps one odd message (a replayed or forged one)
    from moving it, and a screen whose clock was never synchronised (a Pi has no clock of its
    own) still judges a call's age by the server's clock rather than silencing every call.
    """

    def __init__(self, keep: int = 15) -> None:
        self._samples: deque[float] = deque(maxlen=keep)

    def sample(self, ts: datetime, received: float) -> None:
        self._samples.append(received - ts.timestamp())

    @property
    def seconds(self) -> float:
        return statistics.median(self._samples) if self._samples else 0.0

    def age(self, ts: datetime, now: float) -> float:
        """Seconds since ``ts`` (server clock) at ``now`` (this screen's ``time.time()``)."""
        return now - ts.timestamp() - self.seconds


class HeadlessUiThread:
    """One thread that plays the UI thread's role when there is no window: runs callables in order."""

    def __init__(self, name: str = "headless-ui") -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def __call__(self, fn: Callable[[], None]) -> None:
        self._queue.put(fn)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far has run."""
        done = threading.Event()
        self._queue.put(done.set)
        return done.wait(timeout)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(5)

    def _run(self) -> None:
        while (fn := self._queue.get()) is not None:
            try:
                fn()
            except Exception:  # one bad update must not freeze the screen
                log.exception("UI update failed")


class CallScreen:
    """One call screen: MQTT in, view-model and announcements out.

    ``rooms`` empty on a hall board means every room of the site. ``ui_call`` defaults to a
    private headless UI thread; the Kivy app passes a function that schedules on ``Clock``.
    Set ``tick_interval`` to ``None`` when the caller ticks the clock itself (the app does).
    ``announce_tolerance`` is added to each call's announcement window; ``reorder_window`` is the
    gate's (``display.gate``); ``short_names`` are per room, per language (``--short-name``).
    """

    def __init__(
        self,
        bus_url: str,
        site: str,
        rooms: Sequence[str] = (),
        *,
        speaker: Speaker | None,
        layout: str = "door",
        languages: Sequence[str] = ("zh", "en"),
        repeats: int = 2,
        device_id: str | None = None,
        offline_after: float = 30.0,
        status_interval: float = 30.0,
        watchdog_timeout: float | None = None,
        on_stall: Callable[[float], None] | None = None,
        ui_call: UiCall | None = None,
        tick_interval: float | None = 1.0,
        anticipate: int = 2,
        tz: tzinfo | None = None,
        bus: PahoMessageBus | None = None,
        announce_tolerance: float = ANNOUNCE_TOLERANCE_S,
        short_names: dict[str, dict[str, str]] | None = None,
        reorder_window: float = REORDER_WINDOW_S,
    ) -> None:
        topics.validate_id(site, "site")
        for room in rooms:
            topics.validate_id(room, "room")
        if layout == "door" and len(rooms) != 1:
            raise ValueError("a door screen shows exactly one room: pass --rooms with one room id")
        self.site = site
        self.layout = layout
        self.device_id = topics.validate_id(device_id or f"display-{'-'.join(rooms) or 'hall'}", "device id")
        self.languages = tuple(languages)
        self.speaker = speaker
        self.view_model = CallScreenViewModel(layout=layout, rooms=list(rooms), languages=self.languages,
                                              offline_after=offline_after, tz=tz, short_names=short_names)
        self.gate = CallGate(set(rooms) or None, reorder_window=reorder_window)
        self.skew = ClockSkew()
        self.announce_tolerance = announce_tolerance
        self.announcer = Announcer(speaker, languages=self.languages, repeats=repeats, on_health=self._speech_health,
                                   on_finished=self._announced)
        self.bus = bus or PahoMessageBus(bus_url, client_id=f"clinicflow-{self.device_id}",
                                         availability_topic=topics.device(site, self.device_id, "availability"))
        self._own_ui = ui_call is None
        self._ui: UiCall = ui_call or HeadlessUiThread()
        self.tick_interval = tick_interval
        self.anticipate_count = anticipate
        self.dropped = 0
        self.last_call_id: str | None = None
        """The newest call received and accepted (announced or, if late, only shown)."""
        self.last_announced_call_id: str | None = None
        self.announced_count = 0
        self.late_calls = 0
        """Calls received after their announcement window: shown, not spoken."""
        self._ignored_rooms: set[str] = set()
        self._latest_states: dict[str, RoomState] = {}  # every room of the site, for a live change of rooms
        self.shown_at: dict[str, float] = {}
        """call id -> time.monotonic() when the view-model showed it (for latency measurements)."""
        self._shown = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.watchdog = Watchdog(timeout=watchdog_timeout, on_stall=on_stall) if watchdog_timeout else None
        self.status = DeviceAgent(self.bus, site=site, device_id=self.device_id,
                                  role="door_screen" if layout == "door" else "hall_board",
                                  version=clinicflow.__version__, status_interval=status_interval,
                                  settings={"rooms": list(rooms), "languages": list(self.languages),
                                            "announce_repeat": repeats})
        self._subscribe()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> "CallScreen":
        self.announcer.start()
        self.status.add_check("speech", lambda: self.announcer.healthy and (self.speaker is None or self.speaker.healthy))
        self.status.add_check("broker", lambda: self.bus.connected)
        self.status.add_check("ui", lambda: self.watchdog is None or not self.watchdog.stalled)
        self.status.add_detail("layout", lambda: self.layout)
        self.status.add_detail("rooms", lambda: ",".join(self.view_model.rooms))
        self.status.add_detail("last_render", lambda: round(self.view_model.last_render, 3))
        self.status.add_detail("last_call_id", lambda: self.last_announced_call_id)
        self.status.add_detail("last_received_call_id", lambda: self.last_call_id)
        self.status.add_detail("announced_count", lambda: self.announced_count)
        self.status.add_detail("late_calls", lambda: self.late_calls)
        self.status.add_detail("clock_skew_s", lambda: round(self.skew.seconds, 3))
        self.status.add_detail("speech_error", lambda: self.announcer.last_error or None)
        self.status.add_detail("dropped_messages", lambda: self.dropped)
        self.status.add_detail("announcements_pending", lambda: self.announcer.pending)
        self.status.on_command("test_announcement", self._test_announcement)  # fleet: remote test, live settings
        from display.remote_config import attach_display

        self._probes = attach_display(self)  # probes and live settings (display/remote_config.py)
        self.status.start()
        if self.watchdog is not None:
            self.watchdog.start()
        if self.tick_interval:
            self._spawn(self._ticker, "clock")
        self.bus.start()
        return self

    def stop(self) -> None:
        """Stop announcing, say offline (retained) and disconnect. Idempotent."""
        self._stop.set()
        if self.watchdog is not None:
            self.watchdog.stop()
        self.status.stop()
        for probe in getattr(self, "_probes", ()):
            probe.stop()
        self.announcer.stop()
        self.bus.stop()
        if self._own_ui and isinstance(self._ui, HeadlessUiThread):
            self._ui.stop()

    def __enter__(self) -> "CallScreen":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------- records
    @property
    def announcements(self) -> list[Announcement]:
        """Finished announcements, in the order they were spoken."""
        return list(self.announcer.announcements)

    def latest_state(self, room: str) -> RoomState | None:
        """The newest snapshot received for ``room`` (drawn or not), for tests and diagnostics."""
        return self._latest_states.get(room)

    def wait_for_call(self, *, call_id: str | None = None, ticket: str | None = None, timeout: float = 5.0) -> bool:
        """Block until the view-model has shown the call with this id (or ticket)."""
        def seen() -> bool:
            if call_id is not None:
                return call_id in self.shown_at
            return any(h["ticket"] == ticket for h in self.view_model.history)

        with self._shown:
            return self._shown.wait_for(seen, timeout)

    def wait_until(self, predicate: Callable[[CallScreenViewModel], bool], timeout: float = 5.0) -> bool:
        """Poll-free wait: re-check ``predicate(view_model)`` after every UI update, until true or timeout."""
        with self._shown:
            return self._shown.wait_for(lambda: predicate(self.view_model), timeout)

    def tick(self) -> None:
        """Run the once-a-second work on the UI thread (clock, banners, watchdog beats)."""
        self._on_ui(self.beat)

    def beat(self) -> None:
        """Once a second ON the UI thread: clock and banners, then prove the thread is alive."""
        self.view_model.tick()
        if self.watchdog is not None:
            self.watchdog.beat()
        self.status.heartbeat()  # systemd's WatchdogSec= ping, through the fleet agent

    # ------------------------------------------------------------- plumbing
    def handle(self, topic: str, payload: bytes, retained: bool = False) -> None:
        """Act on one MQTT message (the bus calls this on its thread). Anything not ours is logged and dropped."""
        where = topics.parse(topic)
        if where is None or where.site != self.site:
            self._drop(topic, "not a topic of this site")
            return
        handler = {
            "room_state": self._on_room_state,
            "calls": self._on_call,
            "notice": self._on_notice,
            "server_availability": self._on_server_availability,
        }.get(where.kind)
        if handler is None:
            self._drop(topic, f"unexpected topic kind {where.kind}")
            return
        handler(topic, payload, retained)

    def _subscribe(self) -> None:
        for topic_filter in (topics.all_room_states(self.site), topics.calls(self.site), topics.notice(self.site),
                             topics.server_availability(self.site)):
            self.bus.subscribe(topic_filter, self.handle)
        self.bus.add_connection_listener(lambda up: self._on_ui(lambda: self.view_model.set_connected(up)))

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _ticker(self) -> None:
        while not self._stop.wait(self.tick_interval or 1.0):
            self.tick()

    def _on_ui(self, fn: Callable[[], None]) -> None:
        def run_then_notify() -> None:
            try:
                fn()
            finally:
                with self._shown:
                    self._shown.notify_all()

        self._ui(run_then_notify)

    def _drop(self, topic: str, reason: str) -> None:
        self.dropped += 1
        log.warning("dropped message on %s: %s", topic, reason)

    def _decode(self, topic: str, model: type[Any], payload: bytes) -> Any:
        try:
            return decode_payload(model, payload)
        except ProtocolError as exc:
            self._drop(topic, str(exc))
            return None

    def _on_room_state(self, topic: str, payload: bytes, retained: bool) -> None:
        received = time.time()
        where = topics.parse(topic)
        if where is None or where.room is None:
            return
        if not payload:  # the server cleared the retained snapshot: the room was removed
            self._remove_room(where.room)
            return
        state = self._decode(topic, RoomState, payload)
        if state is None:
            return
        if (state.site, state.room) != (where.site, where.room):
            self._drop(topic, f"snapshot of {state.site}/{state.room} on another room's topic")
            return
        if not retained:
            self.skew.sample(state.ts, received)
        if not self.gate.wants(state.room):
            self._latest_states[state.room] = state  # shown if pushed settings add the room
            self._not_ours(state.room)
            return
        verdict = self.gate.accept_state(state, retained)
        if verdict.suspicious:
            self._drop(topic, verdict.reason)
            return
        self._latest_states[state.room] = state
        if not verdict:
            return
        self._anticipate(state)
        self._on_ui(lambda: self.view_model.show_state(state))

    def _not_ours(self, room: str) -> None:
        """A message for a room this screen is not configured for: dropped, logged once per room."""
        if room not in self._ignored_rooms:
            self._ignored_rooms.add(room)
            log.info("ignoring room %s: this screen shows only %s", room, ", ".join(sorted(self.gate.rooms or ())))

    def _remove_room(self, room: str) -> None:
        log.info("room %s was removed from site %s: its tile goes", room, self.site)
        self._latest_states.pop(room, None)
        self.gate.forget_room(room)
        self._on_ui(lambda: self.view_model.remove_room(room))

    def _on_call(self, topic: str, payload: bytes, retained: bool) -> None:
        received = time.monotonic()
        event = self._decode(topic, CallEvent, payload)
        if event is None:
            return
        if event.site != self.site:
            self._drop(topic, f"call for site {event.site!r} on site {self.site!r}")
            return
        if retained:
            # Calls are never retained by the server: a retained one is someone's mistake, and old.
            self._drop(topic, "retained call event")
            return
        if not self.gate.wants(event.room):
            self._not_ours(event.room)
            return
        verdict = self.gate.accept_call(event)
        if verdict.suspicious:
            self._drop(topic, verdict.reason)
        if not verdict:
            return
        self.last_call_id = event.id
        age = self.skew.age(event.ts, time.time())
        if age > event.announce_within_s + self.announce_tolerance:
            # A number heard minutes after it was called sends a patient to a room that moved on:
            # the board shows it, nobody says it (the clinician's console shows the screens missed it).
            self.late_calls += 1
            log.warning("call %s (%s to %s) arrived %.1f s after it was made: shown, not announced",
                        event.id, event.ticket, event.room, age)
        else:
            # Announce straight from the network thread: the speech worker need not wait for a frame.
            self.announcer.submit(event, received)

        def show() -> None:
            self.view_model.show_call(event)
            self.shown_at[event.id] = time.monotonic()

        self._on_ui(show)

    def _on_notice(self, topic: str, payload: bytes, retained: bool) -> None:
        notice = self._decode(topic, Notice, payload)
        if notice is not None:
            self._on_ui(lambda: self.view_model.show_notice(notice))

    def _on_server_availability(self, topic: str, payload: bytes, retained: bool) -> None:
        if payload not in (ONLINE.encode(), OFFLINE.encode()):
            self._drop(topic, "availability is neither online nor offline")
            return
        online = payload == ONLINE.encode()
        self._on_ui(lambda: self.view_model.set_server_online(online))

    def _anticipate(self, state: RoomState) -> None:
        """Pre-render the announcements of the next tickets in line: their calls then speak at once."""
        if not self.anticipate_count or self.speaker is None:
            return
        texts = []
        for ticket in state.next_tickets[: self.anticipate_count]:
            for language, text in announcement_texts(ticket, state.room, dict(state.room_name),
                                                     where=dict(state.room_where)).items():
                texts.append((text, language))
        self.announcer.anticipate(texts)

    def apply_settings(self, settings: dict[str, Any]) -> None:
        """Apply pushed device settings live: ``rooms``, ``languages``, ``announce_repeat``. ValueError refuses."""
        languages = tuple(settings.get("languages") or self.languages)
        repeats = int(settings.get("announce_repeat", self.announcer.repeats))
        rooms = [topics.validate_id(r, "room") for r in settings.get("rooms", self.view_model.rooms)]
        if repeats < 1:
            raise ValueError("announce_repeat must be at least 1")
        if self.layout == "door" and len(rooms) != 1:
            raise ValueError(f"a door screen shows exactly one room (got {rooms})")
        self.languages = languages
        self.announcer.languages, self.announcer.repeats = languages, repeats  # read per announcement
        if set(rooms) != (self.gate.rooms or set()) and (rooms or self.gate.rooms is not None):
            self.gate.rooms = set(rooms) or None
            known = [s for r, s in sorted(self._latest_states.items()) if self.gate.wants(r)]
            self._on_ui(lambda: self.view_model.set_rooms(rooms, known))
        self._on_ui(lambda: self.view_model.set_languages(list(languages)))

    def _test_announcement(self, args: dict[str, Any]) -> dict[str, Any]:
        """Command ``test_announcement``: chime and a test sentence in each language; answers when spoken."""
        record = self.announcer.submit_test(dict(TEST_TEXTS))
        timeout = float(args.get("timeout", 60))
        if not self.announcer.wait_done(record, timeout):
            raise TimeoutError(f"test announcement still queued after {timeout:.0f} s")
        if record.errors:
            raise RuntimeError(record.errors[-1])
        return {"spoken": [f"{lang}: {text}" for lang, text in record.phrases]}

    def _speech_health(self, ok: bool, error: str) -> None:
        self._on_ui(lambda: self.view_model.set_speech(ok, error))

    def _announced(self, record: Announcement) -> None:
        """After each announcement: status (last call, speech OK) goes out, so monitoring sees every call."""
        if record.kind != "test":
            self.last_announced_call_id = record.call_id
            self.announced_count += 1
        try:
            self.status.publish_status_now()
        except Exception:
            log.exception("could not publish status")
