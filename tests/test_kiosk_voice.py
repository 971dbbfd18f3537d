"""A patient who cannot see, at the kiosk alone: voice started by the raised key, then check-in,
payment by insurance card and report printing by keys alone, against a real queue server.

The speech is the real ``KioskVoice`` worker over the shipped ``FakeSpeaker`` (each phrase
"plays" for a while and can be cut); the key panel is the shipped ``FakeKioskPanel`` wired as
the kiosk's composition root wires the GPIO one. The first sentence of everything said is
synthesised with the real espeak-ng and timed.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import wave
from collections import Counter
from pathlib import Path

import pytest

from hardware.kiosk_panel import FakeKioskPanel
from hardware.payment_terminal import FakePaymentTerminal
from hardware.report_printer import FakeReportPrinter
from hardware.speech import FakeSpeaker
from hardware.ticket_printer import FakeTicketPrinter
from kiosk.clock import ManualClock
from kiosk.payment_journal import PaymentJournal
from kiosk.server_client import KioskServerClient
from kiosk.viewmodels import KioskSettings, KioskViewModel
from kiosk.voice import KioskVoice
from tests.fixtures_server import QueueServerProcess

ID_P1006 = "110101195803158642"  # 赵军, 68: appointment AP1006 now, bill B1006 (¥10.00 to pay)
FIGURES = re.compile(r"\d")


@pytest.fixture(scope="module")
def server(tmp_path_factory, mosquitto):
    proc = QueueServerProcess(tmp_path_factory.mktemp("kiosk-voice"), mosquitto.url).start()
    yield proc
    proc.stop()


class BlindPatient:
    """The kiosk with a speech worker, and what a person at its key panel hears and presses."""

    def __init__(self, server, *, play_seconds: float = 0.02, language: str = "zh", **settings) -> None:
        self.speaker = FakeSpeaker(play_seconds=play_seconds)
        self.speech = KioskVoice(self.speaker)
        self.panel = FakeKioskPanel()
        self.reports = FakeReportPrinter()
        self.printer = FakeTicketPrinter()
        self.vm = KioskViewModel(
            client=KioskServerClient(server.base_url, token=server.tokens["kiosk"], timeout=3),
            printer=self.printer, report_printer=self.reports, terminal=FakePaymentTerminal(),
            speech=self.speech, clock=ManualClock(), journal=PaymentJournal(":memory:"), language=language,
            settings=KioskSettings(device_id="kiosk-voice", **settings))
        self.panel.when_key = self.vm.on_panel_key  # as kiosk/cli.py wires the GPIO panel

    def press(self, key: str, *, wait: bool = True) -> str:
        """Press a panel key and listen to the end; returns the last thing heard."""
        self.panel.press(key)
        if not wait:
            return ""
        self.listen()
        return self.heard[-1]

    def listen(self) -> None:
        assert self.speech.wait_idle(5), "speech never finished"

    def card(self, number: str) -> str:
        self.vm.on_card(number)
        self.listen()
        return self.heard[-1]

    def next_until(self, label: str, limit: int = 10) -> int:
        """Press Next until ``label`` is read; returns the presses it took."""
        for n in range(1, limit + 1):
            if self.press("next") == label:
                return n
        raise AssertionError(f"never heard {label!r}; heard {self.heard[-limit:]}")

    @property
    def heard(self) -> list[str]:
        return [u.text for u in self.speaker.spoken]

    def close(self) -> None:
        self.speech.close()


@pytest.fixture
def patient(server):
    p = BlindPatient(server)
    yield p
    p.close()


def seconds(text: str, tmp: Path) -> float:
    """How long espeak-ng (Mandarin voice) takes to say ``text``."""
    wav = tmp / "phrase.wav"
    subprocess.run(["espeak-ng", "-v", "cmn-latn-pinyin", "-w", str(wav), "--", text], check=True, timeout=10)
    with wave.open(str(wav)) as w:
        return w.getnframes() / w.getframerate()


def first_sentence(text: str) -> str:
    return re.split(r"(?<=[。！？])|(?<=[.!?])\s", text, maxsplit=1)[0]


def test_blind_patient_checks_in_pays_and_prints_reports_by_keys_alone(server, tmp_path):
    p = BlindPatient(server, voice_hint_interval=30)
    vm = p.vm
    try:
        # From cold: voice off, nobody touching. Now and then the kiosk says how to start voice.
        assert not vm.voice and p.heard == []
        for _ in range(30):
            vm.tick(1)
        p.listen()
        assert p.heard[-1].startswith("语音提示：请按屏幕下方的凸起按键。") and "按住屏幕" in p.heard[-1]
        # The raised key starts voice: the choice first, then the keys, said once.
        said = p.press("voice")
        assert vm.voice and said.startswith("请按“下一项”选择服务")
        assert "按“确认”选择" in said
        # -- check-in: Next finds 签到, Select; the ID card identifies (the reader, not a key).
        assert p.next_until("签到") == 1
        said = p.press("select")
        assert vm.screen == "checkin" and said.startswith("请插入身份证或医保卡。")
        said = p.card(ID_P1006)
        assert vm.screen == "appointments" and said.startswith("内科，") and "点" in said and "请按“签到”" in said
        keys = len(p.panel.pressed)
        assert p.next_until("签到") == 1
        said = p.press("select")
        assert vm.screen == "ticket"
        number = vm.ticket.ticket.number  # e.g. A001
        assert said.startswith(f"您的号码是 {number[0]} 零") and "内科" in said
        assert len(p.panel.pressed) - keys <= 2  # check-in after identification: 2 key presses
        p.next_until("完成")
        p.press("select")
        assert vm.screen == "home"
        # -- payment by insurance card: 缴费, identify by card, 医保卡, insert the card.
        p.next_until("缴费")
        said = p.press("select")
        assert vm.screen == "identify" and said.startswith("请插入身份证或医保卡。")
        said = p.card("YB1006")
        assert vm.screen == "payment" and said.startswith("您需支付 十元，请选择支付方式。")
        keys = len(p.panel.pressed)
        p.next_until("医保卡")
        said = p.press("select")
        assert said.startswith("请插入医保卡，支付 十元。")
        said = p.card("YB1006")
        assert vm.payment.state == "paid" and said.startswith("已支付 十元")
        p.next_until("完成")
        p.press("select")
        assert vm.screen == "home" and len(p.panel.pressed) - keys <= 6  # payment: at most 6 presses
        # -- reports (王秀英, 82, also cannot see): 打印报告, her insurance card, 打印.
        p.next_until("打印报告")
        p.press("select")
        said = p.card("YB1002")
        assert vm.screen == "reports" and said.startswith("按“打印”打印 两 份报告。")
        keys = len(p.panel.pressed)
        p.next_until("打印")
        said = p.press("select")
        assert p.reports.jobs and said.startswith("报告已打印")
        assert "尿常规：已打印" in said and "血常规：已打印" in said
        p.next_until("完成")
        p.press("select")
        assert vm.screen == "home" and len(p.panel.pressed) - keys <= 4  # reports: at most 4 presses

        # Every figure was said as words; nothing twice in a row (each prompt once); each first
        # sentence under about 6 s.
        assert [t for t in p.heard if FIGURES.search(t)] == []
        assert [a for a, b in zip(p.heard, p.heard[1:]) if a == b] == []
        prompts = Counter(t for t in p.heard if len(t) > 8)
        assert max(prompts.values()) <= 3  # only Home's prompt comes back, once per visit
        if shutil.which("espeak-ng"):
            slow = {t: round(d, 1) for t in set(p.heard) if (d := seconds(first_sentence(t), tmp_path)) > 6.0}
            assert slow == {}
            whole = {t: round(seconds(t, tmp_path), 1) for t in set(p.heard)}
            assert max(whole.values()) < 15.0  # was up to 16.8 s, said twice
    finally:
        p.close()


def test_a_key_cuts_the_speech_at_once(server):
    p = BlindPatient(server, play_seconds=2.0)
    try:
        p.press("voice", wait=False)
        assert p.speaker.wait_playing(2)
        p.press("next", wait=False)  # barge-in: the welcome is cut, "签到" is read at once
        p.listen()
        welcome, option = p.speaker.spoken[-2:]
        assert welcome.interrupted and welcome.ended - welcome.started < 1.0
        assert option.text == "签到" and p.speaker.max_overlap == 1
    finally:
        p.close()


def test_idle_timer_waits_for_the_speech_and_nothing_is_said_after_the_timeout(server):
    p = BlindPatient(server, play_seconds=0.5, idle_timeout=10, idle_warning=5)
    vm = p.vm
    try:
        p.press("voice")
        p.next_until("签到")
        p.press("select")
        assert vm.screen == "checkin"
        p.press("next", wait=False)  # no choices here: the prompt is read again (half a second)
        assert vm.speech.speaking
        remaining = vm.idle_remaining
        vm.tick(3)
        assert vm.idle_remaining == remaining  # held while the patient listens
        p.listen()
        for _ in range(5):
            vm.tick(1)
            p.listen()
        assert vm.idle_warning and p.heard[-1] == "五 秒后返回首页。按任意键可继续。"  # the warning is spoken
        said = len(p.heard)
        for _ in range(6):
            vm.tick(1)
            p.listen()
        assert vm.screen == "home" and vm.patient is None
        assert not vm.voice and not vm.large_text  # the next person finds the kiosk as everyone does
        assert p.heard[said:] == []  # nothing of the ended visit, and no welcome to nobody
    finally:
        p.close()


def test_voice_starts_from_any_voice_key_a_long_press_or_headphones(server):
    for start in ("next", "select", "back", "long_press", "headphones_in"):
        p = BlindPatient(server)
        try:
            if start == "long_press":
                p.vm.on_long_press()
                p.listen()
            else:
                p.press(start)
            assert p.vm.voice and p.vm.screen == "home", start  # started voice; pressed nothing else
            assert p.heard[-1].startswith("请按“下一项”选择服务"), start
        finally:
            p.close()


def test_the_emergency_direction_is_spoken(server):
    p = BlindPatient(server)
    vm = p.vm
    try:
        p.press("voice")
        vm.home.choose("register")
        p.card("YB1004")
        vm.register.start_guide()
        vm.register.pick_area("chest")
        vm.register.toggle_symptom("chest_pain")
        vm.register.toggle_symptom("breathless")
        vm.register.finish_guide()
        p.listen()
        assert vm.register.stage == "emergency"
        assert "红线" in p.heard[-1] and "急诊" in p.heard[-1]
    finally:
        p.close()


def test_a_cantonese_kiosk_reads_the_chinese_screens_in_cantonese(server, tmp_path):
    """A Guangdong kiosk (``spoken_language={"zh": "yue"}``): the Chinese screens are spoken by the Cantonese
    voice, figures as Chinese numerals (no "A 零 十 二" guessed by the engine), and real espeak-ng makes sound."""
    from hardware.speech.cache import PhraseCache
    from hardware.speech.espeak import EspeakSpeaker

    p = BlindPatient(server, spoken_language={"zh": "yue"})
    try:
        p.press("voice")
        said = p.card(ID_P1006)
        assert p.vm.language == "zh" and {u.language for u in p.speaker.spoken} == {"yue"}
        assert not any(FIGURES.search(u.text) for u in p.speaker.spoken), [u.text for u in p.speaker.spoken]
        wav = EspeakSpeaker(player=None, cache=PhraseCache(tmp_path)).render(first_sentence(said), "yue")
        with wave.open(str(wav)) as w:
            frames = w.readframes(w.getnframes())
        assert len(frames) > 0 and max(frames) > 0  # not silence
    finally:
        p.close()
