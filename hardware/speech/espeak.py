"""``EspeakSpeaker``: one espeak-ng subprocess per phrase, WAVs cached, played through ALSA."""
from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from hardware.speech.alsa import AlsaPlayer
from hardware.speech.cache import PhraseCache
from hardware.speech.port import SpeechError
from hardware.speech.text import spell_tickets
from hardware.speech.wav_speaker import CachedWavSpeaker

log = logging.getLogger(__name__)


class EspeakSpeaker(CachedWavSpeaker):
    """Speech for the Pi: ``espeak-ng -v VOICE -w file.wav TEXT`` (about 30 ms a sentence), then ``aplay``.

    Each phrase is synthesised once into ``cache`` and reused; ``prepare()`` synthesises in a
    background worker so that ``say()`` finds the WAV ready. ``player=None`` means "synthesise
    only" (the WAVs are still written and listed in ``synthesised``).
    """

    engine = "espeak"

    def __init__(
        self,
        *,
        player: AlsaPlayer | None = None,
        cache: PhraseCache | None = None,
        voices: dict[str, str] | None = None,
        speed: int | None = None,
        synth_timeout: float = 10.0,
        binary: str | None = None,
    ) -> None:
        super().__init__(player=player, cache=cache, voices=voices)
        self.speed = speed
        self.synth_timeout = synth_timeout
        self.binary = binary or shutil.which("espeak-ng") or "espeak-ng"
        self._pending: dict[Path, Future[Path]] = {}
        self._lock = threading.Lock()
        # One background synthesiser: prepare() never competes with itself for the CPU.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="espeak-prepare")

    # ------------------------------------------------------------------ port
    def say(self, text: str, language: str) -> None:
        self._play(self.render(text, language))

    def prepare(self, text: str, language: str) -> None:
        try:
            path = self._path(text, language)
        except SpeechError:
            return
        with self._lock:
            if path in self._pending or self.cache.has(path):
                return
            self._pending[path] = self._worker.submit(self._synthesise, text, language, path)

    def wait_prepared(self, timeout: float = 10.0) -> bool:
        """Block until every ``prepare()`` so far has finished; False on timeout."""
        done = self._worker.submit(lambda: None)  # the worker runs jobs in order
        try:
            done.result(timeout)
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)

    # -------------------------------------------------------------- helpers
    def render(self, text: str, language: str) -> Path:
        """Return the WAV for ``text``, synthesising it now unless cached or being prepared."""
        path = self._path(text, language)
        with self._lock:  # claim the phrase, so a prepare() arriving meanwhile waits instead of synthesising again
            pending = self._pending.get(path)
            mine: Future[Path] | None = None
            if pending is None and not self.cache.has(path):
                mine = self._pending[path] = Future()
        if pending is not None:
            try:
                pending.result(self.synth_timeout)
            except Exception:  # the prepare failed: try once more below, and report that error
                pass
            if not self.cache.has(path):
                self._synthesise(text, language, path)
        elif mine is not None:
            try:
                mine.set_result(self._synthesise(text, language, path))
            except BaseException as exc:
                mine.set_exception(exc)
                raise
        return path

    def _path(self, text: str, language: str) -> Path:
        voice = self.voices.get(language)
        if voice is None:
            self._fail(f"no espeak-ng voice configured for language {language!r}")
        return self.cache.path_for(self.engine, voice, text)

    def _synthesise(self, text: str, language: str, path: Path) -> Path:
        voice = self.voices[language]
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        cmd = [self.binary, "-v", voice, "-w", str(tmp)] + (["-s", str(self.speed)] if self.speed else [])
        try:
            try:
                proc = subprocess.run(cmd + ["--", spell_tickets(text)], capture_output=True, timeout=self.synth_timeout)
            except FileNotFoundError:
                self._fail("espeak-ng is not installed (Debian package espeak-ng)")
            except subprocess.TimeoutExpired:
                self._fail(f"espeak-ng took longer than {self.synth_timeout:.0f} s")
            if proc.returncode != 0 or not tmp.exists():
                self._fail(f"espeak-ng failed for voice {voice}: {proc.stderr.decode(errors='replace').strip()[:200]}")
            tmp.replace(path)
            self.synthesised.append(path)
            return path
        finally:
            # Only once the WAV is in the cache (or failed) may others stop waiting for it.
            with self._lock:
                self._pending.pop(path, None)
