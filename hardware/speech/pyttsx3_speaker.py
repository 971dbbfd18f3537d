"""``Pyttsx3Speaker``: the portable engine (espeak-ng on Linux, SAPI5 on Windows, NSSpeech on macOS).

pyttsx3's engine is not thread-safe and ``runAndWait`` raises "run loop already started" when
two threads drive it, so ONE worker thread owns the engine and everything else sends it jobs.
On Linux each phrase is saved to a WAV and played through ALSA (``AlsaPlayer``), which lets
the phrase cache and the audio device be the same as ``EspeakSpeaker``'s.
"""
from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

from hardware.speech.alsa import AlsaPlayer
from hardware.speech.cache import PhraseCache
from hardware.speech.port import SpeechError
from hardware.speech.text import spell_tickets
from hardware.speech.wav_speaker import CachedWavSpeaker

log = logging.getLogger(__name__)


class Pyttsx3Speaker(CachedWavSpeaker):
    """Speaks through pyttsx3 on one dedicated worker thread, with a timeout per job.

    ``player`` plays the saved WAVs (ALSA); with ``player=None`` the engine speaks directly
    (``engine.say``), which is what a Windows or macOS laptop needs.
    """

    engine = "pyttsx3"

    def __init__(
        self,
        *,
        player: AlsaPlayer | None = None,
        cache: PhraseCache | None = None,
        voices: dict[str, str] | None = None,
        timeout: float = 15.0,
        driver: str | None = None,
    ) -> None:
        super().__init__(player=player, cache=cache, voices=voices)
        self.timeout = timeout
        self._driver = driver
        self._jobs: queue.Queue[tuple[Callable[[Any], Any], Future[Any]] | None] = queue.Queue()
        self._started = threading.Event()
        self._init_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="pyttsx3-engine", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- port
    def say(self, text: str, language: str) -> None:
        if self.player is None:
            self._call(lambda engine: self._speak_direct(engine, text, language))
            self._ok()
            return
        self._play(self.render(text, language))

    def prepare(self, text: str, language: str) -> None:
        path = self._path(text, language)
        if path is not None and not self.cache.has(path):
            # Fire and forget: the worker renders it before any later say() (jobs run in order).
            fut: Future[Any] = Future()
            self._jobs.put((lambda engine: self._save(engine, text, language, path), fut))

    def close(self) -> None:
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(self.timeout)

    def render(self, text: str, language: str) -> Path:
        """The WAV for ``text`` (synthesised on the engine's worker unless cached)."""
        path = self._path(text, language)
        if path is None:
            self._fail(f"no voice configured for language {language!r}")
        if not self.cache.has(path):
            self._call(lambda engine: self._save(engine, text, language, path))
        return path

    # ------------------------------------------------------------- worker
    def _run(self) -> None:
        try:
            import pyttsx3

            engine = pyttsx3.init(self._driver)
            self._voice_ids = {v.id: v for v in engine.getProperty("voices")}
        except Exception as exc:  # no engine on this machine: every job fails with this reason
            self._init_error = f"speech engine unavailable: {exc}"
            engine = None
        self._started.set()
        while (job := self._jobs.get()) is not None:
            fn, fut = job
            if engine is None:
                fut.set_exception(SpeechError(self._init_error or "speech engine unavailable"))
                continue
            try:
                fut.set_result(fn(engine))
            except Exception as exc:
                fut.set_exception(exc)

    def _call(self, fn: Callable[[Any], Any]) -> Any:
        fut: Future[Any] = Future()
        self._jobs.put((fn, fut))
        try:
            return fut.result(self.timeout)
        except SpeechError as exc:
            self._fail(str(exc))
        except TimeoutError:
            self._fail(f"pyttsx3 did not finish within {self.timeout:.0f} s")
        except Exception as exc:
            self._fail(f"pyttsx3 failed: {exc}")

    def _select_voice(self, engine: Any, language: str) -> None:
        wanted = self.voices.get(language)
        for voice_id in getattr(self, "_voice_ids", {}):
            if voice_id == wanted or voice_id.endswith("/" + str(wanted)):
                engine.setProperty("voice", voice_id)
                return
        raise SpeechError(f"no pyttsx3 voice for language {language!r} ({wanted})")

    def _save(self, engine: Any, text: str, language: str, path: Path) -> Path:
        if self.cache.has(path):
            return path
        self._select_voice(engine, language)
        tmp = path.with_suffix(".pyttsx3.tmp.wav")
        engine.save_to_file(spell_tickets(text), str(tmp))
        engine.runAndWait()
        # FIELD_NOTES: runAndWait() can return before the espeak driver has written the WAV;
        # Synchronize() waits for it (long texts were otherwise lost or misnamed).
        try:
            from pyttsx3.drivers import _espeak

            _espeak.Synchronize()
        except Exception:  # other drivers (SAPI5, NSSpeech) have no such call
            pass
        if not tmp.exists() or tmp.stat().st_size <= 44:
            raise SpeechError(f"pyttsx3 wrote no audio for {text[:40]!r}")
        tmp.replace(path)
        self.synthesised.append(path)
        return path

    def _speak_direct(self, engine: Any, text: str, language: str) -> None:
        self._select_voice(engine, language)
        engine.say(spell_tickets(text))
        engine.runAndWait()

    def _path(self, text: str, language: str) -> Path | None:
        voice = self.voices.get(language)
        return None if voice is None else self.cache.path_for(self.engine, voice, text)
