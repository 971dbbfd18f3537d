"""Speech for call screens: the ``Speaker`` port, its adapters, and a shipped fake.

    from hardware.speech import EspeakSpeaker, AlsaPlayer
    speaker = EspeakSpeaker(player=AlsaPlayer())           # default ALSA card
    speaker.chime(); speaker.say("请 A012 号到 1 诊室就诊", "zh")

``make_speaker(name, ...)`` builds one by name for a command line (``espeak``, ``pyttsx3``,
``fake``, ``none``).
"""
from __future__ import annotations

from pathlib import Path

from hardware.speech.alsa import AlsaPlayer, Playback
from hardware.speech.cache import PhraseCache, wav_duration, write_chime
from hardware.speech.espeak import EspeakSpeaker
from hardware.speech.fake import FakeSpeaker, Utterance
from hardware.speech.port import ESPEAK_VOICES, Speaker, SpeechError
from hardware.speech.pyttsx3_speaker import Pyttsx3Speaker

SPEAKERS = ("espeak", "pyttsx3", "fake", "none")


def make_speaker(name: str, *, audio_device: str | None = None, cache_dir: Path | str | None = None) -> Speaker | None:
    """The speaker a command line asked for; ``none`` gives None (a silent screen)."""
    if name == "none":
        return None
    if name == "fake":
        return FakeSpeaker()
    cache = PhraseCache(cache_dir)
    player = AlsaPlayer(device=audio_device)
    if name == "espeak":
        return EspeakSpeaker(player=player, cache=cache)
    if name == "pyttsx3":
        return Pyttsx3Speaker(player=player, cache=cache)
    raise ValueError(f"unknown speaker {name!r}: choose one of {', '.join(SPEAKERS)}")


__all__ = [
    "ESPEAK_VOICES", "SPEAKERS", "AlsaPlayer", "EspeakSpeaker", "FakeSpeaker", "PhraseCache", "Playback",
    "Pyttsx3Speaker", "Speaker", "SpeechError", "Utterance", "make_speaker", "wav_duration", "write_chime",
]
