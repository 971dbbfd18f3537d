"""The kiosk's screens: each draws its flow view-model's state and sends touches back to it.

Screens hold no state of their own: ``render()`` rebuilds the content from the view-model
whenever one of its properties changes (coalesced to once per frame), so what is on the
glass is always what the view-model says, in the current language and text size.
"""
from __future__ import annotations

from kivy.clock import Clock
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.screenmanager import Screen
from kivy.uix.scrollview import ScrollView

from kiosk.ui.widgets import BigButton, Centered, Grid, QrCode, Row, TextLabel, app, keypad


class FlowScreen(Screen):
    """Base: a scrollable column of content rebuilt from ``flow`` (a FlowViewModel)."""

    flow_name = ""

    def __init__(self, kiosk, **kw) -> None:
        super().__init__(name=self.flow_name, **kw)
        self.kiosk = kiosk
        self.flow = kiosk.flows[self.flow_name]
        self.scroll = ScrollView(do_scroll_x=False, bar_width=10)
        self.body = BoxLayout(orientation="vertical", size_hint_y=None)
        self.body.bind(minimum_height=self.body.setter("height"))
        self.scroll.add_widget(self.body)
        self.add_widget(self.scroll)
        self._trigger = Clock.create_trigger(lambda _dt: self.render(), -1)
        self.flow.bind(**{name: self._changed for name in self.flow.properties()})
        kiosk.bind(language=self._changed, large_text=self._changed, offer_accessibility=self._changed,
                   focus_index=self._changed, voice=self._changed)

    def _changed(self, *_):
        if self.manager is not None and self.manager.current == self.name:
            self._trigger()

    def on_pre_enter(self, *_):
        self.render()

    # -- building blocks -----------------------------------------------------------------------
    @property
    def tr(self):
        return self.kiosk.tr

    def render(self) -> None:
        a = app()
        self.body.clear_widgets()
        self.body.padding = (24 * a.scale, 16 * a.scale)
        self.body.spacing = 14 * a.scale
        self._option_no = 0
        if self.kiosk.offer_accessibility:
            self.add(TextLabel(self.tr("Would you like larger text and spoken guidance?"), size=1.1, bold=True))
            self.add(Row([BigButton(self.tr("Yes, please"), self.kiosk.accept_accessibility),
                          BigButton(self.tr("No, thank you"), self.kiosk.decline_accessibility, kind="secondary")]))
        if self.flow.error:  # first, so it is seen without scrolling even in large text
            self.add(TextLabel(self.flow.error, color=a.palette.danger, bold=True, size=1.1))
        self.build()
        self.scroll.scroll_y = 1

    def build(self) -> None:
        raise NotImplementedError

    def add(self, widget) -> None:
        self.body.add_widget(widget)

    def prompt(self, text: str | None = None, size: float = 1.2) -> None:
        self.add(TextLabel(text if text is not None else self.flow.prompt, size=size, bold=True))

    def option(self, text: str, on_tap, **kw) -> BigButton:
        """A button that is also a voice-mode option (numbered in the order of ``voice_options``)."""
        focused = self.kiosk.voice and self._option_no == self.kiosk.focus_index
        self._option_no += 1
        return BigButton(text, on_tap, focused=focused, **kw)

    def cols(self, normal: int) -> int:
        return 1 if self.kiosk.large_text else normal


class HomeScreen(FlowScreen):
    flow_name = "home"

    def build(self) -> None:
        from kiosk.viewmodels.home import SERVICES

        self.prompt(size=1.3)
        buttons = [self.option(self.tr(label), lambda s=s: self.flow.choose(s), size=1.3,
                               kind="danger" if s == "help" else "primary") for s, label in SERVICES]
        self.add(Grid(buttons, cols=self.cols(2)))


class CheckInScreen(FlowScreen):
    flow_name = "checkin"

    def build(self) -> None:
        a = app()
        self.prompt()
        shown = self.flow.code or self.tr("AP____")
        self.add(TextLabel(shown, size=2.2, bold=True, halign="center", color=a.palette.primary
                           if not self.kiosk.large_text else a.palette.on_bar))
        self.add(keypad(["1", "2", "3", "4", "5", "6", "7", "8", "9", "del", "0", "ok"],
                        {"del": self.tr("Delete"), "ok": self.tr("OK")}, self.flow.press))
        if self.flow.busy:
            self.add(TextLabel(self.tr("Checking in...")))


class IdentifyScreen(FlowScreen):
    flow_name = "identify"

    def build(self) -> None:
        self.prompt()
        if self.flow.stage == "choose":
            self.add(TextLabel(self.tr("Hold the QR code of your appointment slip under the scanner."), size=1.0))
            self.add(TextLabel(self.tr("Or insert your ID card or insurance card into the card slot."), size=1.0))
            self.add(self.option(self.tr("Use my phone number"), self.flow.use_phone, size=1.2))
            return
        a = app()
        entry = self.flow.phone if self.flow.stage == "phone" else self.flow.last4
        self.add(TextLabel(entry or "_", size=2.0, bold=True, halign="center",
                           color=a.palette.primary if not self.kiosk.large_text else a.palette.on_bar))
        keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "del", "0", "ok"]
        if self.flow.stage == "last4":
            keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "X", "0", "del", "ok"]
        self.add(keypad(keys, {"del": self.tr("Delete"), "ok": self.tr("OK")}, self.flow.press))


class AppointmentsScreen(FlowScreen):
    flow_name = "appointments"

    def build(self) -> None:
        self.prompt()
        vm = self.flow
        if vm.can_check_in:
            self.add(self.option(self.tr("Check in"), vm.confirm, size=1.4))
        elif len(vm.appointments) > 1 or vm.selected is None:
            for a in vm.appointments:
                label = self.tr("{dept}, {slot}", dept=self.tr.pick(a.department_name),
                                slot=self.kiosk.format_time(a.slot_start))
                self.add(self.option(label, lambda no=a.appointment_no: vm.select(no), kind="secondary"))
        if vm.guidance and not vm.can_check_in:
            self.add(TextLabel(vm.guidance))
        if not vm.appointments and not vm.busy:
            self.add(BigButton(self.tr("Register (no appointment)"), lambda: self.kiosk.go("register")))


class RegisterScreen(FlowScreen):
    flow_name = "register"

    def build(self) -> None:
        vm, tr = self.flow, self.tr
        a = app()
        if vm.stage == "emergency":
            self.add(TextLabel(tr("Emergency"), size=2.0, bold=True, color=a.palette.danger))
            self.prompt(vm.advice, size=1.3)
            self.add(TextLabel(tr("Emergency department: follow the red line on the floor.")))
            return
        self.prompt()
        if vm.stage == "departments":
            buttons = [self.option(tr.pick(d.name), lambda d=d.department: vm.pick_department(d), size=1.2)
                       for d in vm.departments]
            self.add(Grid(buttons, cols=self.cols(3)))
            self.add(self.option(tr("Help me choose"), vm.start_guide, kind="secondary"))
        elif vm.stage == "slots" and vm.department is not None:
            buttons = [self.option(tr("{start} to {end}", start=self.kiosk.format_time(s.start),
                                      end=self.kiosk.format_time(s.end)), lambda s=s.start: vm.pick_slot(s))
                       for s in vm.department.slots if s.available > 0]
            self.add(Grid(buttons, cols=self.cols(2)))
        elif vm.stage == "guide_area":
            buttons = [self.option(tr.pick(ar.name), lambda i=ar.id: vm.pick_area(i), size=1.2)
                       for ar in self.kiosk.guide.areas]
            self.add(Grid(buttons, cols=self.cols(3)))
        elif vm.stage == "guide_symptoms":
            buttons = [self.option(("✓ " if s.id in vm.picked else "") + tr.pick(s.name),
                                   lambda i=s.id: vm.toggle_symptom(i),
                                   kind="primary" if s.id in vm.picked else "secondary")
                       for s in self.kiosk.guide.symptoms_in(vm.area)]
            self.add(Grid(buttons, cols=self.cols(2)))
            if vm.picked:
                self.add(TextLabel(tr("Chosen: {names}", names=", ".join(vm.symptom_name(s) for s in vm.picked))))
            self.add(Row([self.option(tr("Done"), vm.finish_guide),
                          BigButton(tr("Other body area"), vm.more_areas, kind="secondary")]))
        elif vm.stage == "advice":
            self.add(self.option(tr("Continue"), vm.accept_advice, size=1.2))


class PaymentScreen(FlowScreen):
    flow_name = "payment"

    def build(self) -> None:
        from kiosk.viewmodels.payment import money

        vm, tr = self.flow, self.tr
        a = app()
        if vm.state == "bills":
            self.add(TextLabel(tr("Your bills"), size=1.2, bold=True))
            for bill in vm.bills.bills:
                for item in bill.items:
                    self.add(Row([TextLabel(tr.pick(item.description)),
                                  TextLabel(tr("{amount}, insurance {ins}", amount=money(item.amount),
                                               ins=money(item.insurance_covered)), halign="right")]))
            self.prompt(vm.summary, size=1.2)
            self.add(TextLabel(tr("Choose how to pay."), bold=True))
            buttons = [self.option(vm.method_label(m), lambda m=m: vm.choose(m), size=1.1) for m in vm.methods]
            self.add(Grid(buttons, cols=self.cols(2)))
            return
        self.prompt()
        if vm.state == "qr":
            side = min(320 * a.scale, 420)
            self.add(Centered(QrCode(vm.qr_payload, side=side)))
            self.add(TextLabel(tr("{s} seconds left", s=int(vm.countdown)), size=1.3, bold=True, halign="center"))
            self.add(self.option(tr("Cancel"), vm.cancel, kind="secondary"))
        elif vm.state in ("insert_card", "terminal"):
            self.add(self.option(tr("Cancel"), vm.cancel, kind="secondary"))
        elif vm.state == "confirm_later":
            self.add(Row([self.option(tr("Confirm"), vm.confirm_pay_later),
                          self.option(tr("Cancel"), vm.cancel, kind="secondary")]))
        elif vm.state in ("paid", "failed", "nothing"):
            if vm.receipt_problem:
                self.add(TextLabel(vm.receipt_problem, color=a.palette.danger, bold=True))
            self.add(self.option(tr("Finish"), vm.finish))


class ReportsScreen(FlowScreen):
    flow_name = "reports"

    def build(self) -> None:
        vm, tr = self.flow, self.tr
        if vm.status_text:
            self.prompt(vm.status_text)
        else:
            self.prompt(tr("Your reports"))
        for report in vm.reports:
            self.add(TextLabel(vm.line(report), size=1.1))
        if vm.printable:
            self.add(self.option(tr("Print {n} reports", n=len(vm.printable)), vm.print_ready, size=1.3))
        self.add(self.option(tr("Finish"), vm.finish, kind="secondary"))


class TicketScreen(FlowScreen):
    flow_name = "ticket"

    def build(self) -> None:
        vm, tr = self.flow, self.tr
        a = app()
        if vm.ticket is None:
            return
        if vm.ticket.already_checked_in:
            self.add(TextLabel(tr("You had already checked in; this is your ticket."), bold=True))
        self.add(TextLabel(tr("Your number"), size=1.1, halign="center"))
        self.add(TextLabel(vm.number, size=4.0, bold=True, halign="center"))
        self.add(TextLabel(vm.room_text, size=1.4, bold=True, halign="center"))
        self.add(TextLabel(vm.position_text + ("  ·  " + vm.wait_text if vm.wait_text else ""), size=1.2, halign="center"))
        self.add(Centered(QrCode(vm.qr_text, side=min(200 * a.scale, 340))))
        if vm.print_problem:
            self.add(TextLabel(vm.print_problem, color=a.palette.danger, bold=True, size=1.1))
        elif vm.printed:
            self.add(TextLabel(tr("Please take your ticket from the slot below."), halign="center"))
        self.add(TextLabel(tr("Scan the QR code with your phone to follow the queue."), halign="center"))
        self.add(self.option(tr("Hear my number again"), lambda: self.kiosk.say(vm.prompt), kind="secondary")
                 if self.kiosk.voice else self.option(tr("Finish"), vm.done))
        if self.kiosk.voice:
            self.add(self.option(tr("Finish"), vm.done))


class HelpScreen(FlowScreen):
    flow_name = "help"

    def build(self) -> None:
        vm, tr = self.flow, self.tr
        self.prompt()
        if not vm.called:
            self.add(self.option(tr("Call staff"), vm.call_staff, kind="danger", size=1.4))
        self.add(TextLabel(tr("Staffed desk"), bold=True))
        self.add(TextLabel(vm.directions))


SCREENS = [HomeScreen, CheckInScreen, IdentifyScreen, AppointmentsScreen, RegisterScreen, PaymentScreen,
           ReportsScreen, TicketScreen, HelpScreen]
