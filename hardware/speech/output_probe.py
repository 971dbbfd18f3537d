"""Is there a sound output to speak through? An ALSA probe for the device status.

``probe_alsa_output(device)`` opens the ALSA device with ``aplay`` and plays 10 ms of
silence: a machine without a sound card (or a misspelled ``plughw:1,0``) fails at once
with ALSA's own reason, long before the first announcement would. A card that is busy
playing an announcement right now counts as present. No ``aplay`` means nobody can tell:
``ok`` is None.
"""
from __future__ import annotations

import io
import shutil
import subprocess
import wave

from hardware.health import UNAVAILABLE, Probe


def _silence_wav(ms: int = 10, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * (rate * ms // 1000))
    return buf.getvalue()


def probe_alsa_output(device: str | None = None, *, binary: str | None = None, timeout: float = 5.0) -> Probe:
    """``Probe("speech_output", ok)``: ok when ``aplay -D device`` could open the output."""
    exe = binary or shutil.which("aplay")
    if exe is None:
        return Probe("speech_output", None, None, f"{UNAVAILABLE} (aplay is not installed: Debian alsa-utils)")
    cmd = [exe, "-q"] + (["-D", device] if device else []) + ["-"]
    shown = device or "default"
    try:
        proc = subprocess.run(cmd, input=_silence_wav(), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Probe("speech_output", False, shown, f"ALSA output {shown} did not open within {timeout:.0f} s")
    except OSError as exc:
        return Probe("speech_output", None, shown, f"{UNAVAILABLE} ({exc})")
    if proc.returncode == 0:
        return Probe("speech_output", True, shown, f"ALSA output {shown} ok")
    reason = (proc.stderr.decode(errors="replace").strip().splitlines() or [f"aplay exit {proc.returncode}"])[-1]
    if "busy" in reason.lower():
        return Probe("speech_output", True, shown, f"ALSA output {shown} busy (playing)")
    return Probe("speech_output", False, shown, f"no sound output {shown}: {reason[:160]}")
