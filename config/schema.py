"""The device configuration schema: one TOML file per device, validated at start.

A device file has these tables (see ``config/examples/`` for one per role)::

    [device]    id, role, site, name                      who this device is
    [server]    url, token_file | token_env             the queue server's HTTP API
    [broker]    url, username, password_file | password_env, ca_file
    [settings]  rooms, languages, default_language, volume, modes, ...
    [hardware]  printer, speaker, buttons, scanner, card_reader   which adapters, pins, models

``[settings]`` is the part a technician may change remotely: the retained config
topic carries a partial override that is merged over the file's settings and
validated by ``validate_settings`` before the app applies it live.

Every error names the key, says what is wrong and how to fix it, because the
person reading it is a technician at a Raspberry Pi, not the author.
Secrets never live in a config file: only paths to files and names of
environment variables that hold them.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from protocol.errors import ClinicflowError

Role = Literal["kiosk", "door_screen", "hall_board", "button_box"]
ROLES: tuple[str, ...] = ("kiosk", "door_screen", "hall_board", "button_box")
Language = Literal["zh", "en", "yue"]
Mode = Literal["check_in", "registration", "payment", "reports", "large_text", "high_contrast", "show_names", "quiet"]
Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]

# Per-key hints used in error messages: what a valid value looks like.
FIXES: dict[str, str] = {
    "role": "one of kiosk, door_screen, hall_board, button_box",
    "id": "1-64 letters, digits, '_', '.' or '-', e.g. id = \"hall-2\"",
    "site": "the hospital's site id, e.g. site = \"demo\"",
    "rooms": "a list of room ids, e.g. rooms = [\"r3\", \"r4\"]",
    "languages": "a list from zh, en, yue, e.g. languages = [\"zh\", \"en\"]",
    "default_language": "one of the device's languages, e.g. default_language = \"zh\"",
    "volume": "a whole number from 0 (silent) to 100, e.g. volume = 80",
    "announce_repeat": "how many times a call is spoken, 1 to 5, e.g. announce_repeat = 2",
    "modes": "a list from check_in, registration, payment, reports, large_text, high_contrast, show_names, quiet",
    "orientation": "landscape or portrait",
    "idle_timeout_s": "seconds before a kiosk session clears, 15 to 600, e.g. idle_timeout_s = 60",
    "url": "a URL such as \"https://queue.example.org\" or \"mqtts://broker.example.org:8883\"",
    "token_file": "a path to a file that holds the token, e.g. token_file = \"/etc/clinicflow/token\"",
    "token_env": "the name of an environment variable that holds the token, e.g. token_env = \"CLINICFLOW_TOKEN\"",
    "password_file": "a path to a file that holds the MQTT password, e.g. password_file = \"/etc/clinicflow/mqtt-password\"",
    "password_env": "the name of an environment variable that holds the MQTT password",
    "adapter": "one of the adapters listed in docs/technicians.md for this part",
    "model": "the printer model as sold, e.g. model = \"Epson TM-T20III\"",
    "pin": "a BCM GPIO number from 2 to 27, e.g. call_next_pin = 17",
}


class ConfigError(ClinicflowError, ValueError):
    """A device configuration that does not validate; the message names each key and its fix."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


def _fix_for(loc: tuple[Any, ...]) -> str:
    for part in reversed(loc):
        if isinstance(part, str):
            if part in FIXES:
                return FIXES[part]
            if part.endswith("_pin"):
                return FIXES["pin"]
    return "see config/examples/ for a valid file"


def explain(exc: ValidationError, *, prefix: str = "") -> ConfigError:
    """Turn pydantic's errors into one ConfigError whose lines read ``key: problem (got X). Fix: ...``."""
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err.get("loc", ()) if not (isinstance(p, str) and p.startswith("function-")))
        key = prefix + ".".join(str(p) for p in loc) if loc else (prefix.rstrip(".") or "config")
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            problems.append(f"{key}: unknown key. Fix: remove it or check its spelling (see config/examples/)")
            continue
        if err.get("type") == "missing":
            problems.append(f"{key}: required key is missing. Fix: add it, {_fix_for(loc)}")
            continue
        got = err.get("input")
        shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
        msg = msg.removeprefix("Value error, ")
        problems.append(f"{key}: {msg}{shown}. Fix: {_fix_for(loc)}")
    return ConfigError("; ".join(problems), problems)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Settings(_Strict):
    """What a device shows and how it behaves; may be changed live through the retained config topic."""

    rooms: tuple[Ident, ...] = Field(default=(), description="rooms shown (screens) or served (button box); empty = all (kiosk)")
    languages: tuple[Language, ...] = Field(default=("zh", "en"), min_length=1, max_length=3)
    default_language: Language | None = None
    volume: int = Field(80, ge=0, le=100)
    announce_repeat: int = Field(2, ge=1, le=5)
    orientation: Literal["landscape", "portrait"] = "landscape"
    modes: tuple[Mode, ...] = Field(default=(), description="features on: kiosk services and display modes")
    idle_timeout_s: int = Field(60, ge=15, le=600)

    @field_validator("languages", "rooms", "modes")
    @classmethod
    def _no_duplicates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("lists an entry twice")
        return value

    @model_validator(mode="after")
    def _default_language_is_offered(self) -> "Settings":
        if self.default_language is not None and self.default_language not in self.languages:
            raise ValueError(f"default_language {self.default_language!r} is not in languages {list(self.languages)}")
        return self


def check_role_settings(role: str, settings: Settings, *, only: set[str] | None = None) -> None:
    """Rules that depend on the role: a door screen and a button box serve exactly one room, a hall board at least one.

    ``only``: check just these keys (a partial push checked on the server; the device checks the merged whole).
    """
    rooms_given = only is None or "rooms" in only
    if rooms_given and role in ("door_screen", "button_box") and len(settings.rooms) != 1:
        raise ConfigError(f"settings.rooms: a {role} serves exactly one room (got {list(settings.rooms)}). "
                          f"Fix: rooms = [\"r3\"]")
    if rooms_given and role == "hall_board" and not settings.rooms:
        raise ConfigError("settings.rooms: a hall_board shows at least one room (got []). Fix: rooms = [\"r3\", \"r4\"]")
    if role != "kiosk" and (only is None or "modes" in only):
        kiosk_only = sorted({"check_in", "registration", "payment", "reports"} & set(settings.modes))
        if kiosk_only:
            raise ConfigError(f"settings.modes: {', '.join(kiosk_only)} only apply to a kiosk (this is a {role}). "
                              "Fix: remove them")


def validate_settings(role: str, data: dict[str, Any], *, partial: bool = False) -> Settings:
    """Validate a settings table (from the file, or file merged with a remote push) for ``role``; raise ConfigError.

    ``partial``: ``data`` is only the keys being changed, so role rules apply to those keys alone.
    """
    if not isinstance(data, dict):
        raise ConfigError("settings: must be a table of keys (a JSON object). Fix: send e.g. {\"rooms\": [\"r3\"]}")
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise explain(exc, prefix="settings.") from None
    check_role_settings(role, settings, only=set(data) if partial else None)
    return settings


# ----------------------------------------------------------------------------- the device file

Pin = Annotated[int, Field(ge=2, le=27, description="BCM GPIO number")]
SECRET_KEYS = ("password", "token", "secret", "api_key")


def _check_url(value: str, schemes: tuple[str, ...], what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{what} must look like {schemes[0]}://host:port")
    if parts.password:
        raise ValueError("holds a password; secrets never go in a config file (use password_file or password_env)")
    return value


class DeviceSection(_Strict):
    id: Ident
    role: Role
    site: Ident
    name: Annotated[str, Field(max_length=100)] = ""


class ServerSection(_Strict):
    """The queue server's HTTP API; the device's bearer token is read from a file or an environment variable."""

    url: str
    token_file: str | None = None
    token_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")] | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value, ("https", "http"), "the server url")


class BrokerSection(_Strict):
    """The MQTT broker; ``mqtts://`` with the site's CA in production."""

    url: str
    username: Ident | None = Field(None, description="defaults to the device id")
    password_file: str | None = None
    password_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")] | None = None
    ca_file: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value, ("mqtts", "mqtt"), "the broker url")


class PrinterSection(_Strict):
    """The ticket printer: which adapter drives it and how it is attached."""

    adapter: Literal["escpos_usb", "escpos_serial", "escpos_network", "escpos_file", "fake", "none"] = "none"
    model: Annotated[str, Field(max_length=60)] = ""
    usb_vendor: Annotated[int, Field(ge=0, le=0xFFFF)] | None = None
    usb_product: Annotated[int, Field(ge=0, le=0xFFFF)] | None = None
    device: str | None = Field(None, description="serial port or output file")
    host: str | None = None
    paper_width_mm: Literal[58, 80] = 80
    chinese_font: bool = Field(False, description="the printer has a GB18030 font (else CJK lines are printed as images)")

    @model_validator(mode="after")
    def _attachment(self) -> "PrinterSection":
        needs = {"escpos_usb": ("usb_vendor", "usb_product"), "escpos_serial": ("device",),
                 "escpos_network": ("host",), "escpos_file": ("device",)}.get(self.adapter, ())
        missing = [k for k in needs if getattr(self, k) is None]
        if missing:
            raise ValueError(f"adapter {self.adapter} needs {', '.join(missing)}; add them under [hardware.printer]")
        return self


class SpeakerSection(_Strict):
    adapter: Literal["espeak", "pyttsx3", "fake", "none"] = "espeak"
    audio_device: str | None = Field(None, description="ALSA device, e.g. 'plughw:1,0'; None = default")


class ButtonsSection(_Strict):
    """A button box's call buttons and lamp, by BCM pin number."""

    adapter: Literal["gpio", "fake", "none"] = "none"
    pin_factory: Literal["lgpio", "rpigpio", "mock"] | None = Field(None, description="None = gpiozero's default")
    call_next_pin: Pin | None = None
    recall_pin: Pin | None = None
    pause_pin: Pin | None = None
    lamp_pin: Pin | None = None

    @model_validator(mode="after")
    def _pins(self) -> "ButtonsSection":
        pins = {k: v for k, v in self.model_dump().items() if k.endswith("_pin") and v is not None}
        seen: dict[int, str] = {}
        for key, pin in pins.items():
            if pin in seen:
                raise ValueError(f"{key} and {seen[pin]} both use GPIO {pin}; give each its own pin")
            seen[pin] = key
        if self.adapter != "none" and self.call_next_pin is None:
            raise ValueError("a button box needs call_next_pin; e.g. call_next_pin = 17")
        return self


class ScannerSection(_Strict):
    adapter: Literal["keyboard_wedge", "serial", "none"] = "keyboard_wedge"
    device: str | None = None


class CardReaderSection(_Strict):
    adapter: Literal["serial", "fake", "none"] = "none"
    device: str | None = None


class HardwareSection(_Strict):
    """Which adapter drives each part (the composition root of each app reads this)."""

    printer: PrinterSection = Field(default_factory=PrinterSection)
    speaker: SpeakerSection = Field(default_factory=lambda: SpeakerSection(adapter="none"))
    buttons: ButtonsSection = Field(default_factory=ButtonsSection)
    scanner: ScannerSection = Field(default_factory=lambda: ScannerSection(adapter="none"))
    card_reader: CardReaderSection = Field(default_factory=CardReaderSection)


class DeviceConfig(_Strict):
    """One device's whole configuration file."""

    device: DeviceSection
    server: ServerSection
    broker: BrokerSection
    settings: Settings = Field(default_factory=Settings)
    hardware: HardwareSection = Field(default_factory=HardwareSection)

    @property
    def role(self) -> str:
        return self.device.role

    def settings_dict(self) -> dict[str, Any]:
        """The ``[settings]`` table as given in the file (what ``DeviceAgent(settings=...)`` merges pushes over)."""
        return self.settings.model_dump(mode="json", exclude_unset=True)


def _check_role_hardware(config: DeviceConfig) -> None:
    role, hw = config.device.role, config.hardware
    if role == "button_box" and hw.buttons.adapter == "none":
        raise ConfigError("hardware.buttons.adapter: a button_box needs its buttons (got 'none'). "
                          "Fix: adapter = \"gpio\" and call_next_pin = 17 under [hardware.buttons]")
    if role != "kiosk" and hw.printer.adapter != "none":
        raise ConfigError(f"hardware.printer.adapter: only a kiosk prints tickets (this is a {role}). "
                          "Fix: remove [hardware.printer]")


def _secret_hints(data: Any, path: str = "") -> list[str]:
    problems = []
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}{key}"
            if isinstance(key, str) and key.lower() in SECRET_KEYS and isinstance(value, str):
                problems.append(f"{where}: secrets never go in a config file. Fix: put it in a file readable only by "
                                f"the device's user and set {key}_file = \"/etc/clinicflow/{key}\" (or {key}_env)")
            else:
                problems.extend(_secret_hints(value, where + "."))
    return problems


def validate_device_config(data: dict[str, Any]) -> DeviceConfig:
    """Validate a parsed device file; raise ConfigError listing every problem with its key and fix."""
    secrets = _secret_hints(data)
    if secrets:
        raise ConfigError("; ".join(secrets), secrets)
    try:
        config = DeviceConfig.model_validate(data)
    except ValidationError as exc:
        raise explain(exc) from None
    check_role_settings(config.device.role, config.settings)
    _check_role_hardware(config)
    return config
