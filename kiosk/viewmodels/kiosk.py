"""``KioskViewModel``: the root of the kiosk's state: screen, language, modes, patient, idle timer, voice.

The screens are thin kv over this object and the flow view-models it owns
(``home``, ``identify``, ``checkin``, ``register``, ``payment``, ``reports``, ``ticket``, ``help``).
Window-less use (tests, the lead's end-to-end test)::

    from kiosk.server_client import KioskServerClient
    from kiosk.viewmodels import KioskViewModel
    from hardware.ticket_printer import FakeTicketPrinter

    kiosk = KioskViewModel(client=KioskServerClient(url, token=token), printer=FakeTicketPrinter())
    kiosk.checkin.type_code("AP1001"); kiosk.checkin.submit()
    kiosk.screen            -> "ticket"
    kiosk.ticket.ticket     -> protocol.api.TicketOut (number, room, position, status_url)

With the default ``InlineTasks`` every call completes before the method returns.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, NumericProperty, ObjectProperty, StringProperty

from kiosk.clock import ManualClock, Scheduler
from kiosk.evoucher import voucher_card_number
from kiosk.i18n import Translator
from kiosk.symptom_guide import SymptomGuide
from kiosk.tasks import InlineTasks, Tasks
from kiosk.voice import KioskVoice

log = logging.getLogger(__name__)


@dataclass
class KioskSettings:
    """Site settings of one kiosk (from its device config)."""

    device_id: str = "kiosk-1"
    site: str = "demo"
    timezone: str = "Asia/Shanghai"
    idle_timeout: float = 60.0  # seconds without a touch before all patient data is cleared
    idle_warning: float = 15.0  # the countdown turns prominent in the last seconds
    retry_interval: float = 5.0  # server unreachable: retry this often
    qr_poll_interval: float = 2.0
    directions: dict[str, str] = field(default_factory=lambda: {
        "zh": "门诊大厅一楼 1 号窗口",
        "en": "window 1, outpatient hall, ground floor",
    })
    accessibility_age: int = 65
    card_slot: dict[str, str] = field(default_factory=lambda: {  # where this kiosk model's card reader is
        "zh": "身份证、医保卡插入屏幕右下方的读卡口", "en": "ID and insurance cards go in the slot below the screen, right"})
    hospital_name: dict[str, str] = field(default_factory=lambda: {"zh": "示范医院", "en": "Demo Hospital"})
    # Where to wait for departments with several rooms (the ticket names no room until the call).
    waiting_areas: dict[str, dict[str, str]] = field(default_factory=lambda: {
        "internal": {"zh": "二楼内科候诊区（诊室 1-3）", "en": "waiting area, floor 2 (rooms 1-3)"},
        "surgery": {"zh": "三楼外科候诊区", "en": "waiting area, floor 3"},
        "pediatrics": {"zh": "一楼儿科候诊区", "en": "waiting area, floor 1"},
    })
    voice_hint_interval: float = 90.0  # Home, nobody there: say how to start voice this often (0: never)
    # The voice a screen language is spoken in, where it is not its own: {"zh": "yue"} reads the Chinese
    # screens aloud in Cantonese (as Cantonese speakers read written Chinese), for Guangdong and Hong Kong.
    spoken_language: dict[str, str] = field(default_factory=dict)


# What a screen is for, in the dashboard's kiosk figures (queueserver/dashboard/kiosk_events.py).
SESSION_KIND = {"checkin": "check_in", "appointments": "check_in", "register": "registration",
                "payment": "payment", "reports": "report"}

# Screens that need an identified patient first.
NEEDS_PATIENT = {"appointments", "payment", "reports", "register", "booking"}


class KioskViewModel(EventDispatcher):
    screen = StringProperty("home")
    language = StringProperty("zh")
    large_text = BooleanProperty(False)
    voice = BooleanProperty(False)
    patient = ObjectProperty(None, allownone=True)  # protocol.api_patient.PatientOut while identified
    offer_accessibility = BooleanProperty(False)  # show the "large text and voice?" offer (65+)
    idle_remaining = NumericProperty(0)
    idle_warning = BooleanProperty(False)
    touches = NumericProperty(0)  # every touch or key press by the patient (tests count steps with it)
    printer_fault = StringProperty("")  # "" or what is wrong with the receipt printer (device status)
    server_reachable = BooleanProperty(True)
    focus_index = NumericProperty(-1)  # voice mode: the option the next/select keys are on
    page_turns = NumericProperty(0)  # bumped when a list is paged (screens redraw)

    def __init__(self, *, client: Any, printer: Any = None, tasks: Tasks | None = None,
                 clock: Scheduler | None = None, speaker: Any = None, speech: KioskVoice | None = None,
                 journal: Any = None, report_printer: Any = None, terminal: Any = None,
                 settings: KioskSettings | None = None, guide: SymptomGuide | None = None,
                 language: str = "zh", **kw) -> None:
        super().__init__(**kw)
        from kiosk.viewmodels.access import AccessOfferViewModel
        from kiosk.viewmodels.booking import BookingViewModel
        from kiosk.viewmodels.checkin import AppointmentsViewModel, CheckInViewModel
        from kiosk.viewmodels.help import HelpViewModel
        from kiosk.viewmodels.home import HomeViewModel
        from kiosk.viewmodels.identify import IdentifyViewModel
        from kiosk.viewmodels.payment import PaymentViewModel
        from kiosk.viewmodels.register import RegistrationViewModel
        from kiosk.viewmodels.reports import ReportsViewModel
        from kiosk.viewmodels.ticket import TicketViewModel

        self.client = client
        self.printer = printer
        self.tasks: Tasks = tasks or InlineTasks()
        self.clock: Scheduler = clock or ManualClock()
        # Speech: one KioskVoice (newest first, once, cut by any key); inline unless one is given.
        self.speech = speech or KioskVoice(speaker, background=False)
        self.speaker = self.speech.speaker
        self.journal = journal
        self.report_printer = report_printer
        self.terminal = terminal
        self.settings = settings or KioskSettings()
        self.guide = guide or SymptomGuide.load()
        self.tr = Translator(language)
        self.language = language
        self._told_keys = False  # the key help is said once, when voice mode starts
        self._hint_idle = 0.0  # seconds on Home without a patient since the last spoken voice hint
        self._history: list[str] = []
        self._pages: dict[str, int] = {}  # list key -> page shown (long lists are paged, never scrolled)
        self.generation = 0  # bumped when a session ends: late answers for an old patient are dropped
        self._started: dict[str, float] = {}  # session kinds begun in this visit -> when (dashboard figures)

        self.home = HomeViewModel(self)
        self.identify = IdentifyViewModel(self)
        self.checkin = CheckInViewModel(self)
        self.appointments = AppointmentsViewModel(self)
        self.register = RegistrationViewModel(self)
        self.payment = PaymentViewModel(self)
        self.reports = ReportsViewModel(self)
        self.ticket = TicketViewModel(self)
        self.help = HelpViewModel(self)
        self.access = AccessOfferViewModel(self)
        self.booking = BookingViewModel(self)  # future appointments (kiosk/viewmodels/booking.py)
        self.flows = {"home": self.home, "identify": self.identify, "access": self.access, "checkin": self.checkin,
                      "appointments": self.appointments, "register": self.register, "payment": self.payment,
                      "reports": self.reports, "ticket": self.ticket, "help": self.help, "booking": self.booking}
        for flow in self.flows.values():
            flow.bind(prompt=lambda *_: self._prompt_changed())
        self.home.enter()

    # -- navigation -----------------------------------------------------------------------------
    @property
    def current(self):
        return self.flows[self.screen]

    def go(self, screen: str, *, remember: bool = True) -> None:
        """Show ``screen`` (identifying the patient first when the flow needs it)."""
        if screen in SESSION_KIND:  # the patient's intent, also when identification comes first
            self._started.setdefault(SESSION_KIND[screen], time.monotonic())
        if screen in NEEDS_PATIENT and self.patient is None:
            self.identify.start(then=screen)
            screen = "identify"
        elif screen in NEEDS_PATIENT and self.offer_accessibility:
            self.access.then = screen  # the 65+ offer is a step of its own, before the chosen flow
            screen = "access"
        if remember and self.screen != screen and self.screen not in ("identify", "access"):
            self._history.append(self.screen)
        self.focus_index = -1
        self._pages.clear()
        self.speech.forget()  # the last screen's words stop; this screen's prompt is said once
        self.screen = screen
        self.flows[screen].enter()
        self.restart_idle()
        self.speak_screen()

    def back(self) -> None:
        self.touch()
        target = self._history.pop() if self._history else "home"
        self.go(target, remember=False)

    def go_home(self) -> None:
        """End the visit: forget the patient and everything shown for them."""
        self.end_session()

    # -- patient session ------------------------------------------------------------------------
    def set_patient(self, patient: Any) -> None:
        self.patient = patient
        if patient is not None:
            # The patient's own choice of language on Home stands; the modes are offered at 65+,
            # unless the patient has already found and turned on one of them.
            self.offer_accessibility = bool(patient.offer_accessibility) and not (self.large_text or self.voice)

    def accept_accessibility(self) -> None:
        """The patient (65+) took the offer: large text and voice on, then the flow they chose."""
        self.touch()
        self.offer_accessibility = False
        self.large_text = True
        self.voice = True
        self.go(self.access.then, remember=False)

    def decline_accessibility(self) -> None:
        self.touch()
        self.offer_accessibility = False
        if self.screen == "access":
            self.go(self.access.then, remember=False)

    def end_session(self, *, timed_out: bool = False) -> None:
        """Clear every trace of the patient from screen and memory and return to Home.

        After an idle timeout nobody is there: speech stops at once (nothing of this visit is said
        to the next patient) and large text and voice go back to off for whoever comes next."""
        session = getattr(self.patient, "session", None)
        self._report_sessions()
        self.generation += 1
        self.speech.forget()
        if timed_out:
            self.large_text = self.voice = False
            self._told_keys = False
        self.patient = None
        self.offer_accessibility = False
        for flow in self.flows.values():
            flow.reset()
        self._history.clear()
        self.focus_index = -1
        self.screen = "home"
        self.home.enter()
        self.idle_remaining = 0
        self.idle_warning = False
        if session and self.client is not None:
            client = self.client
            self.tasks.run(lambda: client.end_session(session), lambda *_: None)
        self.speak_screen()

    def _report_sessions(self) -> None:
        """Send how each kind begun in this visit ended, and on which screen a patient gave up."""
        started, self._started = self._started, {}
        report = getattr(self.client, "report_session", None)
        if not started or report is None:
            return
        done = {"check_in": self.ticket.ticket is not None and "registration" not in started,
                "registration": self.ticket.ticket is not None, "payment": self.payment.state == "paid",
                "report": bool(self.reports.printed)}
        events = [{"event_id": uuid.uuid4().hex, "kiosk": self.settings.device_id, "kind": kind,
                   "outcome": "done" if done[kind] else "abandoned",
                   "screen": "" if done[kind] else f"{self.screen}_{self.payment.state}" if self.screen == "payment"
                   else self.screen, "seconds": round(min(3600.0, time.monotonic() - at), 1)}
                  for kind, at in started.items()]
        self.tasks.run(lambda: [report(e) for e in events], lambda *_: None)

    # -- modes and language ---------------------------------------------------------------------
    def set_language(self, language: str, *, touched: bool = True) -> None:
        if touched:
            self.touch()
        self.tr.set_language(language)
        self.language = language
        for flow in self.flows.values():
            if flow is self.current or flow is self.home:
                flow.refresh_texts()
        self.speak_screen()

    def toggle_large_text(self) -> None:
        self.touch()
        self.large_text = not self.large_text

    def set_voice(self, on: bool) -> None:
        self.voice = on
        self.focus_index = -1
        self._told_keys = False
        if on:
            self.speak_screen(again=True)
        else:
            self.speech.stop()

    def toggle_voice(self) -> None:
        self.touch()
        self.set_voice(not self.voice)

    def start_voice(self) -> None:
        """Voice mode on, found without sight: the raised voice key, any voice key, a long press on the
        glass, headphones plugged in. Already on: the screen is read again."""
        self.touch()
        if self.voice:
            self.speak_screen(again=True)
        else:
            self.set_voice(True)

    def on_long_press(self) -> None:
        """A finger held anywhere on the glass for two seconds."""
        self.start_voice()

    def on_headphones(self, inserted: bool) -> None:
        """The headphone jack's switch (where the hardware reports it): plugging in starts voice."""
        if inserted:
            self.start_voice()

    # -- paging ---------------------------------------------------------------------------------
    def page(self, key: str, pages: int) -> int:
        """The page of list ``key`` on show (0-based, within ``pages``)."""
        return min(self._pages.get(key, 0), max(0, pages - 1))

    def turn_page(self, key: str, delta: int, pages: int) -> None:
        """Previous / Next page buttons of a long list (a touch)."""
        self.touch()
        self._pages[key] = max(0, min(pages - 1, self.page(key, pages) + delta))
        self.page_turns += 1

    # -- idle timeout ---------------------------------------------------------------------------
    def countdown_text(self) -> str:
        """The top strip's countdown, one line: plain while counting, a call to act in the warning."""
        if self.screen == "home" and self.patient is None or self.idle_remaining <= 0:
            return ""
        s = int(round(self.idle_remaining))
        if self.idle_warning:
            return self.tr("Back to start in {s} s. Touch the screen to stay.", s=s)
        return self.tr("Back to start in {s} s", s=s)

    def touch(self) -> None:
        """A patient action: count it, cut any speech (barge-in) and restart the idle countdown."""
        self.touches += 1
        self.speech.stop()
        self.restart_idle()

    def restart_idle(self) -> None:
        if self.screen != "home" or self.patient is not None:
            self.idle_remaining = self.settings.idle_timeout
        self.idle_warning = False

    def tick(self, dt: float) -> None:
        """Called every second by the app (or by tests): counts down and clears the session at zero."""
        if self.screen == "home" and self.patient is None:
            self.idle_remaining = 0
            self._voice_hint(dt)
            return
        if any(flow.busy for flow in self.flows.values()):
            return  # never time out in the middle of a payment or a print
        if self.speech.speaking:
            return  # the patient is listening: the countdown waits for the end of the sentence
        self.idle_remaining = max(0.0, self.idle_remaining - dt)
        warning = 0 < self.idle_remaining <= self.settings.idle_warning
        if warning and not self.idle_warning and self.voice:
            self.say(self.tr("Back to start in {s} seconds. Press any key to stay.",
                             s=int(round(self.idle_remaining))))
        self.idle_warning = warning
        if self.idle_remaining <= 0:
            log.info("idle timeout: clearing the patient session")
            self.end_session(timed_out=True)

    def _voice_hint(self, dt: float) -> None:
        """Now and then, on Home with nobody there, say how a patient who cannot see starts voice."""
        interval = self.settings.voice_hint_interval
        if self.voice or interval <= 0 or self.speaker is None:
            self._hint_idle = 0.0
            return
        self._hint_idle += dt
        if self._hint_idle >= interval:
            self._hint_idle = 0.0
            self.say(self.tr("For spoken guidance, press the raised key below the screen, "
                             "or hold your finger on the screen for two seconds."), again=True)

    # -- input devices --------------------------------------------------------------------------
    def on_scan(self, code: str) -> None:
        """A code from the scanner (keyboard wedge or serial): an appointment QR code, an insurance
        e-voucher (used like the insurance card), or a payment code while the payment screen waits for one."""
        code = code.strip()
        if not code:
            return
        self.restart_idle()
        voucher = voucher_card_number(code)
        if voucher is not None:
            self.on_card(voucher)  # the insurance e-voucher does what the insurance card does
        elif self.screen == "payment" and self.payment.state == "scan_code":
            self.payment.code_scanned(code)  # the patient's WeChat Pay / Alipay payment code
        elif self.screen == "identify":
            self.identify.scanned(code)
        else:
            self.checkin.scanned(code)

    def on_card(self, card_number: str) -> None:
        """A card was read (ID or insurance card)."""
        self.restart_idle()
        if self.screen == "payment" and self.payment.state == "insert_card":
            self.payment.card_read(card_number)
        elif self.patient is None:
            if self.screen != "identify":
                self.identify.start(then="appointments")
                self.screen = "identify"
            self.identify.card_read(card_number)

    # -- devices --------------------------------------------------------------------------------
    def printer_failed(self, message: str) -> None:
        self.printer_fault = message

    def printer_ok(self) -> None:
        self.printer_fault = ""

    def local_time(self, when: Any) -> Any:
        """``when`` on the hospital's clock (screens and slips alike)."""
        from hardware.receipt_layout import local_time

        return local_time(when, self.settings.timezone)

    def format_time(self, when: Any) -> str:
        return self.local_time(when).strftime("%H:%M")

    @property
    def patient_ref(self) -> str:
        """The identified patient on a slip: masked name and the masked identifier they used."""
        if self.patient is None:
            return ""
        return " ".join(p for p in (self.patient.masked_name, self.identify.used_masked) if p)

    # -- voice mode -----------------------------------------------------------------------------
    def _prompt_changed(self) -> None:
        if self.voice:
            self.speak_screen()

    @property
    def spoken_log(self) -> list[str]:
        """Everything voice mode said, as the words sent to the engine."""
        return self.speech.log

    def speak_screen(self, *, again: bool = False) -> None:
        """Read the screen aloud (voice mode; the 65+ offer always): the error first, then the prompt
        with its choice in the first sentence, then how many choices there are. The key help is
        said once, when voice mode starts."""
        if not self.voice and self.screen != "access":
            return
        flow = self.current
        parts = [flow.error] if flow.error else []
        prompt = flow.voice_prompt()
        if prompt:
            parts.append(prompt)
        options = flow.voice_options()
        if options and self.voice:
            if not self._told_keys:
                self._told_keys = True
                parts.append(self.tr("Press Next to hear the {n} choices, Select to choose, Back to go back.",
                                     n=len(options)))
            else:
                parts.append(self.ngettext("{n} choice: press Next.", "{n} choices: press Next.", len(options)))
        self.say(" ".join(parts), again=again)

    def say(self, text: str, *, again: bool = False) -> None:
        """Say ``text`` in the kiosk's language, once (``again`` repeats it on purpose)."""
        if text:
            self.speech.say(text, self.settings.spoken_language.get(self.language, self.language), again=again)

    def ngettext(self, singular: str, plural: str, n: int, **fmt: Any) -> str:
        return self.tr.ngettext(singular, plural, n, **fmt)

    # -- the voice keys (kiosk panel, or F5-F8 on a keyboard) -------------------------------------
    def on_panel_key(self, key: str) -> None:
        """A key of the kiosk panel (``hardware.kiosk_panel.KEYS``)."""
        actions = {"help": self._panel_help, "voice": self.key_voice, "next": self.key_next,
                   "select": self.key_select, "back": self.key_back,
                   "headphones_in": lambda: self.on_headphones(True), "headphones_out": lambda: None}
        actions[key]()

    def _panel_help(self) -> None:
        self.touch()
        self.go("help")

    def key_voice(self) -> None:
        """The raised voice key: starts voice mode, or (already on) cuts the speech and reads the screen again."""
        self.start_voice()

    def key_next(self) -> None:
        """Physical "next" key: move to the next option and read it (starts voice mode if it is off)."""
        if not self.voice:
            self.start_voice()
            return
        self.touch()
        options = self.current.voice_options()
        if not options:
            self.speak_screen(again=True)
            return
        self.focus_index = (self.focus_index + 1) % len(options)
        self.say(options[self.focus_index][0], again=True)

    def key_select(self) -> None:
        """Physical "select" key: choose the option read last."""
        if not self.voice:
            self.start_voice()
            return
        options = self.current.voice_options()
        if not options or not 0 <= self.focus_index < len(options):
            self.touch()
            self.speak_screen(again=True)
            return
        label, action = options[self.focus_index]
        self.focus_index = -1
        self.speech.stop()
        action()

    def key_back(self) -> None:
        if not self.voice:
            self.start_voice()
            return
        self.back()

    # -- helpers for flows ----------------------------------------------------------------------
    def run(self, flow: Any, work: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        """Run blocking work for ``flow`` (busy while it runs; idle timeout paused)."""
        flow.busy = True
        generation = self.generation

        def finished(result: Any, error: BaseException | None) -> None:
            flow.busy = False
            if generation != self.generation:
                log.info("dropping a late answer for a session that has ended")
                return
            if error is not None:
                from kiosk.server_client import ServerUnavailableError

                self.server_reachable = not isinstance(error, ServerUnavailableError)
            else:
                self.server_reachable = True
            done(result, error)

        self.tasks.run(work, finished)
