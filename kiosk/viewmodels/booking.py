"""Booking a future appointment at the kiosk: department -> day -> time -> confirm (4 touches).

After identification the patient sees the departments (and their bookings, if any, with Change
and Cancel); each step is one touch; the fourth touch books. Changing a booking is the same
day -> time -> confirm steps for the chosen booking. The server's booking API
(``queueserver/booking_api.py``) takes the kiosk's patient session; booking is idempotent on the
request id made when the confirm step is shown, so a retried touch or a lost answer books once.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from kivy.properties import ListProperty, ObjectProperty, StringProperty

from kiosk.i18n import N_
from kiosk.server_client import ServerUnavailableError, new_key
from kiosk.viewmodels.base import FlowViewModel, VoiceOption
from protocol.errors import ClinicflowError

WEEKDAYS = (N_("Mon"), N_("Tue"), N_("Wed"), N_("Thu"), N_("Fri"), N_("Sat"), N_("Sun"))
DAYS_SHOWN = 6  # the days offered on one screen (today and the next five)
SLOTS_SHOWN = 8  # the earliest free times of a day on one screen


class BookingApi:
    """The kiosk's calls to the booking API (over the kiosk's server client and its error mapping)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def _json(self, method: str, path: str, session: str | None, **kw: Any) -> Any:
        return self.client._request(method, path, session=session, **kw).json()  # shared retry/error mapping

    def departments(self) -> dict:
        return self._json("GET", "/api/v1/booking/departments", None)  # type: ignore[no-any-return]

    def slots(self, department: str, day: str) -> list[dict]:
        return self._json("GET", "/api/v1/booking/slots", None,  # type: ignore[no-any-return]
                          params={"department": department, "day": day})

    def mine(self, session: str) -> list[dict]:
        return self._json("GET", "/api/v1/booking/appointments", session)  # type: ignore[no-any-return]

    def book(self, session: str, slot_id: str, request_id: str) -> dict:
        return self._json("POST", "/api/v1/booking/appointments", session,  # type: ignore[no-any-return]
                          json={"slot_id": slot_id, "request_id": request_id})

    def move(self, session: str, appointment_no: str, slot_id: str) -> dict:
        return self._json("PUT", f"/api/v1/booking/appointments/{appointment_no}", session,  # type: ignore
                          json={"slot_id": slot_id})

    def cancel(self, session: str, appointment_no: str) -> dict:
        return self._json("DELETE", f"/api/v1/booking/appointments/{appointment_no}", session)  # type: ignore


class BookingViewModel(FlowViewModel):
    step = StringProperty("department")  # department, day, slot, confirm, done
    departments = ListProperty([])  # {"id", "name", "slot_minutes"}
    days = ListProperty([])  # ISO dates
    slots = ListProperty([])  # {"slot_id", "start", "end"}
    bookings = ListProperty([])  # the patient's coming appointments (BookingOut as dicts)
    department = ObjectProperty(None, allownone=True)
    day = StringProperty("")
    slot = ObjectProperty(None, allownone=True)
    moving = StringProperty("")  # appointment number being changed, "" when booking a new one
    result = ObjectProperty(None, allownone=True)  # the booking made, moved or cancelled
    status_text = StringProperty("")

    def __init__(self, kiosk: Any, **kw: Any) -> None:
        super().__init__(kiosk, **kw)
        self._request_id = ""

    @property
    def api(self) -> BookingApi:
        return BookingApi(self.kiosk.client)

    # -- loading ------------------------------------------------------------------------------------
    def enter(self) -> None:
        self.step, self.moving, self.result, self.status_text = "department", "", None, ""
        self.prompt = self.tr("Loading...")
        session = self.kiosk.patient.session
        self.kiosk.run(self, lambda: (self.api.departments(), self.api.mine(session)), self._loaded)

    def _failed(self, error: BaseException) -> None:
        if isinstance(error, ServerUnavailableError):
            self.error = self.tr("The hospital system is not reachable. Please go to the staffed desk: {where}",
                                 where=self.tr.pick(self.kiosk.settings.directions))
        elif isinstance(error, ClinicflowError):
            self.error = str(error)  # the server's sentence (a taken or past time, say)
        else:
            raise error

    def _loaded(self, result: Any, error: BaseException | None) -> None:
        if error is not None:
            self._failed(error)
            return
        info, mine = result
        self.departments = list(info["departments"])
        self.days = list(info["days"])[:DAYS_SHOWN]
        self.bookings = [b for b in mine if b["status"] == "booked"]
        self._describe()

    def refresh_texts(self) -> None:
        self._describe()

    def _describe(self) -> None:
        tr = self.tr
        if self.step == "department":
            self.prompt = tr("Which department would you like to book?")
            if self.bookings:
                self.prompt += " " + tr.ngettext("You have {n} booking; you can change or cancel it below.",
                                                 "You have {n} bookings; you can change or cancel them below.",
                                                 len(self.bookings))
        elif self.step == "day":
            self.prompt = tr("Which day?")
        elif self.step == "slot":
            self.prompt = tr("Which time?") if self.slots else tr("No free times on this day. Please choose another day.")
        elif self.step == "confirm":
            self.prompt = tr("Book {department} on {when}? Press Confirm.", department=self.dept_name(),
                             when=self.when(self.slot["start"]))
        elif self.step == "done" and self.result is not None:
            self.prompt = self.status_text

    @property
    def shown_bookings(self) -> list[dict]:
        """The bookings with Change / Cancel on screen: the two soonest (the phone page lists them all)."""
        return list(self.bookings[:2])

    # -- labels -------------------------------------------------------------------------------------
    def dept_name(self, department: dict | None = None) -> str:
        d = department or self.department
        return self.tr.pick(d["name"]) if d else ""

    def when(self, iso: str) -> str:
        start = self.kiosk.local_time(datetime.fromisoformat(iso))
        return f"{start:%Y-%m-%d} {start:%H:%M}"

    def day_label(self, iso_day: str) -> str:
        day = date.fromisoformat(iso_day)
        weekday = self.tr(WEEKDAYS[day.weekday()])
        return f"{day:%m-%d} {weekday}"

    def slot_label(self, slot: dict) -> str:
        return f"{self.kiosk.local_time(datetime.fromisoformat(slot['start'])):%H:%M}"

    def booking_line(self, booking: dict) -> str:
        return self.tr("{no}: {department}, {when}", no=booking["appointment_no"],
                       department=self.tr.pick(booking["department_name"]), when=self.when(booking["start"]))

    # -- the steps (one touch each) -----------------------------------------------------------------
    def choose_department(self, department_id: str) -> None:
        self.kiosk.touch()
        self.department = next(d for d in self.departments if d["id"] == department_id)
        self.error, self.step = "", "day"
        self._describe()

    def choose_day(self, iso_day: str) -> None:
        self.kiosk.touch()
        self.day, self.error = iso_day, ""
        dept = self.department["id"]
        self.kiosk.run(self, lambda: self.api.slots(dept, iso_day), self._slots_loaded)

    def _slots_loaded(self, result: Any, error: BaseException | None) -> None:
        if error is not None:
            self._failed(error)
            return
        self.slots = list(result)[:SLOTS_SHOWN]
        self.step = "slot"
        self._describe()

    def choose_slot(self, slot_id: str) -> None:
        self.kiosk.touch()
        self.slot = next(s for s in self.slots if s["slot_id"] == slot_id)
        self._request_id = new_key()  # made once per confirm step: a repeated Confirm books once
        self.error, self.step = "", "confirm"
        self._describe()

    def confirm(self) -> None:
        """Touch 4: book (or move the booking being changed)."""
        self.kiosk.touch()
        session, slot_id, moving, key = self.kiosk.patient.session, self.slot["slot_id"], self.moving, self._request_id
        if moving:
            self.kiosk.run(self, lambda: self.api.move(session, moving, slot_id), self._booked)
        else:
            self.kiosk.run(self, lambda: self.api.book(session, slot_id, key), self._booked)

    def _booked(self, result: Any, error: BaseException | None) -> None:
        if error is not None:
            self._failed(error)
            if self.department is not None and self.day:  # a taken time: show the day's free times again
                dept, day = self.department["id"], self.day
                self.kiosk.run(self, lambda: self.api.slots(dept, day), self._slots_loaded)
            return
        self.result = result
        where = self.tr.pick(self.kiosk.settings.waiting_areas.get(result["department"], {})) or \
            self.tr.pick(result["department_name"])
        key = "Changed: {no}, {department}, {when}. Please come to {where}." if self.moving else \
            "Booked: {no}, {department}, {when}. Please come to {where}."
        self.status_text = self.tr(key, no=result["appointment_no"], department=self.tr.pick(result["department_name"]),
                                   when=self.when(result["start"]), where=where)
        self.step = "done"
        self._describe()

    # -- change and cancel --------------------------------------------------------------------------
    def change(self, appointment_no: str) -> None:
        self.kiosk.touch()
        booking = next(b for b in self.bookings if b["appointment_no"] == appointment_no)
        self.moving = appointment_no
        self.department = next((d for d in self.departments if d["id"] == booking["department"]), None)
        self.error, self.step = "", "day"
        self._describe()

    def cancel(self, appointment_no: str) -> None:
        self.kiosk.touch()
        session = self.kiosk.patient.session
        self.kiosk.run(self, lambda: self.api.cancel(session, appointment_no), self._cancelled)

    def _cancelled(self, result: Any, error: BaseException | None) -> None:
        if error is not None:
            self._failed(error)
            return
        self.result = result
        self.bookings = [b for b in self.bookings if b["appointment_no"] != result["appointment_no"]]
        self.status_text = self.tr("Cancelled: {no}, {department}, {when}.", no=result["appointment_no"],
                                   department=self.tr.pick(result["department_name"]), when=self.when(result["start"]))
        self.step = "done"
        self._describe()

    def back_step(self) -> None:
        """Back one step (day -> department ...); from the first step back to the previous screen."""
        order = ["department", "day", "slot", "confirm"]
        if self.step in order[1:]:
            self.kiosk.touch()
            self.step, self.error = order[order.index(self.step) - 1], ""
            self._describe()
        else:
            self.kiosk.back()

    def finish(self) -> None:
        self.kiosk.touch()
        self.kiosk.end_session()

    def voice_options(self) -> list[VoiceOption]:
        tr = self.tr
        if self.step == "department":
            opts: list[VoiceOption] = [(self.dept_name(d), lambda i=d["id"]: self.choose_department(i))
                                       for d in self.departments]
            for b in self.shown_bookings:
                no = b["appointment_no"]
                opts.append((tr("Change {no}", no=no), lambda n=no: self.change(n)))
                opts.append((tr("Cancel {no}", no=no), lambda n=no: self.cancel(n)))
            return opts
        if self.step == "day":
            return [(self.day_label(d), lambda d=d: self.choose_day(d)) for d in self.days] + \
                [(tr("Back"), self.back_step)]
        if self.step == "slot":
            return [(self.slot_label(s), lambda i=s["slot_id"]: self.choose_slot(i)) for s in self.slots] + \
                [(tr("Back"), self.back_step)]
        if self.step == "confirm":
            return [(tr("Confirm"), self.confirm), (tr("Back"), self.back_step)]
        return [(tr("Finish"), self.finish)]

    def reset(self) -> None:
        super().reset()
        self.step, self.departments, self.days, self.slots, self.bookings = "department", [], [], [], []
        self.department, self.day, self.slot, self.moving, self.result, self.status_text = None, "", None, "", None, ""
        self._request_id = ""
