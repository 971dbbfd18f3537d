"""Playback of WAV files through ALSA's ``aplay`` (Debian ``alsa-utils``)."""
from __future__ import annotations

import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hardware.speech.port import SpeechError


@dataclass(frozen=True)
class Playback:
    """One WAV handed to the sound card: what, and when playback started and ended (monotonic seconds)."""

    path: Path
    started: float
    ended: float


class AlsaPlayer:
    """Plays WAV files with ``aplay -q [-D device]``, one at a time, with a timeout.

    ``device=None`` uses ALSA's default card; ``"null"`` discards the samples (tests, machines
    without a card). Every playback is recorded in ``played`` so latency can be measured.
    """

    def __init__(self, *, device: str | None = None, timeout: float = 30.0, binary: str | None = None) -> None:
        self.device = device
        self.timeout = timeout
        self.binary = binary or shutil.which("aplay") or "aplay"
        self.played: list[Playback] = []
        self._lock = threading.Lock()
        self._current: subprocess.Popen[bytes] | None = None
        self._stopped = False

    def play(self, path: Path) -> None:
        """Play ``path`` to the end (or until ``stop()``); raise ``SpeechError`` when there is no player,
        no card, or a timeout."""
        cmd = [self.binary, "-q"] + (["-D", self.device] if self.device else []) + [str(path)]
        with self._lock:
            started = time.monotonic()
            self._stopped = False
            try:
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            except FileNotFoundError:
                raise SpeechError("aplay is not installed (Debian package alsa-utils)") from None
            self._current = proc
            try:
                _out, err = proc.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise SpeechError(f"playback of {path.name} took longer than {self.timeout:.0f} s") from None
            finally:
                self._current = None
            if self._stopped:  # cut short on purpose (barge-in): not a fault of the sound card
                self.played.append(Playback(Path(path), started, time.monotonic()))
                return
            if proc.returncode != 0:
                reason = (err or b"").decode(errors="replace").strip().splitlines()
                raise SpeechError(f"no audio output: {reason[-1] if reason else 'aplay exit ' + str(proc.returncode)}")
            self.played.append(Playback(Path(path), started, time.monotonic()))

    def stop(self) -> None:
        """Cut the sound that is playing now (from any thread); ``play`` then returns normally."""
        proc = self._current
        if proc is not None and proc.poll() is None:
            self._stopped = True
            proc.terminate()
