"""``Announcer``: one worker, one queue: every call announced once, in arrival order, never overlapping.

For each call: the chime, then the call's ``announce`` text in each configured language,
the whole sequence ``repeats`` times. Figures are written out as words first, like the kiosk's voice
(``hardware.speech.numbers.speakable``: "A012" is "A 零一二", "2 楼" is "二 楼"), so ``phrases`` hold
exactly the words sent to the engine. Speech failing (no audio device, engine missing) is
recorded and reported through ``on_health``; it never stops the worker or the screen.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hardware.speech.numbers import speakable
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
    """``call``, ``recall`` or ``test``."""
    received: float
    phrases: list[tuple[str, str]] = field(default_factory=list)
    """(language, text) actually spoken, in order, repeats included."""
    started: float | None = None
    finished: float | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class Announcer:
    """Serialises announcements on one thread that owns the speaker."""

    def __init__(self, speaker: Speaker | None, *, languages: tuple[str, ...] | list[str] = ("zh", "en"),
                 repeats: int = 2, chime: bool = True, on_health: HealthListener | None = None,
                 on_finished: Callable[[Announcement], None] | None = None) -> None:
        if repeats < 1:
            raise ValueError("repeats must be at least 1")
        self.speaker = speaker
        self.languages = tuple(languages)
        self.repeats = repeats
        self.chime = chime
        self.on_health = on_health
        self.on_finished = on_finished
        self.announcements: list[Announcement] = []
        self.healthy = True
        self.last_error = ""
        self._queue: queue.Queue[tuple[Announcement, dict[str, str]] | None] = queue.Queue()
        self._done = threading.Condition()
        self._thread: threading.Thread | None = None

    # --------------------------------------------------------------- control
    def start(self) -> "Announcer":
        if self._thread is None:
            if self.speaker is not None:
                self.speaker.warm_up()
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
        record = Announcement(event.id, event.ticket, event.room, event.kind.value, received)
        self._enqueue(record, dict(event.announce))

    def submit_test(self, texts: dict[str, str]) -> Announcement:
        """Queue a test announcement (technician's ``test_announcement`` command); returns its record."""
        record = Announcement(f"test-{time.monotonic_ns()}", "", "", "test", time.monotonic())
        self._enqueue(record, texts)
        return record

    def _enqueue(self, record: Announcement, texts: dict[str, str]) -> None:
        texts = {language: speakable(text, language) for language, text in texts.items()}
        if self.speaker is not None:
            for language in self.languages:
                if texts.get(language):
                    self.speaker.prepare(texts[language], language)
        self._queue.put((record, texts))

    def anticipate(self, texts: list[tuple[str, str]]) -> None:
        """Synthesise likely next phrases now ((text, language) pairs), so their call speaks at once."""
        if self.speaker is not None:
            for text, language in texts:
                if language in self.languages:
                    self.speaker.prepare(speakable(text, language), language)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Block until ``count`` announcements have finished; False on timeout."""
        with self._done:
            return self._done.wait_for(lambda: len(self.announcements) >= count, timeout)

    def wait_done(self, record: Announcement, timeout: float = 10.0) -> bool:
        """Block until ``record`` (from ``submit_test``) has been announced; False on timeout."""
        with self._done:
            return self._done.wait_for(lambda: record.finished is not None, timeout)

    # ---------------------------------------------------------------- worker
    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            record, texts = item
            record.started = time.monotonic()
            try:
                self._announce(texts, record)
            except Exception as exc:  # a bug in an adapter must not end announcements for the day
                log.exception("announcement of %s failed", record.call_id)
                record.errors.append(f"unexpected error: {exc}")
            record.finished = time.monotonic()
            self._set_health(record)
            with self._done:
                self.announcements.append(record)
                self._done.notify_all()
            if self.on_finished:
                try:
                    self.on_finished(record)
                except Exception:
                    log.exception("announcement listener failed")

    def _announce(self, texts: dict[str, str], record: Announcement) -> None:
        if self.speaker is None:
            return
        if self.chime:
            self._attempt(record, self.speaker.chime)
        for _ in range(self.repeats):
            for language in self.languages:
                text = texts.get(language)
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
