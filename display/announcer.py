"""``Announcer``: one worker, one queue: every call announced once, in arrival order, never overlapping.

For each call: the chime, then the call's ``announce`` text in each configured language,
the whole sequence ``repeats`` times. Speech failing (no audio device, engine missing) is
recorded and reported through ``on_health``; it never stops the worker or the screen.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hardware.speech.port import Speaker, SpeechError
from protocol.payloads import CallEvent

log = logging.getLogger(__name__)

HealthListener = Callable[[bool, str], None]


@dataclass
class Announcement:
    """What happened to one call's announcement (times are ``time.monotonic()`` seconds)."""

    call_id: str
    ticket: str
    room: str
    kind: str
    received: float
    phrases: list[tuple[str, str]] = field(default_factory=list)
    """(language, text) actually spoken, in order, repeats included."""
    started: float | None = None
    finished: float | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def texts_for(event: CallEvent, language: str) -> str | None:
    """The text to speak for ``language``; Cantonese falls back to the Mandarin text's characters."""
    texts = dict(event.announce)
    if language in texts:
        return texts[language]
    return None


class Announcer:
    """Serialises announcements on one thread that owns the speaker."""

    def __init__(self, speaker: Speaker | None, *, languages: tuple[str, ...] | list[str] = ("zh", "en"),
                 repeats: int = 2, chime: bool = True, on_health: HealthListener | None = None) -> None:
        if repeats < 1:
            raise ValueError("repeats must be at least 1")
        self.speaker = speaker
        self.languages = tuple(languages)
        self.repeats = repeats
        self.chime = chime
        self.on_health = on_health
        self.announcements: list[Announcement] = []
        self.healthy = True
        self.last_error = ""
        self._queue: queue.Queue[tuple[CallEvent, float] | None] = queue.Queue()
        self._done = threading.Condition()
        self._thread: threading.Thread | None = None

    # --------------------------------------------------------------- control
    def start(self) -> "Announcer":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="announcer", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the announcement in progress, drop the rest, stop the worker. Idempotent."""
        if self._thread is not None:
            while True:  # what is still queued is dropped: the screen is shutting down
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def submit(self, event: CallEvent, received: float | None = None) -> None:
        """Queue a call for announcement (call once per new call; ``CallGate`` decides that)."""
        received = time.monotonic() if received is None else received
        self._prepare(event)
        self._queue.put((event, received))

    def anticipate(self, texts: list[tuple[str, str]]) -> None:
        """Synthesise likely next phrases now ((text, language) pairs), so their call speaks at once."""
        if self.speaker is not None:
            for text, language in texts:
                if language in self.languages:
                    self.speaker.prepare(text, language)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Block until ``count`` announcements have finished; False on timeout."""
        with self._done:
            return self._done.wait_for(lambda: len(self.announcements) >= count, timeout)

    # ---------------------------------------------------------------- worker
    def _prepare(self, event: CallEvent) -> None:
        if self.speaker is None:
            return
        for language in self.languages:
            text = texts_for(event, language)
            if text:
                self.speaker.prepare(text, language)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            event, received = item
            record = Announcement(event.id, event.ticket, event.room, event.kind.value, received)
            record.started = time.monotonic()
            try:
                self._announce(event, record)
            except Exception as exc:  # a bug in an adapter must not end announcements for the day
                log.exception("announcement of %s failed", event.id)
                record.errors.append(f"unexpected error: {exc}")
            record.finished = time.monotonic()
            self._set_health(record)
            with self._done:
                self.announcements.append(record)
                self._done.notify_all()

    def _announce(self, event: CallEvent, record: Announcement) -> None:
        if self.speaker is None:
            return
        if self.chime:
            self._attempt(record, self.speaker.chime)
        for _ in range(self.repeats):
            for language in self.languages:
                text = texts_for(event, language)
                if not text:
                    continue
                if self._attempt(record, self.speaker.say, text, language):
                    record.phrases.append((language, text))

    def _attempt(self, record: Announcement, fn: Callable[..., None], *args: str) -> bool:
        try:
            fn(*args)
            return True
        except SpeechError as exc:
            log.warning("speech failed for %s: %s", record.call_id, exc)
            record.errors.append(str(exc))
            return False

    def _set_health(self, record: Announcement) -> None:
        healthy = record.ok
        error = record.errors[-1] if record.errors else ""
        if healthy != self.healthy or error != self.last_error:
            self.healthy, self.last_error = healthy, error
            if self.on_health:
                try:
                    self.on_health(healthy, error)
                except Exception:
                    log.exception("speech health listener failed")
