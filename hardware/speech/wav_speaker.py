"""``CachedWavSpeaker``: the part ``EspeakSpeaker`` and ``Pyttsx3Speaker`` share.

Both synthesise each phrase once into a ``PhraseCache`` WAV, play it (and the chime) through an
``AlsaPlayer``, and track health the same way: a failure marks the speaker unhealthy and raises
``SpeechError``; the next sound that plays marks it healthy again.
"""
from __future__ import annotations

from pathlib import Path

from hardware.speech.alsa import AlsaPlayer
from hardware.speech.cache import PhraseCache
from hardware.speech.port import ESPEAK_VOICES, Speaker, SpeechError


class CachedWavSpeaker(Speaker):
    """Base for speakers that play cached WAVs; subclasses supply ``say`` (and usually ``render``).

    ``player=None`` plays nothing (what that means is up to the subclass); ``voices`` overrides
    ``ESPEAK_VOICES`` per language; ``synthesised`` lists the WAVs this speaker wrote.
    """

    def __init__(self, *, player: AlsaPlayer | None, cache: PhraseCache | None,
                 voices: dict[str, str] | None) -> None:
        self.player = player
        self.cache = cache or PhraseCache()
        self.voices = {**ESPEAK_VOICES, **(voices or {})}
        self.synthesised: list[Path] = []
        self._healthy = True
        self._last_error: str | None = None

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def last_error(self) -> str | None:
        return self._last_error

    def warm_up(self) -> None:
        try:
            self.cache.chime()
        except OSError as exc:  # a read-only cache directory shows up at the first call instead
            self._healthy, self._last_error = False, f"speech cache not writable: {exc}"

    def chime(self) -> None:
        self._play(self.cache.chime())

    def stop(self) -> None:
        if self.player is not None:
            self.player.stop()

    def _play(self, path: Path) -> None:
        if self.player is not None:
            try:
                self.player.play(path)
            except SpeechError as exc:
                self._fail(str(exc))
        self._ok()

    def _ok(self) -> None:
        self._healthy, self._last_error = True, None

    def _fail(self, message: str) -> None:
        self._healthy, self._last_error = False, message
        raise SpeechError(message)
