"""Help: call a member of staff and hear back.

The request goes to the server's help desk (the nurse station page and the room consoles show
it live). The kiosk then asks every ``HELP_POLL_S`` seconds how it stands: once someone
acknowledges it (我来处理) it shows and says that staff are on their way (工作人员正在赶来);
if nobody has within the server's escalation time, it shows and says where the staffed desk is,
and keeps listening, so a late acknowledgement is still told.
"""
from __future__ import annotations

from typing import Any, Callable

from kivy.properties import BooleanProperty, StringProperty

from kiosk.server_client import new_key
from kiosk.viewmodels.base import FlowViewModel, VoiceOption
from protocol.api_patient import HelpOut, HelpRequest

HELP_POLL_S = 3.0


class HelpViewModel(FlowViewModel):
    called = BooleanProperty(False)
    directions = StringProperty("")
    status = StringProperty("")  # "", "open", "acknowledged", "escalated", "resolved"
    notice = StringProperty("")  # what the patient is told about the request (also on other screens)

    def __init__(self, kiosk: Any, **kw: Any) -> None:
        super().__init__(kiosk, **kw)
        self.help_id: str | None = None
        self.acknowledged_by: str | None = None
        self._cancel_poll: Callable[[], None] | None = None

    def enter(self) -> None:
        self.directions = self.tr.pick(self.kiosk.settings.directions)
        if self.called:
            self.prompt = self._status_text()
        else:
            self.prompt = self.tr("Press Call staff and someone will come to help you. Or go to: {where}",
                                  where=self.directions)

    def _status_text(self) -> str:
        if self.status in ("acknowledged", "resolved"):
            if self.acknowledged_by:
                return self.tr("Staff are on their way ({who}). Please stay here; if you feel worse, "
                               "tell anyone nearby.", who=self.acknowledged_by)
            return self.tr("Staff are on their way. Please stay here; if you feel worse, tell anyone nearby.")
        if self.status == "escalated":
            return self.tr("Nobody has answered yet. Please go to the staffed desk: {where}",
                           where=self.tr.pick(self.kiosk.settings.directions))
        return self.tr("Your call has reached the staff. Please stay here: we will tell you when someone "
                       "is on the way.")

    def call_staff(self, reason: str = "help", department: str | None = None) -> None:
        self.kiosk.touch()
        self.raise_alert(reason, department)

    def raise_alert(self, reason: str, department: str | None = None, message: str = "",
                    symptoms: tuple[str, ...] = ()) -> None:
        """Send a help request (also used by the symptom guide's red flags and payment faults);
        ``message`` tells the staff more (a red flag's rule, action and triage reference)."""
        told = "; ".join(part for part in (message, self._symptom_names(symptoms)) if part)
        request = HelpRequest(device=self.kiosk.settings.device_id, reason=reason, department=department,
                              symptoms=tuple(symptoms)[:10], message=told[:200])
        key = new_key()  # one key for this request: a retry after a timeout finds the same request
        client = self.kiosk.client
        patient = self.kiosk.patient
        session = patient.session if patient is not None else None  # staff then see the patient's ticket

        def send() -> Any:
            return client.call_staff(request, key=key, session=session)

        self.kiosk.run(self, send, self._sent)

    def _symptom_names(self, symptoms: tuple[str, ...]) -> str:
        """What staff read on the desk page: the guide's names in Chinese and English."""
        found = [self.kiosk.guide.symptom(s) for s in symptoms if s in {x.id for x in self.kiosk.guide.symptoms}]
        if not found:
            return ""
        text = "、".join(s.name["zh"] for s in found) + " (" + ", ".join(s.name["en"] for s in found) + ")"
        return text[:200]

    def _sent(self, result: Any, error: BaseException | None) -> None:
        if error is not None:
            self.called = False
            self.error = self.tr("We could not reach the staff from here. Please go to: {where}",
                                 where=self.tr.pick(self.kiosk.settings.directions))
            return
        self.called = True
        self.error = ""
        self.help_id = result.help_id
        self._update(result)
        self._schedule_poll()

    def _schedule_poll(self) -> None:
        self._stop_poll()
        self._cancel_poll = self.kiosk.clock.schedule(HELP_POLL_S, self.poll)

    def _stop_poll(self) -> None:
        if self._cancel_poll is not None:
            self._cancel_poll()
            self._cancel_poll = None

    def poll(self) -> None:
        """Ask the server how the request stands (the clock calls this every ``HELP_POLL_S`` seconds)."""
        self._cancel_poll = None
        help_id, client = self.help_id, self.kiosk.client
        if help_id is None:
            return

        def ask() -> HelpOut:
            return client.help_state(help_id)

        self.kiosk.run(self, ask, self._heard)

    def _heard(self, result: Any, error: BaseException | None) -> None:
        if error is None:
            self._update(result)
        if self.status not in ("acknowledged", "resolved"):
            self._schedule_poll()  # still waiting (or the server was briefly away): keep listening

    def _update(self, out: HelpOut) -> None:
        status = "escalated" if out.status == "open" and out.escalated else out.status
        if status == self.status:
            return
        self.status = status
        self.acknowledged_by = out.acknowledged_by
        self.notice = self._status_text()
        if status != "open":  # what changed is said aloud as well as shown (the patient may have looked away)
            self.kiosk.say(self.notice)
        if self.kiosk.screen == "help":
            self.enter()

    def refresh_texts(self) -> None:
        if self.status:
            self.notice = self._status_text()
        self.enter()

    def voice_options(self) -> list[VoiceOption]:
        return [(self.tr("Call staff"), self.call_staff)]

    def reset(self) -> None:
        super().reset()
        self._stop_poll()
        self.called = False
        self.help_id = None
        self.acknowledged_by = None
        self.status = ""
        self.notice = ""
