"""``KioskVoice``: what the kiosk says, once, newest first, and silent the moment a key is pressed.

A patient who cannot see hears one sentence at a time and acts on it, so:

* each text is said once: the same words asked for again (a prompt set twice while a screen
  appears) are not repeated; ``say(..., again=True)`` repeats on purpose ("hear my number again");
* the newest text wins: a new one cuts what is playing and replaces what is waiting;
* ``stop()`` (any key or touch) cuts the speech at once (barge-in), and ``forget()`` at the end
  of a visit also drops everything queued, so nothing of the last patient is said to the next;
* ``speaking`` is True while anything is queued or playing: the idle timer waits for it.

Figures are written out as words first (``hardware.speech.numbers.speakable``), so ``log`` holds
exactly the words sent to the engine. One worker thread owns the speaker (engines are not
thread-safe); ``background=False`` speaks on the caller's thread instead (view-model tests).
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from hardware.speech.numbers import speakable

log = logging.getLogger(__name__)


class KioskVoice:
    def __init__(self, speaker: Any, *, background: bool = True) -> None:
        self.speaker = speaker
        self.log: list[str] = []  # every text handed to the engine, as words, in order
        self._last: str | None = None
        self._pending: tuple[str, str] | None = None
        self._playing = False
        self._cancelled = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        if background and speaker is not None:
            self._thread = threading.Thread(target=self._run, name="kiosk-voice", daemon=True)
            self._thread.start()

    # -- what the kiosk calls ---------------------------------------------------------------------
    def say(self, text: str, language: str, *, again: bool = False) -> bool:
        """Say ``text`` unless it is what was said last (``again`` repeats it). True if it will be said."""
        words = speakable(text, language).strip()
        if not words or (words == self._last and not again):
            return False
        self._last = words
        self.log.append(words)
        if self.speaker is None:
            return True
        if self._thread is None:
            self._speak(words, language)
            return True
        with self._cond:
            self._pending = (words, language)  # replaces anything not yet started
            self._cond.notify_all()
            self._cut()  # and cuts what is playing (under the lock: never the new one)
        return True

    def stop(self) -> None:
        """Barge-in: silence now, and drop what was waiting."""
        with self._cond:
            self._pending = None
            self._cut()

    def forget(self) -> None:
        """A new screen or a new visit: stop, and let the next prompt be said even if it is the same text."""
        self.stop()
        self._last = None

    @property
    def speaking(self) -> bool:
        with self._cond:
            return self._playing or self._pending is not None

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until nothing is queued or playing (tests); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._playing and self._pending is None, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify_all()
            self._cut()

    # -- the worker -------------------------------------------------------------------------------
    def _cut(self) -> None:
        """Stop the sound playing now. Called holding the lock: the worker cannot start the next
        sound meanwhile, and both speakers forget a stop that came before their sound started."""
        if self._playing and self.speaker is not None:
            self._cancelled = True  # taken from the queue but perhaps not started: never start it
            try:
                self.speaker.stop()
            except Exception as exc:  # an engine that cannot stop just finishes its sentence
                log.debug("speaker could not stop: %s", exc)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    return
                words, language = self._pending
                self._pending = None
                self._playing, self._cancelled = True, False
            try:
                with self._cond:
                    cancelled = self._cancelled
                if not cancelled:
                    self._speak(words, language)
            finally:
                with self._cond:
                    self._playing = False
                    self._cond.notify_all()

    def _speak(self, words: str, language: str) -> None:
        try:
            self.speaker.say(words, language)
        except Exception as exc:  # voice mode without sound is still a usable screen
            log.warning("voice mode could not speak: %s", exc)
