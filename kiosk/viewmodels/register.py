"""Walk-in registration: a department from large icons, then a time slot; or the symptom guide.

The guide asks for a body area and symptoms (icons, never typed) and recommends a
department by the hospital's rules (``kiosk.symptom_guide``). A red-flag combination sends
the patient to Emergency at once: an emergency ticket is issued and staff are alerted.
"""
from __future__ import annotations

from typing import Any

from kivy.properties import ListProperty, ObjectProperty, OptionProperty, StringProperty

from kiosk.server_client import ServerUnavailableError, new_key
from kiosk.viewmodels.base import FlowViewModel, VoiceOption
from protocol.api_patient import RegistrationRequest
from protocol.errors import ClinicflowError


class RegistrationViewModel(FlowViewModel):
    stage = OptionProperty("departments", options=["departments", "slots", "guide_area", "guide_symptoms",
                                                   "advice", "emergency"])
    departments = ListProperty([])  # protocol.api_patient.WalkInDepartmentOut
    department = ObjectProperty(None, allownone=True)
    area = StringProperty("")
    picked = ListProperty([])  # symptom ids
    recommendation = ObjectProperty(None, allownone=True)  # kiosk.symptom_guide.Recommendation
    advice = StringProperty("")
    alert_problem = StringProperty("")  # a red flag's staff alert did not get through: what to do instead

    def __init__(self, kiosk, **kw) -> None:
        super().__init__(kiosk, **kw)
        self._key: str | None = None
        self._watching_alerts = False

    def enter(self) -> None:
        if not self.departments:
            self.prompt = self.tr("Loading departments...")
            self.kiosk.run(self, self.kiosk.client.walk_in_departments, self._loaded)
        self._describe()

    def refresh_texts(self) -> None:
        self._describe()

    def _loaded(self, result: Any, error: BaseException | None) -> None:
        if error is not None:
            self.error = self.tr("The hospital system is not reachable. Please go to the staffed desk: {where}",
                                 where=self.tr.pick(self.kiosk.settings.directions))
            return
        self.departments = [d for d in result.departments if d.department != "emergency"]
        self._describe()

    def _describe(self) -> None:
        tr = self.tr
        self.prompt = {
            "departments": tr("Choose a department. Not sure? Press Help me choose."),
            "slots": tr("Choose a time for {dept}.", dept=tr.pick(self.department.name) if self.department else ""),
            "guide_area": tr("Where is the problem? Choose a body area."),
            "guide_symptoms": tr("Choose what you feel, then press Done."),
            "advice": self.advice,
            "emergency": self.advice,
        }[self.stage]

    def on_stage(self, *_):
        self._describe()

    # -- departments and slots ------------------------------------------------------------------
    def pick_department(self, department: str) -> None:
        self.kiosk.touch()
        self.department = next(d for d in self.departments if d.department == department)
        self.error = ""
        self.stage = "slots"

    def pick_slot(self, start: Any) -> None:
        self.kiosk.touch()
        slot = next(s for s in self.department.slots if s.start == start)
        if slot.available <= 0:
            self.error = self.tr("This time is full. Please choose another.")
            return
        self._register(RegistrationRequest(department=self.department.department, slot_start=slot.start))

    def _register(self, request: RegistrationRequest) -> None:
        self._key = self._key or new_key()
        session = self.kiosk.patient.session if self.kiosk.patient else None
        client, key = self.kiosk.client, self._key
        self.kiosk.run(self, lambda: client.register(session, request, key=key), self._registered)

    def _registered(self, ticket: Any, error: BaseException | None) -> None:
        if error is None:
            self._key = None
            self.kiosk.ticket.show(ticket)
            return
        if isinstance(error, ServerUnavailableError):
            self.error = self.tr("The hospital system is not reachable. Please go to the staffed desk: {where}",
                                 where=self.tr.pick(self.kiosk.settings.directions))
        elif isinstance(error, ClinicflowError):
            self._key = None
            self.error = self.tr("Registration did not work: {why}", why=getattr(error, "detail", str(error)))
        else:
            raise error

    # -- symptom guide --------------------------------------------------------------------------
    def start_guide(self) -> None:
        self.kiosk.touch()
        self.picked = []
        self.stage = "guide_area"

    def pick_area(self, area: str) -> None:
        self.kiosk.touch()
        self.area = area
        self.stage = "guide_symptoms"

    def toggle_symptom(self, symptom: str) -> None:
        self.kiosk.touch()
        self.picked = [s for s in self.picked if s != symptom] if symptom in self.picked else [*self.picked, symptom]

    def more_areas(self) -> None:
        self.kiosk.touch()
        self.stage = "guide_area"

    def finish_guide(self) -> None:
        self.kiosk.touch()
        if not self.picked:
            self.error = self.tr("Choose at least one symptom, or go back.")
            return
        age = self.kiosk.patient.age if self.kiosk.patient else None
        rec = self.kiosk.guide.recommend(set(self.picked), age)
        self.recommendation = rec
        self.advice = self.tr.pick(rec.message)
        self.error = ""
        if rec.red_flag:
            # Never an ordinary queue: staff are alerted now and triage; no ticket is issued here.
            self.stage = "emergency"
            self.alert_problem = ""
            if not self._watching_alerts:  # the alert's answer may come later (worker thread)
                self._watching_alerts = True
                self.kiosk.help.bind(error=self._alert_answered)
            self.kiosk.help.raise_alert("red_flag", department=rec.department, message=rec.staff_alert(),
                                       symptoms=tuple(sorted(self.picked)))
            return
        self.department = next((d for d in self.departments if d.department == rec.department), None)
        self.stage = "advice"

    def accept_advice(self) -> None:
        self.kiosk.touch()
        if self.department is None:
            self.stage = "departments"
            return
        self.stage = "slots"

    def _alert_answered(self, _help, error: str) -> None:
        if self.stage == "emergency" and error and error != self.alert_problem:
            self.alert_problem = error
            if self.kiosk.voice:
                self.kiosk.say(self.advice + " " + error)

    def symptom_name(self, symptom_id: str) -> str:
        return self.tr.pick(self.kiosk.guide.symptom(symptom_id).name)

    def voice_prompt(self) -> str:
        if self.stage == "emergency":  # what to do now, said, not only shown
            return self.advice + " " + self.emergency_direction
        return self.prompt

    @property
    def nurse_comes(self) -> bool:
        """The red flag's pathway starts here: the patient waits at the kiosk for a nurse."""
        return self.recommendation is not None and self.recommendation.action == "nurse"

    @property
    def emergency_direction(self) -> str:
        if self.alert_problem:  # the alert did not get through: never promise a nurse who was not called
            return self.alert_problem
        if self.nurse_comes:
            return self.tr("A nurse has been called and is coming to you.")
        return self.tr("Emergency department: follow the red line on the floor.")

    def voice_options(self) -> list[VoiceOption]:
        tr = self.tr
        if self.stage == "departments":
            return [(tr.pick(d.name), lambda d=d.department: self.pick_department(d)) for d in self.departments] + \
                [(tr("Help me choose"), self.start_guide)]
        if self.stage == "slots" and self.department:
            return [(tr("{start} to {end}", start=self.kiosk.format_time(s.start), end=self.kiosk.format_time(s.end)),
                     lambda s=s.start: self.pick_slot(s)) for s in self.department.slots if s.available > 0]
        if self.stage == "guide_area":
            return [(tr.pick(a.name), lambda a=a.id: self.pick_area(a)) for a in self.kiosk.guide.areas]
        if self.stage == "guide_symptoms":
            return [(tr.pick(s.name), lambda s=s.id: self.toggle_symptom(s)) for s in self.kiosk.guide.symptoms_in(self.area)] + \
                [(tr("Done"), self.finish_guide)]
        if self.stage == "advice":
            return [(tr("Continue"), self.accept_advice)]
        return []

    def reset(self) -> None:
        super().reset()
        self.stage = "departments"
        self.departments = []
        self.department = None
        self.area = ""
        self.picked = []
        self.recommendation = None
        self.advice = ""
        self.alert_problem = ""
        self._key = None
