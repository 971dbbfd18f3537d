"""A clinician's call-button box at a room: four buttons, a busy LED and a buzzer on GPIO.

    box = CallButtonBox(client=RoomApiClient(base_url, room="r1", token=token),
                        pins=ButtonBoxPins(), pin_factory=None)   # gpiozero picks the factory

Buttons (wired to ground, internal pull-ups, debounced in software):

* **call next**: ``POST /api/v1/rooms/{room}/call-next``
* **recall**: ``POST .../recall`` (the current patient is called again)
* **no-show**: ``POST .../no-show`` (the called patient did not come)
* **pause**: toggles ``POST .../pause`` / ``POST .../resume`` by the room's current state

Feedback: the LED is on while a request is under way, blinks slowly while the room is
paused, and flashes fast three times after an error; the buzzer beeps once for success
and three times for an error (what a clinician notices without looking). One request at
a time: presses while one is under way are ignored, so a nervous double press never
calls two patients. Every intended action has one ``Idempotency-Key``: when the server did
not answer (a timeout, the network), the next press of the same button is the clinician
trying again and sends the same key, with the same operation (pause stays pause even if the
first one did arrive), so the server answers the first call again instead of finishing that
patient and calling another. A key is dropped once the server has answered, or after
``retry_window_s`` (a press minutes later is a new intention). A new call-next press within a
few seconds of the last call is refused by the server itself ("confirm if that is what you
mean"): the box beeps the error, and a press after those seconds calls the next patient.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol.errors import DeviceError

from hardware.debounce import DebouncedButton

log = logging.getLogger(__name__)

ACTIONS = ("call_next", "recall", "no_show", "pause")


class RoomApiError(DeviceError):
    """The queue server refused or did not answer a button's request; ``detail`` is its sentence."""

    def __init__(self, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


class RoomApiClient:
    """The part of the queue server's HTTP API a button box uses, for one room (httpx, bearer token)."""

    def __init__(self, base_url: str, *, room: str, token: str, timeout: float = 5.0,
                 transport: Any = None) -> None:
        import httpx

        self.room = room
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Bearer {token}"})

    def _post(self, op: str, idempotency_key: str | None = None) -> dict:
        import httpx

        key = idempotency_key or uuid.uuid4().hex
        try:
            resp = self._http.post(f"/api/v1/rooms/{self.room}/{op}", headers={"Idempotency-Key": key})
        except httpx.HTTPError as exc:
            raise RoomApiError(f"the queue server did not answer: {exc}") from None
        return self._body(resp)

    @staticmethod
    def _body(resp: Any) -> dict:
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code >= 400:
            detail = body.get("detail") if isinstance(body, dict) else None
            raise RoomApiError(detail if isinstance(detail, str) else f"HTTP {resp.status_code}", resp.status_code)
        return body if isinstance(body, dict) else {"result": body}

    def room_status(self) -> str:
        """The room's status: open, paused or closed."""
        import httpx

        try:
            resp = self._http.get(f"/api/v1/rooms/{self.room}/state")
        except httpx.HTTPError as exc:
            raise RoomApiError(f"the queue server did not answer: {exc}") from None
        return str(self._body(resp).get("status", ""))

    def unanswered_help(self) -> int:
        """How many help requests this room's clinician should see are escalated and still unanswered."""
        import httpx

        try:
            resp = self._http.get("/api/v1/help-requests", params={"open": "true", "room": self.room})
        except httpx.HTTPError as exc:
            raise RoomApiError(f"the queue server did not answer: {exc}") from None
        items = self._body(resp).get("help_requests", [])
        return sum(1 for i in items if i.get("escalated") and i.get("status") == "open")

    def call_next(self, *, idempotency_key: str | None = None) -> dict:
        """Finish the current patient and call the next; the same key on a retry calls nobody else."""
        return self._post("call-next", idempotency_key)

    def recall(self, *, idempotency_key: str | None = None) -> dict:
        return self._post("recall", idempotency_key)

    def no_show(self, *, idempotency_key: str | None = None) -> dict:
        return self._post("no-show", idempotency_key)

    def pause(self, *, idempotency_key: str | None = None) -> dict:
        return self._post("pause", idempotency_key)

    def resume(self, *, idempotency_key: str | None = None) -> dict:
        return self._post("resume", idempotency_key)

    def close(self) -> None:
        self._http.close()


@dataclass(frozen=True)
class ButtonBoxPins:
    """BCM pin numbers of a button box; None for a part that is not fitted (only call next is required)."""

    call_next: int | str = 17
    recall: int | str | None = 27
    no_show: int | str | None = 22
    pause: int | str | None = 23
    busy_led: int | str | None = 24
    buzzer: int | str | None = 25

    @classmethod
    def parse(cls, text: str) -> "ButtonBoxPins":
        """From ``"call_next=17,recall=27,..."``; unknown names raise ValueError."""
        values: dict[str, int | str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, pin = part.partition("=")
            if name.strip() not in cls.__dataclass_fields__:
                raise ValueError(f"unknown button box pin {name!r}; use {', '.join(cls.__dataclass_fields__)}")
            pin = pin.strip()
            values[name.strip()] = None if pin in ("", "none") else int(pin) if pin.isdigit() else pin
        return cls(**values)

    @classmethod
    def from_config(cls, buttons: Any) -> "ButtonBoxPins":
        """From a device file's ``[hardware.buttons]`` (``config.schema.ButtonsSection``); its ``lamp_pin`` is the busy LED."""
        return cls(call_next=buttons.call_next_pin, recall=buttons.recall_pin,
                   no_show=getattr(buttons, "no_show_pin", None), pause=buttons.pause_pin,
                   busy_led=buttons.lamp_pin, buzzer=getattr(buttons, "buzzer_pin", None))


@dataclass(frozen=True)
class ButtonResult:
    """What one press did: the action, whether it worked, and the server's answer or error sentence."""

    action: str
    ok: bool
    detail: str = ""
    response: dict | None = None


class CallButtonBox:
    """The button box: debounced buttons -> one worker -> the room's API; LED and buzzer feedback.

    ``on_result`` (optional) is called with a ``ButtonResult`` after every handled press, from
    the worker thread. ``close()`` is idempotent; the box works in a ``with`` block.
    """

    def __init__(self, *, client: RoomApiClient, pins: ButtonBoxPins = ButtonBoxPins(), pin_factory: Any = None,
                 settle_s: float = 0.03, on_result: Callable[[ButtonResult], None] | None = None,
                 retry_window_s: float = 120.0) -> None:
        from gpiozero import LED, Buzzer

        if pins.call_next is None:
            raise ValueError("a button box needs its call-next button")
        self.client = client
        self.on_result = on_result
        self.paused = False
        self.retry_window_s = retry_window_s
        # action -> (Idempotency-Key, client method, since): an action the server has not answered yet
        self._unanswered: dict[str, tuple[str, str, float]] = {}
        self._busy = threading.Event()
        self._press_lock = threading.Lock()
        self._jobs: queue.Queue[str | None] = queue.Queue()
        self._closed = False
        self.buttons: dict[str, DebouncedButton] = {}
        try:
            for action in ACTIONS:
                if getattr(pins, action) is None:
                    continue
                button = DebouncedButton(getattr(pins, action), settle_s=settle_s, pin_factory=pin_factory, name=action)
                button.when_pressed = (lambda a=action: self.press(a))
                self.buttons[action] = button
            self.led = LED(pins.busy_led, pin_factory=pin_factory) if pins.busy_led is not None else None
            self.buzzer = Buzzer(pins.buzzer, pin_factory=pin_factory) if pins.buzzer is not None else None
        except Exception:
            self._close_devices()
            raise
        self._worker = threading.Thread(target=self._run, name="buttonbox", daemon=True)
        self._worker.start()

    def press(self, action: str) -> bool:
        """Handle a press of ``action`` (what a debounced button calls); False if ignored because busy."""
        if action not in ACTIONS:
            raise ValueError(f"unknown button {action!r}")
        with self._press_lock:  # each button has its own thread: check-and-set must be atomic
            if self._closed or self._busy.is_set():
                log.info("button %s ignored: a request is under way", action)
                return False
            self._busy.set()
        if self.led is not None:
            self.led.on()
        self._jobs.put(action)
        return True

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    def sync_pause_state(self) -> None:
        """Read the room's status so the LED shows a pause set elsewhere (e.g. on the web console)."""
        try:
            self.paused = self.client.room_status() == "paused"
        except RoomApiError as exc:
            log.warning("could not read the room's status: %s", exc)
            return
        self._idle_led()

    def check_help(self) -> int:
        """Sound the alarm if an escalated help request is waiting for someone (the CLI calls this
        every few seconds); returns how many are waiting."""
        try:
            waiting = self.client.unanswered_help()
        except RoomApiError as exc:
            log.warning("could not read help requests: %s", exc.detail)
            return 0
        if waiting:
            self.sound_alarm()
        return waiting

    def sound_alarm(self) -> None:
        """The insistent pattern (five long beeps), unlike the one short beep of a press that worked."""
        if self.buzzer is not None and not self._closed:
            self.buzzer.beep(on_time=0.4, off_time=0.2, n=5, background=True)

    def _run(self) -> None:
        while (action := self._jobs.get()) is not None:
            try:
                result = self._do(action)
            finally:
                self._busy.clear()
            self._feedback(result)
            if self.on_result is not None:
                try:
                    self.on_result(result)
                except Exception:
                    log.exception("button box on_result handler failed")

    def _intention(self, action: str) -> tuple[str, str]:
        """(key, client method) of this press: the unanswered attempt's again, or a new one."""
        pending = self._unanswered.get(action)
        if pending is not None and time.monotonic() - pending[2] < self.retry_window_s:
            log.info("button %s: trying the unanswered request again with the same key", action)
            return pending[0], pending[1]
        if action == "pause":
            method = "resume" if self.client.room_status() == "paused" else "pause"
        else:
            method = action
        return uuid.uuid4().hex, method

    def _do(self, action: str) -> ButtonResult:
        try:
            key, method = self._intention(action)
        except RoomApiError as exc:  # could not even read the room's status: nothing was sent
            log.warning("button %s failed: %s", action, exc.detail)
            return ButtonResult(action, False, exc.detail)
        previous = self._unanswered.get(action)
        self._unanswered[action] = (key, method, previous[2] if previous and previous[0] == key else time.monotonic())
        try:
            response = getattr(self.client, method)(idempotency_key=key)
        except RoomApiError as exc:
            if exc.status is not None:  # the server answered: this intention is settled
                self._unanswered.pop(action, None)
            log.warning("button %s failed: %s", action, exc.detail)
            return ButtonResult(action, False, exc.detail)
        self._unanswered.pop(action, None)
        if action == "pause":
            self.paused = method == "pause"
        return ButtonResult(action, True, "", response)

    def _idle_led(self) -> None:
        if self.led is None:
            return
        if self.paused:
            self.led.blink(on_time=0.5, off_time=1.5, background=True)
        else:
            self.led.off()

    def _feedback(self, result: ButtonResult) -> None:
        if self._closed:
            return
        if result.ok:
            if self.buzzer is not None:
                self.buzzer.beep(on_time=0.1, off_time=0.1, n=1, background=True)
            self._idle_led()
        else:
            if self.buzzer is not None:
                self.buzzer.beep(on_time=0.15, off_time=0.1, n=3, background=True)
            if self.led is not None:
                self.led.blink(on_time=0.1, off_time=0.1, n=3, background=True)

    def _close_devices(self) -> None:
        for button in getattr(self, "buttons", {}).values():
            button.close()
        for dev in (getattr(self, "led", None), getattr(self, "buzzer", None)):
            if dev is not None:
                dev.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._worker.join(timeout=10)
        self._close_devices()

    def __enter__(self) -> "CallButtonBox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
