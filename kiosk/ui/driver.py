"""Child-process driver of the real kiosk window: walks the flows, screenshots and measures every screen.

Run under Xvfb (tests do this; never import Kivy's Window into the pytest process)::

    python -m kiosk.ui.driver --server URL --token TOKEN --out DIR --report report.json \
        [--scenario screens|checkin-touch] [--size 1280x800] [--appointment AP1001]

``screens``: in Chinese and English, normal and large text, every screen of every flow
(home, keypad with a wrong number, identify, phone keypad, the 65+ offer step, an early appointment,
the idle warning,
walk-in departments, symptom guide, red flag, bills, QR with countdown, insurance card,
paid, reports, ticket, ticket with the printer out of paper, help) -> ``<out>/<lang>-<mode>-<nn>-<name>.png``.
``long-press``: holds a finger on Home's first button for 2.5 s: voice starts, the button does not fire.
``checkin-touch``: taps the on-screen keypad buttons of the real window to check in one
appointment, then screenshots the ticket. The JSON report lists each shot with what
``kiosk.ui.widgets.measure`` found wrong (outside the window or the screen area, clipped text,
targets or fonts below the mode's minimum), the idle countdown's lines, and what the fakes recorded.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m kiosk.ui.driver")
    p.add_argument("--server", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--report", required=True)
    p.add_argument("--scenario", default="screens", help="screens, checkin-touch, or both (comma-separated)")
    p.add_argument("--size", default="1280x800")
    p.add_argument("--appointment", default="AP1001", help="checked in by the screens scenario")
    p.add_argument("--touch-appointment", default=None, help="checked in by touches (default: --appointment)")
    p.add_argument("--languages", default="zh,en")
    p.add_argument("--modes", default="normal,large")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(list(sys.argv[1:] if argv is None else argv))
    width, height = (int(v) for v in args.size.lower().split("x"))
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    from kivy.config import Config

    Config.set("graphics", "width", str(width))
    Config.set("graphics", "height", str(height))
    Config.set("graphics", "resizable", "0")
    Config.set("kivy", "exit_on_escape", "0")
    Config.set("input", "mouse", "mouse,disable_multitouch")

    from kivy.clock import Clock
    from kivy.core.window import Window

    from hardware.report_printer import FakeReportPrinter
    from hardware.speech import FakeSpeaker
    from hardware.ticket_printer import FakeTicketPrinter
    from kiosk.clock import KivyScheduler
    from kiosk.payment_journal import PaymentJournal
    from kiosk.server_client import KioskServerClient
    from kiosk.ui.app import KioskApp
    from kiosk.ui.theme import BODY_FONT
    from kiosk.ui.widgets import Label, measure
    from kiosk.viewmodels import KioskSettings, KioskViewModel

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    printer, reports, speaker = FakeTicketPrinter(), FakeReportPrinter(), FakeSpeaker()
    journal = PaymentJournal(Path(tempfile.mkdtemp(prefix="kiosk-journal-")) / "journal.sqlite")
    vm = KioskViewModel(client=KioskServerClient(args.server, token=args.token), printer=printer, speaker=speaker,
                        report_printer=reports, journal=journal, clock=KivyScheduler(),
                        settings=KioskSettings(device_id="kiosk-driver", idle_timeout=600))
    app = KioskApp(vm)
    report: dict = {"shots": [], "errors": [], "size": [width, height]}
    steps: list = []

    def no_offer() -> None:  # the 65+ offer step (its own shot): answered No where a flow is walked
        if vm.screen == "access":
            vm.decline_accessibility()

    def shot(name: str) -> None:
        steps.append(("shot", name))

    def do(fn) -> None:
        steps.append(("do", fn))

    # ---------------------------------------------------------------- scenarios
    scenarios = args.scenario.split(",")
    if "screens" in scenarios:
        patients = ["YB1001", "YB1002", "YB1003", "YB1006"]
        combos = [(lang, mode) for lang in args.languages.split(",") for mode in args.modes.split(",")]
        for i, (lang, mode) in enumerate(combos):
            prefix = f"{lang}-{mode}"
            card = patients[i % len(patients)]
            seq = [0]

            def name(what: str, prefix=prefix, seq=seq) -> str:
                seq[0] += 1
                return f"{prefix}-{seq[0]:02d}-{what}"

            def setup(lang=lang, mode=mode):
                vm.end_session()
                vm.set_language(lang)
                vm.large_text = mode == "large"
                printer.refill_paper()
            do(setup)
            shot(name("home"))
            do(lambda: (vm.home.choose("checkin"), [vm.checkin.press(k) for k in "9999"], vm.checkin.press("ok")))
            shot(name("checkin-wrong-number"))
            do(lambda: (vm.end_session(), vm.home.choose("payment")))
            shot(name("identify"))
            do(lambda: (vm.identify.use_phone(), [vm.identify.press(k) for k in "13800000001"]))
            shot(name("identify-phone"))
            do(lambda: (vm.identify.press("ok"), [vm.identify.press(k) for k in "1234"]))
            shot(name("identify-last4"))
            do(lambda card=card: (vm.end_session(), vm.home.choose("payment"), vm.on_card(card), no_offer()))
            shot(name("payment-bills"))
            do(lambda: vm.payment.choose("qr"))
            shot(name("payment-qr"))
            do(lambda: (vm.payment.cancel(), vm.payment.choose("insurance_card")))
            shot(name("payment-insert-card"))
            do(lambda card=card: vm.on_card(card))
            shot(name("payment-paid"))
            do(lambda: (vm.end_session(), vm.home.choose("reports"), vm.on_card("YB1001"), no_offer()))
            shot(name("reports"))
            do(lambda: (vm.end_session(), vm.home.choose("checkin"), vm.on_card("YB1002")))
            shot(name("access-offer"))
            do(lambda: (vm.decline_accessibility(), vm.appointments.select("AP1002")))
            shot(name("appointments-early"))
            do(lambda: (setattr(vm, "idle_remaining", 12), setattr(vm, "idle_warning", True)))
            shot(name("idle-warning"))
            do(lambda: (vm.end_session(), vm.home.choose("register"), vm.on_card("YB1005"), no_offer()))
            shot(name("register-departments"))
            do(lambda: vm.register.pick_department("pediatrics"))
            shot(name("register-slots"))
            do(lambda: (vm.back(), vm.go("register"), vm.register.start_guide()))
            shot(name("guide-areas"))
            do(lambda: (vm.register.pick_area("chest"), vm.register.toggle_symptom("chest_pain"),
                        vm.register.toggle_symptom("breathless")))
            shot(name("guide-symptoms"))
            do(lambda: vm.register.finish_guide())
            shot(name("guide-red-flag"))
            do(lambda: (vm.end_session(), vm.checkin.type_code(args.appointment), vm.go("checkin"), vm.checkin.submit()))
            shot(name("ticket"))
            do(lambda: (vm.end_session(), printer.simulate_paper_out(), vm.checkin.type_code(args.appointment),
                        vm.go("checkin"), vm.checkin.submit()))
            shot(name("ticket-paper-out"))
            do(lambda: (printer.refill_paper(), vm.end_session(), vm.home.choose("help")))
            shot(name("help"))
            do(lambda: vm.help.call_staff())
            shot(name("help-called"))
            do(lambda: (vm.end_session(), vm.home.choose("register"), vm.on_card("YB1005"), no_offer(),
                        vm.register.start_guide(), vm.register.pick_area("chest"),
                        vm.register.toggle_symptom("chest_pain"), vm.register.finish_guide()))
            shot(name("chest-pain-nurse"))
    if "long-press" in scenarios:  # a finger held on the glass (over a button) for 2.5 s starts voice
        from kivy.tests.common import UnitTestTouch

        held = {}

        def finger_down() -> None:
            button = app.root.ids.screens.current_screen.body.children[-2].children[-1]  # Home's first service
            x, y = button.to_window(*button.center)
            held["touch"] = UnitTestTouch(x, y)
            held["touch"].touch_down()
            report["long_press_on"] = button.text

        # Voice and large text off, as for anyone arriving; Home drawn before the finger comes.
        do(lambda: (vm.end_session(timed_out=True), vm.set_language("zh", touched=False)))
        do(finger_down)
        steps.append(("wait", 2.5))
        do(lambda: held["touch"].touch_up())
        do(lambda: report.update(long_press={"voice": vm.voice, "screen": vm.screen,
                                             "spoken": list(vm.spoken_log[-1:])}))
    if "checkin-touch" in scenarios:  # press the real keypad buttons of the window, as a finger would
        from kivy.uix.button import Button

        digits = (args.touch_appointment or args.appointment).upper().removeprefix("AP")
        report["touches"] = []

        def tap(label: str) -> None:
            screen = app.screens[vm.screen]
            button = next(b for b in screen.walk() if isinstance(b, Button) and b.text == label)
            button.dispatch("on_press")
            button.dispatch("on_release")
            report["touches"].append(label)

        do(lambda: (vm.end_session(), printer.refill_paper(), vm.set_language("en"), setattr(vm, "large_text", False)))
        do(lambda: tap(vm.tr("Check in")))  # a step of its own: Home must have been drawn first
        for digit in digits:
            do(lambda d=digit: tap(d))
        shot("touch-checkin-keypad")
        do(lambda: tap(vm.tr("OK")))
        shot("touch-ticket")

    if "booking" in scenarios:  # booking a future appointment, each step, zh/en x normal/large (tests/test_booking_windows.py)
        combos = [(lang, mode) for lang in args.languages.split(",") for mode in args.modes.split(",")]
        for lang, mode in combos:
            prefix = f"booking-{lang}-{mode}"

            def bsetup(lang=lang, mode=mode):
                vm.end_session()
                vm.set_language(lang)
                vm.large_text = mode == "large"
            do(bsetup)
            do(lambda: (vm.home.choose("booking"), vm.on_card("YB1004")))
            shot(f"{prefix}-1-departments")
            do(lambda: vm.booking.choose_department("surgery"))
            shot(f"{prefix}-2-day")
            do(lambda: vm.booking.choose_day(vm.booking.days[1]))
            shot(f"{prefix}-3-slot")
            do(lambda: vm.booking.choose_slot(vm.booking.slots[0]["slot_id"]))
            shot(f"{prefix}-4-confirm")
            do(lambda: vm.booking.confirm())
            shot(f"{prefix}-5-booked")
            do(lambda: (vm.end_session(), vm.home.choose("booking"), vm.on_card("YB1004")))
            shot(f"{prefix}-6-with-bookings")
            do(lambda: (vm.booking.cancel(vm.booking.bookings[-1]["appointment_no"])))
            shot(f"{prefix}-7-cancelled")
            do(lambda: (vm.end_session(), vm.home.choose("reports"), vm.on_card("YB1001"), no_offer()))
            shot(f"{prefix}-8-reports-not-ready")

    # ---------------------------------------------------------------- runner
    started = time.monotonic()

    def record_shot(name: str) -> None:
        path = out / f"{name}.png"
        t0 = time.perf_counter()
        written = Window.screenshot(name=str(out / f"{name}.png"))
        report.setdefault("screenshot_s", []).append(time.perf_counter() - t0)
        if written and Path(written) != path:
            Path(written).replace(path)
        root = app.root
        problems = measure(root, Window.size, target=app.target, min_font=BODY_FONT * app.scale,
                           content=root.ids.screens)
        countdown, large = root.ids.countdown, root.ids.large
        prompt_sizes = [w.font_size for w in root.ids.screens.current_screen.walk()
                        if isinstance(w, Label) and w.text]
        report["shots"].append({"name": name, "path": str(path), "screen": vm.screen, "language": vm.language,
                                "large": vm.large_text, "problems": problems,
                                "countdown": countdown.text, "idle_remaining": vm.idle_remaining,
                                "texts": [w.text for w in root.ids.screens.current_screen.walk()
                                          if isinstance(w, Label) and w.text],
                                "large_button": [large.width, large.height] if large.opacity else None,
                                "countdown_lines": round(countdown.texture_size[1] / (countdown.font_size * 1.2)),
                                "max_font": max(prompt_sizes, default=0), "min_font": min(prompt_sizes, default=0),
                                "prompt": vm.current.prompt, "error": vm.current.error,
                                "print_problem": vm.ticket.print_problem if vm.screen == "ticket" else "",
                                "floor_map": any(type(w).__name__ == "FloorMap"
                                                 for w in root.ids.screens.current_screen.walk())})

    def run_next(_dt=None) -> None:
        if not steps:
            finish()
            return
        kind, arg = steps.pop(0)
        try:
            if kind == "do":
                arg()
            elif kind == "shot":
                record_shot(arg)
        except Exception as exc:  # recorded for the test, then carry on with the next step
            import traceback

            report["errors"].append(f"{kind} {getattr(arg, '__name__', arg)}: {exc!r}\n{traceback.format_exc()}")
        # Let the view-model's changes render: a few frames before the next step.
        pause = arg if kind == "wait" else 0.05
        Clock.schedule_once(lambda _dt: Clock.schedule_once(lambda _dt: Clock.schedule_once(run_next, 0), 0), pause)

    def finish() -> None:
        report["seconds"] = time.monotonic() - started
        report["printed"] = [job.text for job in printer.jobs]
        report["spoken"] = list(vm.spoken_log)
        report["final_screen"] = vm.screen
        report["ticket_number"] = vm.ticket.number
        report["ticket_printed"] = vm.ticket.printed
        Path(args.report).write_text(json.dumps(report, ensure_ascii=False, indent=1, default=str))
        app.stop()

    Clock.schedule_once(run_next, 0.3)
    app.run()
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
