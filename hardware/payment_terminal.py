"""Bank-card terminals behind the ``PaymentTerminal`` port: a serial terminal and the fake.

    terminal = SerialPaymentTerminal(port="/dev/ttyUSB2")
    result = terminal.sale(txn_id="K1-000123", amount_fen=3500, timeout=60)   # blocks while the patient pays
    result.outcome            # "approved" | "declined" | "cancelled" | "timed_out"
    terminal.cancel()         # from another thread: the patient pressed Cancel on the screen
    terminal.query("K1-000123")   # after a crash: what became of that sale?

Outcomes are results, not errors; errors mean the kiosk cannot know or could not start:

* ``TerminalNotRespondingError``: the terminal never acknowledged the sale (switched off,
  cable out). It did not start the payment.
* ``PaymentOutcomeUnknownError``: the terminal took the sale and then fell silent, and a
  cancel was not confirmed either. The money may or may not have moved: the kiosk keeps
  the transaction in its journal and settles it with ``query`` or the server.

``timed_out`` means the patient did not pay in time and the terminal confirmed the
cancel: nothing was taken. A sale that the terminal approved while the cancel was on its
way comes back ``approved``, because that is what happened.

The serial protocol (frames of ``hardware.serial_frames``, documented in docs/hardware.md):
host ``S`` (txn_id, amount_fen, currency), ``C`` (txn_id), ``Q`` (txn_id); the terminal
ACKs each good frame (NAK a damaged one: the host resends, up to ``retries`` times) and
answers with ``R`` (txn_id, A|D|C|U, detail), which the host ACKs.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from protocol.errors import ConflictError, DeviceError

from hardware.serial_frames import ACK, NAK, Frame, FrameError, FrameParser, encode_frame
from hardware.serial_port import SerialPortReader

__all__ = ["PaymentTerminal", "PaymentResult", "TerminalError", "TerminalNotRespondingError",
           "PaymentOutcomeUnknownError", "TerminalBusyError", "SerialPaymentTerminal", "FakePaymentTerminal"]

log = logging.getLogger(__name__)

Outcome = Literal["approved", "declined", "cancelled", "timed_out"]
_CODES = {"A": "approved", "D": "declined", "C": "cancelled"}
MAX_AMOUNT_FEN = 100_000_000  # one million yuan: anything above is a bug, not a hospital bill


class TerminalError(DeviceError):
    """The card terminal failed; ``txn_id`` names the sale concerned."""

    def __init__(self, message: str, txn_id: str | None = None) -> None:
        super().__init__(message)
        self.txn_id = txn_id


class TerminalNotRespondingError(TerminalError, TimeoutError):
    """The terminal did not acknowledge the request: it is off, unplugged or broken. The sale did not start."""


class PaymentOutcomeUnknownError(TerminalError):
    """The terminal accepted the sale and then fell silent; reconcile ``txn_id`` before trying again."""


class TerminalBusyError(TerminalError, ConflictError):
    """A sale is already under way on this terminal."""


@dataclass(frozen=True)
class PaymentResult:
    """How a sale ended. ``auth_code`` for approved sales; ``detail`` the terminal's words otherwise."""

    txn_id: str
    outcome: Outcome
    amount_fen: int
    auth_code: str = ""
    detail: str = ""

    @property
    def approved(self) -> bool:
        return self.outcome == "approved"


@runtime_checkable
class PaymentTerminal(Protocol):
    """Port: a card payment terminal."""

    def sale(self, *, txn_id: str, amount_fen: int, timeout: float = 60.0) -> PaymentResult:
        """Take a payment; block until it ends. Raises the TerminalError subclasses above."""

    def cancel(self) -> None:
        """Ask the terminal to stop the sale under way (no-op when none is)."""

    def query(self, txn_id: str) -> PaymentResult | None:
        """What became of ``txn_id`` (None: the terminal has no such sale, so nothing was taken)."""

    def close(self) -> None: ...


def _check_sale(txn_id: str, amount_fen: int) -> None:
    if not txn_id or len(txn_id) > 40 or not txn_id.replace("-", "").replace("_", "").isalnum():
        raise ValueError("txn_id must be 1-40 letters, digits, '-' or '_'")
    if not isinstance(amount_fen, int) or not 0 < amount_fen <= MAX_AMOUNT_FEN:
        raise ValueError(f"amount_fen must be a whole number of fen from 1 to {MAX_AMOUNT_FEN}")


class SerialPaymentTerminal:
    """``PaymentTerminal`` on a serial card terminal speaking the framed protocol (pyserial, own reader thread)."""

    def __init__(self, *, port: str, baudrate: int = 9600, ack_timeout: float = 1.0, retries: int = 3,
                 cancel_timeout: float = 5.0, currency: str = "CNY") -> None:
        self._link = SerialPortReader(port=port, baudrate=baudrate, timeout=0.05, device="card terminal",
                                      thread_name="payment-terminal", on_data=self._on_data,
                                      on_quiet=self._on_quiet, on_lost=self._on_lost)
        self._serial = self._link.serial
        self.ack_timeout = ack_timeout
        self.retries = retries
        self.cancel_timeout = cancel_timeout
        self.currency = currency
        self._parser = FrameParser()
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._early: list[Frame] = []  # frames that arrived while waiting for an ACK
        self._write_lock = threading.Lock()
        self._sale_lock = threading.Lock()
        self._current: str | None = None
        self._cancel_requested = threading.Event()
        self._link.start()

    # -- the reader thread: frames in, ACK/NAK out ---------------------------------------------
    def _on_data(self, data: bytes) -> None:
        for item in self._parser.feed(data):
            if isinstance(item, Frame):
                self._write(bytes([ACK]))  # every good frame is acknowledged, even a stale one
            elif isinstance(item, FrameError):
                log.warning("damaged frame from the card terminal: %s", item)
                self._write(bytes([NAK]))  # the terminal repeats it
                continue
            self._inbox.put(item)

    def _on_quiet(self) -> None:
        self._parser.reset()  # a frame that stopped mid-way will never finish

    def _on_lost(self, error: DeviceError) -> None:
        self._inbox.put(error)

    def _write(self, data: bytes) -> None:
        with self._write_lock:
            self._serial.write(data)
            self._serial.flush()

    def _drain(self) -> None:
        self._early.clear()
        while True:
            try:
                self._inbox.get_nowait()
            except queue.Empty:
                return

    def _send(self, frame: bytes, txn_id: str) -> None:
        """Send a frame until the terminal ACKs it; TerminalNotRespondingError after ``retries`` tries."""
        for attempt in range(1, self.retries + 1):
            self._write(frame)
            deadline = time.monotonic() + self.ack_timeout
            while (left := deadline - time.monotonic()) > 0:
                try:
                    item = self._inbox.get(timeout=left)
                except queue.Empty:
                    break
                if item == ACK:
                    return
                if item == NAK:
                    log.info("card terminal asked for frame again (try %d)", attempt)
                    break
                if isinstance(item, DeviceError):
                    raise TerminalNotRespondingError(str(item), txn_id)
                if isinstance(item, Frame):  # a result arriving before the ACK: keep it for the waiter
                    self._early.append(item)
        raise TerminalNotRespondingError("the card terminal does not answer: check that it is on and connected; "
                                         "no payment was started", txn_id)

    def _await_result(self, txn_id: str, deadline: float, *, watch_cancel: bool) -> Frame | None:
        """The terminal's R frame for ``txn_id``; None at the deadline or when a cancel was requested."""
        while True:
            if watch_cancel and self._cancel_requested.is_set():
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                item = self._early.pop(0) if self._early else \
                    self._inbox.get(timeout=min(left, 0.05) if watch_cancel else left)
            except queue.Empty:
                continue
            if isinstance(item, DeviceError):
                raise PaymentOutcomeUnknownError(f"{item}; the payment's outcome is unknown", txn_id)
            if isinstance(item, Frame) and item.type == "R" and item.fields and item.fields[0] == txn_id:
                return item
            if isinstance(item, Frame):
                log.info("ignoring a stale frame from the card terminal: %s %s", item.type, item.fields[:1])

    @staticmethod
    def _result(frame: Frame, amount_fen: int) -> PaymentResult | None:
        fields = frame.fields + ("", "")
        code, detail = fields[1], fields[2]
        if code == "U":
            return None
        if code not in _CODES:
            raise PaymentOutcomeUnknownError(f"the card terminal sent an unknown result {code!r}", fields[0])
        outcome = _CODES[code]
        return PaymentResult(fields[0], outcome, amount_fen,  # type: ignore[arg-type]
                             auth_code=detail if outcome == "approved" else "",
                             detail="" if outcome == "approved" else detail)

    # -- the port ------------------------------------------------------------------------------
    def sale(self, *, txn_id: str, amount_fen: int, timeout: float = 60.0) -> PaymentResult:
        _check_sale(txn_id, amount_fen)
        if not self._sale_lock.acquire(blocking=False):
            raise TerminalBusyError("a payment is already under way on this terminal", txn_id)
        try:
            self._drain()
            self._cancel_requested.clear()
            self._current = txn_id
            self._send(encode_frame("S", txn_id, str(amount_fen), self.currency), txn_id)
            log.info("sale %s of %d fen started", txn_id, amount_fen)
            frame = self._await_result(txn_id, time.monotonic() + timeout, watch_cancel=True)
            if frame is not None:
                result = self._result(frame, amount_fen)
                if result is None:
                    raise PaymentOutcomeUnknownError("the card terminal lost the sale it had accepted", txn_id)
                return result
            # The patient cancelled, or did not pay in time: stop the terminal and learn how it ended.
            timed_out = not self._cancel_requested.is_set()
            try:
                self._send(encode_frame("C", txn_id), txn_id)
            except TerminalNotRespondingError:
                raise PaymentOutcomeUnknownError("the card terminal stopped answering during the payment; "
                                                 "its outcome is unknown", txn_id) from None
            frame = self._await_result(txn_id, time.monotonic() + self.cancel_timeout, watch_cancel=False)
            if frame is None:
                raise PaymentOutcomeUnknownError("the card terminal did not confirm the cancel; "
                                                 "the payment's outcome is unknown", txn_id)
            result = self._result(frame, amount_fen)
            if result is None or result.outcome == "cancelled":
                return PaymentResult(txn_id, "timed_out" if timed_out else "cancelled", amount_fen,
                                     detail=result.detail if result else "")
            return result  # approved or declined just before the cancel arrived
        finally:
            self._current = None
            self._sale_lock.release()

    def cancel(self) -> None:
        if self._current is not None:
            self._cancel_requested.set()

    def query(self, txn_id: str) -> PaymentResult | None:
        _check_sale(txn_id, 1)
        with self._sale_lock:
            self._drain()
            self._send(encode_frame("Q", txn_id), txn_id)
            frame = self._await_result(txn_id, time.monotonic() + self.cancel_timeout, watch_cancel=False)
            if frame is None:
                raise TerminalNotRespondingError("the card terminal did not answer the query", txn_id)
            fields = frame.fields + ("", "", "")
            amount = int(fields[3]) if fields[3].isdigit() else 0
            return self._result(frame, amount)

    def close(self) -> None:
        if not self._link.closed:
            self._cancel_requested.set()  # a sale in progress stops waiting
            self._link.close()


class FakePaymentTerminal:
    """A ``PaymentTerminal`` without a device, for kiosk tests and demos.

    Set ``next_outcome`` to "approved", "declined", "timed_out", "no_answer" (raises
    TerminalNotRespondingError) or "unknown" (raises PaymentOutcomeUnknownError). With
    ``hold=True`` a sale waits, as for a patient at the terminal, until ``complete(outcome)``,
    ``cancel()`` or its timeout. Every sale is recorded in ``sales`` with its result in ``results``.
    """

    def __init__(self, next_outcome: str = "approved", *, hold: bool = False) -> None:
        self.next_outcome = next_outcome
        self.hold = hold
        self.sales: list[tuple[str, int]] = []
        self.results: dict[str, PaymentResult] = {}
        self._done = threading.Event()
        self._held_outcome: str | None = None
        self._lock = threading.Lock()
        self._busy = False

    def sale(self, *, txn_id: str, amount_fen: int, timeout: float = 60.0) -> PaymentResult:
        _check_sale(txn_id, amount_fen)
        with self._lock:
            if self._busy:
                raise TerminalBusyError("a payment is already under way on this terminal", txn_id)
            self._busy = True
            self._done.clear()
        try:
            self.sales.append((txn_id, amount_fen))
            outcome = self.next_outcome
            if outcome == "no_answer":
                raise TerminalNotRespondingError("the card terminal does not answer; no payment was started", txn_id)
            if outcome == "unknown":
                raise PaymentOutcomeUnknownError("the card terminal fell silent; the outcome is unknown", txn_id)
            if self.hold:
                outcome = (self._held_outcome or "timed_out") if self._done.wait(timeout) else "timed_out"
            result = PaymentResult(txn_id, outcome, amount_fen,  # type: ignore[arg-type]
                                   auth_code=f"FAKE{len(self.sales):04d}" if outcome == "approved" else "")
            self.results[txn_id] = result
            return result
        finally:
            self._held_outcome = None
            with self._lock:
                self._busy = False

    def complete(self, outcome: str = "approved") -> None:
        """The patient finished at the terminal (held mode)."""
        self._held_outcome = outcome
        self._done.set()

    def cancel(self) -> None:
        if self._busy:
            self.complete("cancelled")

    def query(self, txn_id: str) -> PaymentResult | None:
        return self.results.get(txn_id)

    def close(self) -> None:
        self.cancel()
