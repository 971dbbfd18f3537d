"""The ``volume`` setting for speech: WAVs are scaled before ALSA plays them.

    set_volume(speaker, 60)     # the next phrase plays at 60 % of its synthesised level

A Pi's HDMI or USB audio often has no mixer control ALSA can set (and a mixer would change
every program's sound), so the samples themselves are scaled: ``VolumePlayer`` wraps the
speaker's ``AlsaPlayer`` and hands it a scaled copy of each 16-bit WAV (100 plays the file
as it is, 0 plays silence). A speaker without a player (fake, silent) has nothing to scale:
``set_volume`` answers False.
"""
from __future__ import annotations

import array
import sys
import tempfile
import threading
import wave
from pathlib import Path
from typing import Any


def scale_wav(source: Path, target: Path, volume: int) -> None:
    """Write ``source`` to ``target`` with every 16-bit sample multiplied by ``volume`` / 100."""
    with wave.open(str(source), "rb") as src:
        params = src.getparams()
        frames = src.readframes(params.nframes)
    if params.sampwidth != 2:
        raise ValueError(f"{source.name}: only 16-bit WAVs can be scaled (got {8 * params.sampwidth}-bit)")
    samples = array.array("h", frames)
    if sys.byteorder == "big":
        samples.byteswap()
    factor = max(0, min(100, volume)) / 100
    scaled = array.array("h", (int(s * factor) for s in samples))
    if sys.byteorder == "big":
        scaled.byteswap()
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        out.writeframes(scaled.tobytes())


class VolumePlayer:
    """An ``AlsaPlayer`` that plays each WAV at ``volume`` percent (see the module docstring).

    Scaled copies are kept (per phrase and volume) in a private temp folder, so a phrase
    heard before costs no extra time: announcements are latency-critical.
    """

    def __init__(self, player: Any, volume: int = 100) -> None:
        self.inner = player
        self.volume = volume
        self._lock = threading.Lock()
        self._folder = Path(tempfile.mkdtemp(prefix="clinicflow-volume-"))  # 0700, ours alone
        self._scaled: dict[tuple[str, int, int], Path] = {}

    @property
    def device(self) -> str | None:
        return self.inner.device

    @property
    def played(self) -> list[Any]:
        return self.inner.played

    def play(self, path: Path) -> None:
        if self.volume >= 100:
            self.inner.play(path)
            return
        source = Path(path)
        key = (str(source), source.stat().st_mtime_ns, self.volume)
        with self._lock:
            scaled = self._scaled.get(key)
            if scaled is None:
                scaled = self._folder / f"{len(self._scaled)}-{self.volume}-{source.name}"
                scale_wav(source, scaled, self.volume)
                self._scaled[key] = scaled
        self.inner.play(scaled)


def set_volume(speaker: Any, volume: int) -> bool:
    """Play ``speaker``'s phrases at ``volume`` percent from now on; False when it has no player to scale."""
    player = getattr(speaker, "player", None)
    if player is None:
        return False
    if not isinstance(player, VolumePlayer):
        player = VolumePlayer(player)
        speaker.player = player
    player.volume = int(volume)
    return True
