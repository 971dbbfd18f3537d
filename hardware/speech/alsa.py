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

    def play(self, path: Path) -> None:
        """Play ``path`` to the end; raise ``SpeechError`` when there is no player, no card, or a timeout."""
        cmd = [self.binary, "-q"] + (["-D", self.device] if self.device else []) + [str(path)]
        with self._lock:
            started = time.monotonic()
            try:
                proc = subprocess.run(cmd, capture_output=True, timeout=self.timeout, check=False)
            except FileNotFoundError:
                raise SpeechError("aplay is not installed (Debian package alsa-utils)") from None
            except subprocess.TimeoutExpired:
                raise SpeechError(f"playback of {path.name} took longer than {self.timeout:.0f} s") from None
            if proc.returncode != 0:
                reason = proc.stderr.decode(errors="replace").strip().splitlines()
                raise SpeechError(f"no audio output: {reason[-1] if reason else 'aplay exit ' + str(proc.returncode)}")
            self.played.append(Playback(Path(path), started, time.monotonic()))
