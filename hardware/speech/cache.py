"""On-disk cache of synthesised phrases, and the chime, as WAV files.

The cache lives in the service's own cache directory: ``$CACHE_DIRECTORY`` (systemd's
``CacheDirectory=``, ``/var/cache/clinicflow`` for the device units), else
``$XDG_CACHE_HOME/clinicflow/speech`` or ``~/.cache/clinicflow/speech``; never a shared,
predictable ``/tmp`` path where another local user could plant WAVs or a symlink. The directory
is 0700 and must belong to this user, so the temporary names used inside it are safe.
"""
from __future__ import annotations

import hashlib
import math
import os
import stat
import struct
import wave
from pathlib import Path

from clinicflow.files import atomic_file


def default_cache_dir() -> Path:
    """Where this process caches speech (see the module docstring)."""
    if os.environ.get("CACHE_DIRECTORY"):
        return Path(os.environ["CACHE_DIRECTORY"].split(":")[0]) / "speech"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "clinicflow" / "speech"


def private_directory(path: Path) -> Path:
    """Create ``path`` 0700, or check an existing one is a real directory of ours that no one else can write."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise PermissionError(f"speech cache {path} is not a directory owned by this user: refusing to use it")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


class PhraseCache:
    """WAV files keyed by (engine, voice, text), so a phrase is synthesised once per device.

    Files are written under a temporary name and renamed, so a half-written WAV is never played.
    """

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = private_directory(Path(directory) if directory else default_cache_dir())

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
    with atomic_file(path, 0o644) as f, wave.open(f, "wb") as w:  # a fresh temp name, never a planted one
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return path


def wav_duration(path: Path) -> float:
    """Length of a WAV file in seconds."""
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())
