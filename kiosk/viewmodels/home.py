"""Home: the four services, help, and the language / large text / voice switches (always visible)."""
from __future__ import annotations

from kiosk.i18n import N_
from kiosk.viewmodels.base import FlowViewModel, VoiceOption

SERVICES = (
    ("checkin", N_("Check in")),
    ("register", N_("Register (no appointment)")),
    ("payment", N_("Pay bills")),
    ("reports", N_("Print reports")),
    ("booking", N_("Book an appointment")),
    ("help", N_("Call staff")),
)


class HomeViewModel(FlowViewModel):
    def enter(self) -> None:
        self.prompt = self.tr("Welcome. Scan your appointment code, or choose a service.")

    def choose(self, service: str) -> None:
        """A service button: check-in starts on the appointment keypad, the others identify first."""
        self.kiosk.touch()
        if service == "checkin":
            self.kiosk.go("appointments" if self.kiosk.patient is not None else "checkin")
        elif service == "register":
            self.kiosk.go("register")
        elif service in ("payment", "reports", "booking"):
            self.kiosk.go(service)
        elif service == "help":
            self.kiosk.go("help")
        else:
            raise ValueError(f"unknown service {service!r}")

    def voice_prompt(self) -> str:
        return self.tr("Choose a service with the Next key, or scan your appointment code.")

    def service_label(self, service: str) -> str:
        return self.tr(dict(SERVICES)[service])

    def voice_options(self) -> list[VoiceOption]:
        opts: list[VoiceOption] = [(self.tr(label), lambda s=s: self.choose(s)) for s, label in SERVICES]
        other = "en" if self.kiosk.language == "zh" else "zh"
        opts.append((self.tr("Switch language"), lambda: self.kiosk.set_language(other)))
        opts.append((self.tr("Large text"), self.kiosk.toggle_large_text))
        return opts
