"""Speech adapters: the shipped fake, espeak-ng and pyttsx3 against the real engine, ALSA's aplay."""
from __future__ import annotations

import threading

import pytest

from hardware.speech import (
    AlsaPlayer,
    EspeakSpeaker,
    FakeSpeaker,
    PhraseCache,
    Pyttsx3Speaker,
    SpeechError,
    make_speaker,
    wav_duration,
)
from hardware.speech.text import spell_tickets

ZH = "请 A012 号到 1 诊室就诊"
EN = "Number A012, please go to room 1"


def test_fake_speaker_records_chime_and_phrases_in_order():
    speaker = FakeSpeaker()
    speaker.chime()
    speaker.say(ZH, "zh")
    speaker.say(EN, "en")
    assert speaker.events == ["chime", ("zh", ZH), ("en", EN)]
    assert [(u.language, u.text) for u in speaker.spoken] == [("zh", ZH), ("en", EN)]
    assert speaker.healthy and speaker.max_overlap == 1


def test_fake_speaker_fails_like_a_missing_sound_card_and_recovers():
    speaker = FakeSpeaker()
    speaker.simulate_failure()
    with pytest.raises(SpeechError, match="no audio"):
        speaker.say(EN, "en")
    assert not speaker.healthy and "no audio" in speaker.last_error
    speaker.recover()
    speaker.say(EN, "en")
    assert speaker.healthy and speaker.last_error is None


def test_ticket_numbers_are_spelled_character_by_character():
    assert spell_tickets(EN) == "Number A 0 1 2, please go to room 1"
    assert spell_tickets(ZH) == "请 A 0 1 2 号到 1 诊室就诊"


def test_espeak_speaks_each_language_into_a_cached_wav_and_plays_it(tmp_path):
    player = AlsaPlayer(device="null")  # ALSA's null device: real aplay, no sound card needed
    speaker = EspeakSpeaker(player=player, cache=PhraseCache(tmp_path))
    speaker.chime()
    for text, lang in [(ZH, "zh"), (EN, "en"), ("请 A012 号到 1 診室睇症", "yue")]:
        speaker.say(text, lang)
    assert len(speaker.synthesised) == 3
    assert all(wav_duration(p) > 1.0 for p in speaker.synthesised)
    assert [p.path.name for p in player.played][0] == "chime.wav"
    assert len(player.played) == 4 and speaker.healthy

    speaker.say(EN, "en")  # a phrase said before comes from the cache
    assert len(speaker.synthesised) == 3 and len(player.played) == 5
    speaker.close()


def test_espeak_prepare_renders_ahead_so_say_does_not_synthesise_again(tmp_path):
    speaker = EspeakSpeaker(player=None, cache=PhraseCache(tmp_path))
    speaker.prepare(EN, "en")
    speaker.say(EN, "en")
    assert len(speaker.synthesised) == 1
    speaker.close()


def test_espeak_without_audio_device_reports_the_fault_and_keeps_working(tmp_path):
    speaker = EspeakSpeaker(player=AlsaPlayer(device="no_such_card"), cache=PhraseCache(tmp_path))
    with pytest.raises(SpeechError, match="no audio output"):
        speaker.say(EN, "en")
    assert not speaker.healthy and "no audio output" in speaker.last_error
    assert speaker.synthesised, "synthesis still worked; only playback failed"
    speaker.player = AlsaPlayer(device="null")  # the technician plugs the speaker back in
    speaker.say(EN, "en")
    assert speaker.healthy


def test_espeak_names_a_language_it_has_no_voice_for(tmp_path):
    speaker = EspeakSpeaker(player=None, cache=PhraseCache(tmp_path))
    with pytest.raises(SpeechError, match="'xx'"):
        speaker.say("hello", "xx")


def test_pyttsx3_writes_long_phrases_completely_from_two_threads(tmp_path):
    """FIELD_NOTES: runAndWait() could return before long WAVs were written; one worker owns the engine."""
    speaker = Pyttsx3Speaker(player=AlsaPlayer(device="null"), cache=PhraseCache(tmp_path))
    long_en = EN + ". " + "Please have your ticket and your insurance card ready at the door of the room. " * 2
    errors: list[BaseException] = []

    def speak(text: str, lang: str) -> None:
        try:
            speaker.say(text, lang)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=speak, args=a) for a in [(long_en, "en"), (ZH, "zh")]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    speaker.close()
    assert not errors
    durations = sorted(wav_duration(p) for p in speaker.synthesised)
    assert len(durations) == 2 and durations[0] > 1.0 and durations[1] > 8.0  # the long one is whole
    assert speaker.healthy and len(speaker.player.played) == 2


def test_make_speaker_builds_each_choice(tmp_path):
    assert make_speaker("none") is None
    assert isinstance(make_speaker("fake"), FakeSpeaker)
    assert isinstance(make_speaker("espeak", audio_device="null", cache_dir=tmp_path), EspeakSpeaker)
    with pytest.raises(ValueError, match="unknown speaker"):
        make_speaker("festival")


def test_fake_speaker_stop_cuts_the_phrase_playing_now():
    speaker = FakeSpeaker(play_seconds=5.0)
    worker = threading.Thread(target=speaker.say, args=(ZH, "zh"))
    worker.start()
    assert speaker.wait_playing(2)
    speaker.stop()
    worker.join(2)
    assert not worker.is_alive() and speaker.stops == 1
    phrase = speaker.spoken[-1]
    assert phrase.interrupted and phrase.ended - phrase.started < 2.0
    speaker.stop()  # nothing playing: nothing to cut
    assert speaker.stops == 1


def test_alsa_player_stop_ends_playback_without_calling_it_a_fault(tmp_path):
    """No sound card here: a stand-in ``aplay`` that plays for 5 s, as a real one would a long phrase."""
    import time

    fake_aplay = tmp_path / "aplay"
    fake_aplay.write_text("#!/bin/sh\nexec sleep 5\n")
    fake_aplay.chmod(0o755)
    player = AlsaPlayer(binary=str(fake_aplay))
    wav = tmp_path / "phrase.wav"
    wav.write_bytes(b"RIFF")
    errors: list[BaseException] = []

    def play() -> None:
        try:
            player.play(wav)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    worker = threading.Thread(target=play)
    started = time.monotonic()
    worker.start()
    while player._current is None and time.monotonic() - started < 2:
        time.sleep(0.01)
    player.stop()
    worker.join(3)
    assert not worker.is_alive() and errors == []
    assert time.monotonic() - started < 2.0 and len(player.played) == 1
