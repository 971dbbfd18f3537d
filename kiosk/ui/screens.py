"""The kiosk's screens: each draws its flow view-model's state and sends touches back to it.

Screens hold no state of their own: ``render()`` rebuilds the content from the view-model
whenever one of its properties changes (coalesced to once per frame), so what is on the
glass is always what the view-model says, in the current language and text size.
"""
from __future__ import annotations

import math

from kivy.clock import Clock
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.screenmanager import Screen
from kivy.uix.widget import Widget

from kiosk.ui.widgets import (BigButton, CardSlotHint, Centered, Column, Columns, FloorMap, Grid, QrCode, Row, TextLabel, app,
                               keypad)


class FlowScreen(Screen):
    """Base: a column of content rebuilt from ``flow`` (a FlowViewModel) that fits the screen: no
    scrolling; long lists are paged with large Previous / Next buttons."""

    flow_name = ""

    def __init__(self, kiosk, **kw) -> None:
        super().__init__(name=self.flow_name, **kw)
        self.kiosk = kiosk
        self.flow = kiosk.flows[self.flow_name]
        self.body = BoxLayout(orientation="vertical")
        self.add_widget(self.body)
        self._trigger = Clock.create_trigger(lambda _dt: self.render(), -1)
        self.flow.bind(**{name: self._changed for name in self.flow.properties()})
        kiosk.bind(language=self._changed, large_text=self._changed, focus_index=self._changed,
                   voice=self._changed, page_turns=self._changed)

    def _changed(self, *_):
        if self.manager is not None and self.manager.current == self.name:
            self._trigger()

    def on_pre_enter(self, *_):
        self.render()

    # -- building blocks -----------------------------------------------------------------------
    @property
    def tr(self):
        return self.kiosk.tr

    @property
    def large(self) -> bool:
        return bool(self.kiosk.large_text)

    def render(self) -> None:
        a = app()
        self.body.clear_widgets()
        self.body.padding = (24 * a.scale, 8)
        self.body.spacing = 10 * a.scale
        self._option_no = 0
        if self.flow.error and not self.error_in_column:  # first, so it is the first thing read
            self.add(self.error_label())
        self.build()
        self.body.add_widget(Widget())  # takes the rest: content sits at the top

    error_in_column = False  # keypad screens show the error above the typed entry instead

    def error_label(self) -> TextLabel:
        return TextLabel(self.flow.error, color=app().palette.danger, bold=True)

    def build(self) -> None:
        raise NotImplementedError

    def add(self, widget) -> None:
        self.body.add_widget(widget)

    def prompt(self, text: str | None = None, size: float = 1.1) -> TextLabel:
        label = TextLabel(text if text is not None else self.flow.prompt, size=size, bold=True)
        self.add(label)
        return label

    def option(self, text: str, on_tap, **kw) -> BigButton:
        """A button that is also a voice-mode option (numbered in the order of ``voice_options``)."""
        focused = self.kiosk.voice and self._option_no == self.kiosk.focus_index
        self._option_no += 1
        return BigButton(text, on_tap, focused=focused, **kw)

    def cols(self, normal: int, large: int = 2) -> int:
        return large if self.large else normal

    def paged_options(self, key: str, specs: list[tuple], per_page: int) -> tuple[list[BigButton], list[BigButton]]:
        """Option buttons of one page of ``specs`` ((label, action, kw) each), and the pager buttons
        (none when everything fits on one page). In voice mode the page follows the focused option."""
        base, n = self._option_no, len(specs)
        pages = max(1, math.ceil(n / per_page))
        page = self.kiosk.page(key, pages)
        if self.kiosk.voice and base <= self.kiosk.focus_index < base + n:
            page = (self.kiosk.focus_index - base) // per_page
        first = page * per_page
        self._option_no = base + first
        buttons = [self.option(label, action, **kw) for label, action, kw in specs[first:first + per_page]]
        self._option_no = base + n
        return buttons, self.pager(key, page, pages)

    def paged_items(self, key: str, items: list, per_page: int) -> tuple[list, list[BigButton]]:
        """One page of plain ``items`` and its pager buttons."""
        pages = max(1, math.ceil(len(items) / per_page))
        page = self.kiosk.page(key, pages)
        return items[page * per_page:(page + 1) * per_page], self.pager(key, page, pages)

    def pager(self, key: str, page: int, pages: int) -> list[BigButton]:
        if pages <= 1:
            return []
        tr = self.tr
        return [BigButton(tr("Previous page"), lambda: self.kiosk.turn_page(key, -1, pages), kind="secondary",
                          enabled=page > 0),
                BigButton(tr("Next page ({page}/{pages})", page=page + 1, pages=pages),
                          lambda: self.kiosk.turn_page(key, 1, pages), kind="secondary", enabled=page < pages - 1)]

    def entry_pad(self, shown: str, keys: list[str], on_key, *, ok_left: bool = False) -> None:
        """Prompt and what was typed on the left, the number pad on the right (it fits in large text)."""
        a = app()
        left = [self.error_label()] if self.flow.error else []
        left += [TextLabel(self.flow.prompt, size=1.1, bold=True),
                 TextLabel(shown, size=1.6, bold=True, halign="center",
                          color=a.palette.primary if not self.large else a.palette.on_bar)]
        if ok_left:
            left.append(BigButton(self.tr("OK"), lambda: on_key("ok"), size=1.2))
        labels = {"del": self.tr("Delete"), "ok": self.tr("OK")}
        self.left_extra(left)
        self.add(Columns(left, [keypad(keys, labels, on_key)], ratio=0.45))

    def left_extra(self, left: list) -> None:
        """Screens add notes under the typed entry."""


class HomeScreen(FlowScreen):
    flow_name = "home"

    def build(self) -> None:
        from kiosk.viewmodels.home import SERVICES

        size = 1.0 if self.large else 1.2  # large text is 1.6x already: five services fit on three rows
        self.prompt(size=size)
        buttons = [self.option(self.tr(label), lambda s=s: self.flow.choose(s), size=size,
                               kind="danger" if s == "help" else "primary") for s, label in SERVICES]
        self.add(Grid(buttons, cols=2))


class AccessOfferScreen(FlowScreen):
    flow_name = "access"

    def build(self) -> None:
        self.prompt(size=1.4)
        self.add(Row([self.option(self.tr("Yes, please"), self.flow.accept, size=1.3),
                      self.option(self.tr("No, thank you"), self.flow.decline, kind="secondary", size=1.3)]))


class CheckInScreen(FlowScreen):
    flow_name = "checkin"
    error_in_column = True

    def build(self) -> None:
        self.entry_pad(self.flow.code or self.tr("AP____"),
                       ["1", "2", "3", "4", "5", "6", "7", "8", "9", "del", "0", "ok"], self.flow.press)

    def left_extra(self, left: list) -> None:
        if self.flow.busy:
            left.append(TextLabel(self.tr("Checking in...")))
            return
        if self.flow.error and self.large:
            return  # in large text the message takes the room; Back leads to the other ways in
        # No slip at hand: the card (where the slot is, drawn) or the phone number.
        left.append(CardSlotHint(self.tr.pick(self.kiosk.settings.card_slot)))
        left.append(BigButton(self.tr("Use my phone number"), self.flow.use_phone, kind="secondary"))


class IdentifyScreen(FlowScreen):
    flow_name = "identify"

    @property
    def error_in_column(self) -> bool:
        return self.flow.stage != "choose"

    def build(self) -> None:
        if self.flow.stage == "choose":
            self.prompt()
            self.add(TextLabel(self.tr("Hold the QR code of your appointment slip under the scanner.")))
            self.add(TextLabel(self.tr("Or insert your ID card or insurance card into the card slot.")))
            self.add(self.option(self.tr("Use my phone number"), self.flow.use_phone, size=1.1))
            return
        if self.flow.stage == "phone":
            self.entry_pad(self.flow.phone or "_", ["1", "2", "3", "4", "5", "6", "7", "8", "9", "del", "0", "ok"],
                           self.flow.press)
        else:
            self.entry_pad(self.flow.last4 or "_", ["1", "2", "3", "4", "5", "6", "7", "8", "9", "X", "0", "del"],
                           self.flow.press, ok_left=True)


class AppointmentsScreen(FlowScreen):
    flow_name = "appointments"

    def build(self) -> None:
        self.prompt()
        vm = self.flow
        if vm.can_check_in:
            self.add(self.option(self.tr("Check in"), vm.confirm, size=1.3))
        elif len(vm.appointments) > 1 or vm.selected is None:
            specs = [(self.tr("{dept}, {slot}", dept=self.tr.pick(a.department_name),
                              slot=self.kiosk.format_time(a.slot_start)),
                      lambda no=a.appointment_no: vm.select(no), {"kind": "secondary"}) for a in vm.appointments]
            buttons, pager = self.paged_options("appointments", specs, 4 if not self.large else 2)
            self.add(Grid(buttons, cols=self.cols(2, 1)))
            if pager:
                self.add(Row(pager))
        # The early / late guidance is part of the prompt above: said once, not twice.
        if not vm.appointments and not vm.busy:
            self.add(BigButton(self.tr("Register (no appointment)"), lambda: self.kiosk.go("register")))


class RegisterScreen(FlowScreen):
    flow_name = "register"

    def choices(self, key: str, specs: list[tuple], normal_cols: int = 3, tail: list | None = None) -> None:
        """A grid of choices that fits: three rows when everything fits on them, else two and a pager."""
        cols = self.cols(normal_cols)
        rows = 3 if len(specs) <= 3 * cols else 2
        buttons, pager = self.paged_options(key, specs, rows * cols)
        self.add(Grid(buttons, cols=cols))
        if pager or tail:
            self.add(Row(pager + (tail or [])))

    def build(self) -> None:
        vm, tr = self.flow, self.tr
        a = app()
        if vm.stage == "emergency":
            self.add(TextLabel(tr("Please stay here") if vm.nurse_comes else tr("Emergency"), size=1.8, bold=True,
                               color=a.palette.danger))
            self.prompt(vm.advice, size=1.2)
            self.add(TextLabel(vm.emergency_direction, bold=vm.nurse_comes))
            return
        self.prompt()
        if vm.stage == "departments":
            specs = [(tr.pick(d.name), lambda d=d.department: vm.pick_department(d), {"size": 1.1})
                     for d in vm.departments] + [(tr("Help me choose"), vm.start_guide, {"kind": "secondary"})]
            self.choices("departments", specs)
        elif vm.stage == "slots" and vm.department is not None:
            specs = [(tr("{start} to {end}", start=self.kiosk.format_time(s.start), end=self.kiosk.format_time(s.end)),
                      lambda s=s.start: vm.pick_slot(s), {}) for s in vm.department.slots if s.available > 0]
            self.choices("slots", specs)
        elif vm.stage == "guide_area":
            specs = [(tr.pick(ar.name), lambda i=ar.id: vm.pick_area(i), {"size": 1.1}) for ar in self.kiosk.guide.areas]
            self.choices("areas", specs)
        elif vm.stage == "guide_symptoms":
            specs = [(("✓ " if s.id in vm.picked else "") + tr.pick(s.name), lambda i=s.id: vm.toggle_symptom(i),
                      {"kind": "primary" if s.id in vm.picked else "secondary"})
                     for s in self.kiosk.guide.symptoms_in(vm.area)]
            cols = self.cols(3)
            buttons, pager = self.paged_options("symptoms:" + vm.area, specs, 2 * cols)
            self.add(Grid(buttons, cols=cols))
            # The chosen ones carry a tick (and voice mode says "chosen"): no extra line needed.
            self.add(Row(pager + [self.option(tr("Done"), vm.finish_guide),
                                  BigButton(tr("Other body area"), vm.more_areas, kind="secondary")]))
        elif vm.stage == "advice":
            self.add(self.option(tr("Continue"), vm.accept_advice, size=1.2))


class PaymentScreen(FlowScreen):
    flow_name = "payment"

    def build(self) -> None:
        from kiosk.viewmodels.payment import money

        vm, tr = self.flow, self.tr
        a = app()
        self.prompt()
        if vm.state == "bills":
            items = [item for bill in vm.bills.bills for item in bill.items]
            page, pager = self.paged_items("bill-items", items, 2 if self.large else 4)
            lines = [TextLabel(tr("{item}: {amount}, insurance {ins}", item=tr.pick(item.description),
                                  amount=money(item.amount), ins=money(item.insurance_covered))) for item in page]
            self.add(Columns(lines, pager, ratio=0.6) if pager else Column(lines))
            buttons = [self.option(vm.method_label(m), lambda m=m: vm.choose(m)) for m in vm.methods]
            # Five methods (pay later too) in two large columns would push the bills off the glass.
            self.add(Grid(buttons, cols=self.cols(len(buttons) if len(buttons) <= 4 else 3, 3 if len(buttons) > 4 else 2)))
            return
        if vm.state == "qr":
            side = 380 if self.large else 320
            left = [TextLabel(tr("{s} seconds left", s=int(vm.countdown)), size=1.3, bold=True),
                    self.option(tr("Cancel"), vm.cancel, kind="secondary")]
            self.add(Columns(left, [Centered(QrCode(vm.qr_payload, side=side))], ratio=0.55))
        elif vm.state in ("insert_card", "scan_code", "terminal"):
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
        self.prompt(vm.status_text or tr("Your reports"))
        page, pager = self.paged_items("reports", list(vm.reports), 2 if self.large else 4)
        lines = [TextLabel(vm.line(report)) for report in page]
        self.add(Columns(lines, pager, ratio=0.6) if pager else Column(lines))
        if vm.not_ready_text():  # which reports are still at the lab, and when, plus "see them on your phone"
            self.add(TextLabel(vm.not_ready_text()))
        buttons = []
        if vm.printable:
            buttons.append(self.option(tr.ngettext("Print {n} report", "Print {n} reports", len(vm.printable)),
                                       vm.print_ready, size=1.2))
        buttons.append(self.option(tr("Finish"), vm.finish, kind="secondary"))
        self.add(Row(buttons))


class TicketScreen(FlowScreen):
    flow_name = "ticket"

    def build(self) -> None:
        vm, tr = self.flow, self.tr
        a = app()
        if vm.ticket is None:
            return
        heading = tr("You had already checked in; this is your ticket.") if vm.ticket.already_checked_in \
            else tr("Your number")
        left = [TextLabel(heading, halign="center", bold=vm.ticket.already_checked_in),
                TextLabel(vm.number, size=2.2, bold=True, halign="center"),
                TextLabel(vm.room_text, size=1.1, bold=True, halign="center"),
                TextLabel(vm.position_text + ("  ·  " + vm.wait_text if vm.wait_text else ""), halign="center")]
        # The hospital's floor map of that place, under the words saying where it is. Not in large text:
        # the number, the place and the QR code fill the glass there, and a map small enough to fit is unreadable.
        if vm.floor_map and not self.large:
            left.insert(3, FloorMap(vm.floor_map, height=170 * a.scale))
        if vm.print_problem:
            left.append(TextLabel(vm.print_problem, color=a.palette.danger, bold=True))
        elif vm.printed:
            left.append(TextLabel(tr("Please take your ticket from the slot below."), halign="center"))
        right = [Centered(QrCode(vm.qr_text, side=200))]
        if not vm.print_problem:  # the problem sentence already says what the QR code is for
            right.append(TextLabel(tr("Scan the QR code with your phone to follow the queue."), halign="center"))
        if self.kiosk.voice:
            right.append(self.option(tr("Hear my number again"), vm.hear_again, kind="secondary"))
        right.append(self.option(tr("Finish"), vm.done))
        self.add(Columns(left, right, ratio=0.66))


class HelpScreen(FlowScreen):
    flow_name = "help"

    def build(self) -> None:
        vm, tr = self.flow, self.tr
        self.prompt()
        if not vm.called:
            self.add(self.option(tr("Call staff"), vm.call_staff, kind="danger", size=1.3))
        # the site's own words name the place; every sentence that uses them says "staffed desk" once
        self.add(TextLabel(tr("Staffed desk: {where}", where=vm.directions)))


SCREENS = [HomeScreen, AccessOfferScreen, CheckInScreen, IdentifyScreen, AppointmentsScreen, RegisterScreen,
           PaymentScreen, ReportsScreen, TicketScreen, HelpScreen]


class BookingScreen(FlowScreen):
    """Booking a future appointment: one choice per screen (department, day, time, confirm)."""

    flow_name = "booking"

    def build(self) -> None:
        vm, tr = self.flow, self.tr
        self.prompt()
        if vm.step == "department":
            specs = [(vm.dept_name(d), lambda i=d["id"]: vm.choose_department(i), {"size": 1.1})
                     for d in vm.departments]
            self.add(Grid([self.option(label, action, **kw) for label, action, kw in specs], cols=self.cols(3)))
            for b in vm.shown_bookings:
                no = b["appointment_no"]
                self.add(Columns([TextLabel(vm.booking_line(b))],
                                 [Row([self.option(tr("Change"), lambda n=no: vm.change(n), kind="secondary"),
                                       self.option(tr("Cancel"), lambda n=no: vm.cancel(n), kind="secondary")])],
                                 ratio=0.55))
        elif vm.step == "day":
            self.paged("booking-days", [(vm.day_label(d), lambda d=d: vm.choose_day(d), {}) for d in vm.days], 3)
        elif vm.step == "slot":
            self.paged("booking-slots:" + vm.day, [(vm.slot_label(s), lambda i=s["slot_id"]: vm.choose_slot(i), {})
                                                   for s in vm.slots], 4)
        elif vm.step == "confirm":
            self.add(Row([self.option(tr("Confirm"), vm.confirm, size=1.3),
                          self.option(tr("Back"), vm.back_step, kind="secondary")]))
        else:
            self.add(self.option(tr("Finish"), vm.finish, size=1.2))


    def paged(self, key: str, specs: list[tuple], normal_cols: int) -> None:
        """Two rows of choices (a pager when more), then Back one step: fits in large text too."""
        cols = self.cols(normal_cols)
        buttons, pager = self.paged_options(key, specs, 2 * cols)
        if buttons:
            self.add(Grid(buttons, cols=cols))
        self.add(Row(pager + [self.option(self.tr("Back"), self.flow.back_step, kind="secondary")]))


SCREENS.append(BookingScreen)
