"""On-disk cache of synthesised phrases, and the chime, as WAV files."""
from __future__ import annotations

import hashlib
import math
import struct
import tempfile
import wave
from pathlib import Path


class PhraseCache:
    """WAV files keyed by (engine, voice, text), so a phrase is synthesised once per device.

    Files are written under a temporary name and renamed, so a half-written WAV is never played.
    """

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory else Path(tempfile.gettempdir()) / "clinicflow-speech"
        self.directory.mkdir(parents=True, exist_ok=True)

    def path_for(self, engine: str, voice: str, text: str) -> Path:
        digest = hashlib.sha1(f"{engine}\0{voice}\0{text}".encode()).hexdigest()[:20]
        return self.directory / f"{engine}-{voice}-{digest}.wav"

    def has(self, path: Path) -> bool:
        return path.exists() and path.stat().st_size > 44

    def chime(self) -> Path:
        """The two-tone attention chime (written once)."""
        path = self.directory / "chime.wav"
        if not self.has(path):
            write_chime(path)
        return path


def write_chime(path: Path, *, rate: int = 22050, tones: tuple[float, ...] = (880.0, 660.0), tone_s: float = 0.12) -> Path:
    """Write a short "ding-dong" WAV (decaying sine tones, 16-bit mono).

    Kept to about a quarter of a second: speech follows it, and must start within 300 ms of the call.
    """
    frames = bytearray()
    for freq in tones:
        n = int(rate * tone_s)
        for i in range(n):
            envelope = math.exp(-4.0 * i / n)
            frames += struct.pack("<h", int(12000 * envelope * math.sin(2 * math.pi * freq * i / rate)))
    tmp = path.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    tmp.replace(path)
    return path


def wav_duration(path: Path) -> float:
    """Length of a WAV file in seconds."""
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())
