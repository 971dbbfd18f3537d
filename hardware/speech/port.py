"""The ``Speaker`` port: what a call screen needs from a voice, whatever produces it.

Adapters: ``EspeakSpeaker`` (espeak-ng subprocess per phrase, for the Pi),
``Pyttsx3Speaker`` (portable: espeak-ng on Linux, SAPI5 on Windows, NSSpeech on macOS),
``FakeSpeaker`` (records what was said, for tests and machines without audio).
"""
from __future__ import annotations

import abc

from protocol.errors import DeviceError

# espeak-ng voice per announcement language. Mandarin: ``cmn`` reads tone digits aloud
# in English, ``cmn-latn-pinyin`` reads the characters with tones (FIELD_NOTES).
ESPEAK_VOICES: dict[str, str] = {"zh": "cmn-latn-pinyin", "en": "en", "yue": "yue"}


class SpeechError(DeviceError):
    """Speech could not be synthesised or played (no engine, no audio device, a timeout)."""


class Speaker(abc.ABC):
    """A voice that plays a chime and speaks sentences, one at a time.

    ``chime()`` and ``say()`` block until the sound has played (or a timeout passed) and
    raise ``SpeechError`` on failure; ``healthy`` says whether the last attempt worked.
    Callers serialise: one announcement worker owns a speaker (see ``display.announcer``).
    """

    @property
    @abc.abstractmethod
    def healthy(self) -> bool:
        """False after a failed chime or phrase, True again after the next success."""

    @property
    def last_error(self) -> str | None:
        """Plain sentence describing the last failure, or None."""
        return None

    @abc.abstractmethod
    def chime(self) -> None:
        """Play the attention chime that precedes every announcement."""

    @abc.abstractmethod
    def say(self, text: str, language: str) -> None:
        """Speak ``text`` in ``language`` ("zh", "en", "yue"); blocks until played."""

    def stop(self) -> None:
        """Cut the sound playing now, from any thread (a kiosk key press barges in); the blocked
        ``say`` returns. Never raises; a no-op for engines that cannot be interrupted."""

    def warm_up(self) -> None:
        """Render the fixed sounds (the chime) before the first call. Never raises."""

    def prepare(self, text: str, language: str) -> None:
        """Synthesise ``text`` ahead of time so a later ``say`` starts at once. Never blocks, never raises."""

    def close(self) -> None:
        """Release the engine and any worker. Idempotent."""

    def __enter__(self) -> "Speaker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
