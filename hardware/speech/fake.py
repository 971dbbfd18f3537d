"""``FakeSpeaker``: a speaker that records what it was asked to say, shipped for tests and demos.

Like gpiozero's mock pins it models the real part: each chime and phrase "plays" for
``play_seconds`` (blocking the caller, as a real one does), and ``simulate_failure()``
makes it fail the way a speaker without an audio device does.

    speaker = FakeSpeaker()
    speaker.chime(); speaker.say("Number A012, please go to room 3", "en")
    speaker.spoken   -> [Utterance(text="Number A012, ...", language="en", ...)]
    speaker.events   -> ["chime", ("en", "Number A012, ...")]
    speaker.stop()   # from another thread: the phrase playing now ends at once (interrupted=True)
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from hardware.speech.port import Speaker, SpeechError


@dataclass(frozen=True)
class Utterance:
    """One phrase the fake said: the words, the language, and when it started and ended (monotonic)."""

    text: str
    language: str
    started: float
    ended: float
    interrupted: bool = False  # cut short by ``stop()``


class FakeSpeaker(Speaker):
    """Records ``spoken`` (Utterance list), ``events`` (chimes and phrases in order), ``prepared``."""

    def __init__(self, *, play_seconds: float = 0.0) -> None:
        self.play_seconds = play_seconds
        self.spoken: list[Utterance] = []
        self.events: list[object] = []
        self.prepared: list[tuple[str, str]] = []
        self.chime_times: list[float] = []
        self.max_overlap = 0  # > 1 would mean two sounds played at once
        self._playing = 0
        self._failure: str | None = None
        self._healthy = True
        self._cond = threading.Condition()
        self._cut = threading.Event()
        self.stops = 0  # how many times stop() cut a sound that was playing

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def last_error(self) -> str | None:
        return self._failure if not self._healthy else None

    def simulate_failure(self, message: str = "no audio output: no soundcards found") -> None:
        """From now on every chime and phrase raises ``SpeechError(message)``, like a missing sound card."""
        self._failure = message

    def recover(self) -> None:
        """Undo ``simulate_failure``: the next sound plays again."""
        self._failure = None

    def chime(self) -> None:
        start = self._play()
        with self._cond:
            self.chime_times.append(start)
            self.events.append("chime")
            self._cond.notify_all()

    def say(self, text: str, language: str) -> None:
        start = self._play()
        interrupted = self._cut.is_set()
        with self._cond:
            self.spoken.append(Utterance(text, language, start, time.monotonic(), interrupted))
            self.events.append((language, text))
            self._cond.notify_all()

    def prepare(self, text: str, language: str) -> None:
        self.prepared.append((text, language))

    def stop(self) -> None:
        with self._cond:
            if self._playing:
                self.stops += 1
                self._cut.set()

    @property
    def playing(self) -> bool:
        return self._playing > 0

    def wait_playing(self, timeout: float = 5.0) -> bool:
        """Block until a sound is playing; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._playing > 0, timeout)

    def wait_spoken(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` phrases were said; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.spoken) >= count, timeout)

    def _play(self) -> float:
        if self._failure:
            self._healthy = False
            raise SpeechError(self._failure)
        with self._cond:
            self._cut.clear()
            self._playing += 1
            self.max_overlap = max(self.max_overlap, self._playing)
            self._cond.notify_all()
        start = time.monotonic()
        try:
            if self.play_seconds:
                self._cut.wait(self.play_seconds)  # models the sound playing (stop() cuts it), not synchronisation
        finally:
            with self._cond:
                self._playing -= 1
        self._healthy = True
        return start
