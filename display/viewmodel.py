"""``CallScreenViewModel``: everything a call screen shows, as Kivy properties, with no widgets.

The kv files bind to these properties; nothing here touches a window, so tests drive it
directly. Call its methods on ONE thread (the Kivy main thread in the app, the headless
UI thread in ``display.runtime``): the MQTT thread hops there first.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kivy.event import EventDispatcher
from kivy.properties import (
    BooleanProperty,
    ListProperty,
    NumericProperty,
    ObjectProperty,
    OptionProperty,
    StringProperty,
)

from display.strings import label, pick
from protocol.payloads import CallEvent, CallKind, Notice, RoomState, RoomStatus
from protocol.privacy import mask_name

log = logging.getLogger(__name__)

HISTORY_LENGTH = 8


def natural_key(room: str) -> tuple[object, ...]:
    """Sort key that puts r2 before r10 (numbers as numbers, the rest as text)."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", room))


class CallScreenViewModel(EventDispatcher):
    """State of a door screen (one room) or a hall board (many rooms, plus the latest calls)."""

    layout = OptionProperty("door", options=["door", "hall"])
    languages = ListProperty(["zh", "en"])
    rooms = ListProperty([])
    """Room ids shown, in order. Empty at start on a hall board means "every room that reports"."""

    # door screen: the first configured room
    room_title = StringProperty("")
    room_title_short = StringProperty("")
    room_subtitle = StringProperty("")
    room_subtitle_short = StringProperty("")
    caption_text = StringProperty("")
    ticket_text = StringProperty("")
    name_text = StringProperty("")
    next_caption = StringProperty("")
    next_text = StringProperty("")
    status_text = StringProperty("")
    waiting_text = StringProperty("")
    highlight = BooleanProperty(False)
    """True for a while after a recall of the door screen's room: the view draws it highlighted."""
    where_text = StringProperty("")
    """Where the door screen's room is (building, floor, the way there), in the main language; "" if not given."""
    where_subtext = StringProperty("")
    """...and in the second language, when it says something else."""

    # hall board
    tiles = ListProperty([])
    """One dict per room: room, title, subtitle, ticket, name, status, status_text, next_text, highlight."""
    history = ListProperty([])
    """Latest calls, newest first: ticket, room_title, time_text, recall, kind_text, call_id."""
    recent_caption = StringProperty("")

    # the call just made, shown large for ``call_seconds`` (the hall board's call card)
    call_showing = BooleanProperty(False)
    call_recall = BooleanProperty(False)
    call_ticket = StringProperty("")
    call_room_text = StringProperty("")
    """"请到 1 诊室" (a recall: "再次呼叫 · 请到 1 诊室")."""
    call_where = StringProperty("")
    """The called room's location in the main language: "门诊楼 2 楼，出电梯左转第一间"."""
    call_subtext = StringProperty("")
    """The room and its location in the second language: "Please go to room 1 · Clinic building, floor 2, ..."."""

    # every layout
    clock_text = StringProperty("")
    notice_text = StringProperty("")
    banner_text = StringProperty("")
    connected = BooleanProperty(False)
    server_online = BooleanProperty(True)
    speech_ok = BooleanProperty(True)
    speech_error = StringProperty("")
    last_update = ObjectProperty(None, allownone=True)
    """Wall-clock datetime of the last message from the broker."""
    last_render = NumericProperty(0.0)
    """time.time() of the last change to what is shown (reported in the device status)."""
    last_call_id = StringProperty("")
    calls_shown = NumericProperty(0)

    def __init__(self, *, layout: str = "door", rooms: list[str] | tuple[str, ...] = (),
                 languages: list[str] | tuple[str, ...] = ("zh", "en"), offline_after: float = 30.0,
                 highlight_seconds: float = 15.0, call_seconds: float = 12.0, tz: tzinfo | None = None,
                 short_names: dict[str, dict[str, str]] | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)
        if not languages:
            raise ValueError("a call screen needs at least one language")
        self.layout = layout
        self.rooms = list(rooms)
        self.languages = list(languages)
        self.offline_after = offline_after
        self.highlight_seconds = highlight_seconds
        self.call_seconds = call_seconds
        """How long the call card shows a call (a newer call replaces it at once)."""
        self.short_names = {room: dict(names) for room, names in (short_names or {}).items()}
        """Per room, per language: a short name shown where the full one cannot fit legibly."""
        self.tz = tz
        """The clock's time zone: given, else the hospital's from its snapshots, else the device's."""
        self._tz_given = tz is not None
        self._fixed_rooms = bool(rooms)
        self._configured = list(rooms)  # the configured order; a removed room that comes back takes its place
        self._states: dict[str, RoomState] = {}
        self._highlight_until: dict[str, float] = {}
        self._where: dict[str, dict[str, str]] = {}
        """Each room's location as the server last sent it (snapshot or call)."""
        self._call: CallEvent | None = None
        self._call_until = 0.0
        self._disconnected_since: datetime | None = None
        self._notice: Notice | None = None
        self._render()

    def set_rooms(self, rooms: list[str], states: Sequence[RoomState] = ()) -> None:
        """Show other rooms (empty: every room that reports); ``states`` are their latest snapshots."""
        self._fixed_rooms = bool(rooms)
        self._configured = list(rooms)
        self.rooms = list(rooms)
        self._states = {r: s for r, s in self._states.items() if not rooms or r in rooms}
        for state in states:
            self.show_state(state)
        self._render()

    def set_languages(self, languages: list[str] | tuple[str, ...]) -> None:
        """Show the screen in other languages (first: main text; second: subtitles)."""
        if not languages:
            raise ValueError("a call screen needs at least one language")
        self.languages = list(languages)
        if self._notice is not None:
            self.show_notice(self._notice)
        self._render()

    @property
    def primary(self) -> str:
        return self.languages[0]

    @property
    def secondary(self) -> str | None:
        return self.languages[1] if len(self.languages) > 1 else None

    # ------------------------------------------------------------ inputs
    def show_state(self, state: RoomState, now: datetime | None = None) -> None:
        """Draw a room from its snapshot (the caller has already decided it is current)."""
        if self._fixed_rooms and state.room not in self._configured:
            return
        if state.timezone and not self._tz_given and getattr(self.tz, "key", None) != state.timezone:
            self._use_hospital_zone(state.timezone, now)
        if state.room not in self.rooms:
            order = self._configured.index if self._fixed_rooms else natural_key
            self.rooms = sorted([*self.rooms, state.room], key=order)  # type: ignore[arg-type]
        self._states[state.room] = state
        self._where[state.room] = dict(state.room_where)
        self._touch(now)
        self._render()

    def _use_hospital_zone(self, name: str, now: datetime | None) -> None:
        """Show the hospital's time (a screen's own zone is often left at UTC by the image it was built from)."""
        try:
            self.tz = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("unknown time zone %r in a room snapshot: the clock keeps %s", name, self.tz or "the device's")
            return
        self.tick(now.astimezone(self.tz) if now else None)

    def remove_room(self, room: str) -> None:
        """The room no longer exists at the site: its tile goes (even from a configured list)."""
        self._states.pop(room, None)
        self._highlight_until.pop(room, None)
        self._where.pop(room, None)
        if self._call is not None and self._call.room == room:
            self._call = None
        if room in self.rooms:
            self.rooms = [r for r in self.rooms if r != room]
        self.history = [h for h in self.history if h["room"] != room]
        self._render()

    def show_call(self, event: CallEvent, now: datetime | None = None) -> None:
        """Add a new call to the history; a recall highlights its room."""
        if self._fixed_rooms and event.room not in self.rooms:
            return
        when = event.ts.astimezone(self.tz) if self.tz else event.ts.astimezone()
        title = pick(dict(event.room_name), self.primary, event.room)
        entry = {
            "call_id": event.id, "ticket": event.ticket, "room": event.room, "room_title": title,
            "room_short": self._short(event.room, self.primary),
            "time_text": when.strftime("%H:%M"), "recall": event.kind == CallKind.RECALL,
            "kind_text": label(self.primary, "recall") if event.kind == CallKind.RECALL else "",
        }
        self.history = [entry, *[h for h in self.history if h["call_id"] != event.id]][:HISTORY_LENGTH]
        if event.kind == CallKind.RECALL:
            self._highlight_until[event.room] = time.monotonic() + self.highlight_seconds
        if event.room_where:  # an older server sends none: keep what its snapshot said
            self._where[event.room] = dict(event.room_where)
        self._call, self._call_until = event, time.monotonic() + self.call_seconds
        self.last_call_id = event.id
        self.calls_shown += 1
        self._touch(now)
        self._render()

    def show_notice(self, notice: Notice) -> None:
        """Set (or, with empty texts, clear) the scrolling notice line."""
        if notice.rooms and self._fixed_rooms and not set(notice.rooms) & set(self.rooms):
            return
        self._notice = notice
        texts = dict(notice.text)
        parts = [pick(texts, self.primary)]
        if self.secondary and texts.get(self.secondary) and texts.get(self.secondary) != parts[0]:
            parts.append(texts[self.secondary])
        self.notice_text = "    ".join(p for p in parts if p)

    def set_connected(self, connected: bool, now: datetime | None = None) -> None:
        """The broker link came up or went down; the offline banner appears after ``offline_after``."""
        now = now or self._now()
        self.connected = connected
        self._disconnected_since = None if connected else (self._disconnected_since or now)
        if connected:
            self.last_update = now
        self._update_banner(now)

    def set_server_online(self, online: bool) -> None:
        self.server_online = online
        self._update_banner(self._now())

    def set_speech(self, ok: bool, error: str = "") -> None:
        self.speech_ok, self.speech_error = ok, ("" if ok else error)

    def tick(self, now: datetime | None = None) -> None:
        """Once a second: the clock, the offline banner, and expiring recall highlights."""
        now = now or self._now()
        self.clock_text = (now.astimezone(self.tz) if self.tz else now).strftime("%H:%M")
        self._update_banner(now)
        expired = self._call is not None and self._call_until <= time.monotonic()
        if expired:
            self._call = None
        if self._highlight_until and min(self._highlight_until.values()) <= time.monotonic():
            self._highlight_until = {r: t for r, t in self._highlight_until.items() if t > time.monotonic()}
            self._render()
        elif expired:
            self._render_call()

    # ----------------------------------------------------------- drawing
    def _now(self) -> datetime:
        return datetime.now(self.tz) if self.tz else datetime.now().astimezone()

    def _touch(self, now: datetime | None) -> None:
        self.last_update = now or self._now()
        self.last_render = time.time()

    def _update_banner(self, now: datetime) -> None:
        parts = []
        if not self.connected and self._disconnected_since is not None and \
                now - self._disconnected_since >= timedelta(seconds=self.offline_after):
            last = self.last_update or self._disconnected_since
            last = last.astimezone(now.tzinfo) if now.tzinfo else last
            parts.append(label(self.primary, "offline", hhmm=last.strftime("%H:%M")))
        if not self.server_online:
            parts.append(label(self.primary, "server_offline"))
        self.banner_text = "  ·  ".join(parts)

    def _short(self, room: str, language: str | None) -> str:
        return pick(self.short_names.get(room, {}), language, "") if language else ""

    def _where_texts(self, room: str, where: dict[str, str] | None = None) -> tuple[str, str]:
        """The room's location in the main language and, when it differs, in the second one."""
        where = where if where else self._where.get(room, {})
        main = pick(where, self.primary)
        second = pick(where, self.secondary) if self.secondary else ""
        return main, ("" if second == main else second)

    def _render_call(self) -> None:
        event = self._call
        if event is None:
            self.call_showing = self.call_recall = False
            self.call_ticket = self.call_room_text = self.call_where = self.call_subtext = ""
            return
        names, lang, second = dict(event.room_name), self.primary, self.secondary
        recall = event.kind == CallKind.RECALL
        room_text = label(lang, "go_to", room=pick(names, lang, event.room))
        self.call_room_text = f"{label(lang, 'recall')} · {room_text}" if recall else room_text
        self.call_where, where_second = self._where_texts(event.room, dict(event.room_where))
        sub = [label(second, "go_to", room=pick(names, second, event.room)), where_second] if second else []
        self.call_subtext = " · ".join(p for p in sub if p)
        self.call_ticket, self.call_recall, self.call_showing = event.ticket, recall, True

    def _tile(self, room: str) -> dict[str, object]:
        state = self._states.get(room)
        lang, second = self.primary, self.secondary
        short_title = self._short(room, lang)
        short_subtitle = self._short(room, second) if second else ""
        if state is None:
            return {"room": room, "title": room, "title_short": short_title, "subtitle": "", "subtitle_short": "",
                    "ticket": label(lang, "none"), "name": "", "status": "unknown", "status_text": "",
                    "next_text": "", "waiting_text": "", "highlight": False}
        names = dict(state.room_name)
        title = pick(names, lang, room)
        subtitle = pick(names, second, "") if second else ""
        current = state.current
        return {
            "room": room,
            "title": title,
            "title_short": short_title,
            "subtitle": "" if subtitle == title else subtitle,
            "subtitle_short": "" if subtitle == title else short_subtitle,
            "ticket": current.ticket if current else label(lang, "none"),
            # Defence in depth: even if a server sent a full name, a public screen shows it masked.
            "name": mask_name(current.masked_name) if current else "",
            "status": state.status.value,
            "status_text": label(lang, state.status.value) if state.status != RoomStatus.OPEN else "",
            "next_text": "  ".join(state.next_tickets[:5]) or label(lang, "nobody_waiting"),
            # With nobody waiting the list already says so: no "0 waiting" beneath it.
            "waiting_text": label(lang, "waiting", n=state.waiting_count) if state.waiting_count else "",
            "highlight": self._highlight_until.get(room, 0) > time.monotonic(),
        }

    def _render(self) -> None:
        self.caption_text = label(self.primary, "now_serving")
        self.next_caption = label(self.primary, "next")
        self.recent_caption = label(self.primary, "recent")
        tiles = [self._tile(r) for r in self.rooms]
        self.tiles = tiles
        if tiles:
            door = tiles[0]
            self.room_title = str(door["title"])
            self.room_title_short = str(door["title_short"])
            self.room_subtitle = str(door["subtitle"])
            self.room_subtitle_short = str(door["subtitle_short"])
            self.ticket_text = str(door["ticket"])
            self.name_text = str(door["name"])
            self.next_text = str(door["next_text"])
            self.status_text = str(door["status_text"])
            self.waiting_text = str(door["waiting_text"])
            self.highlight = bool(door["highlight"])
            self.where_text, self.where_subtext = self._where_texts(str(door["room"]))
        else:  # a door screen whose room was removed: show nobody rather than a stale call
            self.room_title = self.room_title_short = self.room_subtitle = self.room_subtitle_short = ""
            self.ticket_text = label(self.primary, "none")
            self.name_text = self.next_text = self.status_text = self.waiting_text = ""
            self.where_text = self.where_subtext = ""
            self.highlight = False
        self._render_call()
        self.last_render = time.time()
