"""ID and insurance card readers behind the ``CardReader`` port: serial readers, PC/SC (optional), the fake.

    reader = SerialCardReader(port="/dev/ttyUSB1")
    card = reader.read(timeout=30)        # CardData; CardReadError for a damaged or invalid read
    reader.when_card = lambda card: ...   # or callbacks, from the reader's thread

Serial readers send one frame per card presented, in the framed protocol of
``hardware.serial_frames`` (documented in docs/hardware.md, "Card reader frames"):

* ``I`` ID card: ``id_number US name US birth_date(YYYYMMDD)``
* ``M`` insurance card: ``card_number US name [US id_number]``
* ``E`` the reader could not read the card: ``reason``

A frame with a wrong checksum, a cut-off frame, an ID number whose check digit (GB 11643)
is wrong or whose birth date disagrees with the number, is reported as ``CardReadError``
and dropped; the reader keeps going. ``CardData``'s ``repr`` never shows a full name or number.
"""
from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, Protocol, runtime_checkable

from protocol.errors import DeviceError
from protocol.privacy import mask_name

from hardware.device_events import DeviceClosed, EventSource, ReadTimeout
from hardware.serial_frames import Frame, FrameError, FrameParser, encode_frame
from hardware.serial_port import SerialPortReader

__all__ = ["CardData", "CardReader", "CardReadError", "SerialCardReader", "PcscCardReader", "FakeCardReader",
           "ReadTimeout", "DeviceClosed", "id_number_valid", "card_frame"]

log = logging.getLogger(__name__)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_CARD_NO = re.compile(r"^[A-Za-z0-9]{6,32}$")


class CardReadError(DeviceError, ValueError):
    """A card could not be read cleanly: damaged frame, invalid number, or the reader's own error."""


def id_number_valid(number: str) -> bool:
    """True for an 18-character resident ID number with the right check character (GB 11643-1999)."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS))
    return number[17].upper() == _ID_CHECK[total % 11]


@dataclass(frozen=True)
class CardData:
    """What a card says about its holder. ``kind`` is "id" (resident ID) or "insurance"."""

    kind: Literal["id", "insurance"]
    number: str = field(repr=False)
    name: str = field(repr=False)
    id_number: str | None = field(default=None, repr=False)
    birth_date: date | None = field(default=None, repr=False)

    @property
    def masked(self) -> str:
        """For logs and screens: kind, the last four characters of the number, the masked name."""
        return f"{self.kind} card ****{self.number[-4:]} {mask_name(self.name)}"


def _card_from_frame(frame: Frame) -> CardData:
    f = frame.fields
    if frame.type == "E":
        reason = f[0] if f and f[0] else "the card could not be read"
        raise CardReadError(f"card reader: {reason}")
    if frame.type == "I":
        if len(f) != 3:
            raise CardReadError(f"ID card frame has {len(f)} fields, expected 3")
        number, name, born = f
        if not id_number_valid(number):
            raise CardReadError("ID card number is not valid (wrong check digit): please present the card again")
        try:
            birth = date(int(born[:4]), int(born[4:6]), int(born[6:8])) if len(born) == 8 and born.isdigit() else None
        except ValueError:
            birth = None
        if birth is None or born != number[6:14]:
            raise CardReadError("ID card birth date does not match the number: please present the card again")
        if not 1 <= len(name) <= 30:
            raise CardReadError("ID card name is missing or too long")
        return CardData("id", number.upper(), name, number.upper(), birth)
    if frame.type == "M":
        if len(f) not in (2, 3):
            raise CardReadError(f"insurance card frame has {len(f)} fields, expected 2 or 3")
        number, name = f[0], f[1]
        id_number = f[2] if len(f) == 3 and f[2] else None
        if not _CARD_NO.match(number):
            raise CardReadError("insurance card number is not valid: please present the card again")
        if id_number is not None and not id_number_valid(id_number):
            raise CardReadError("insurance card holds an invalid ID number")
        if not 1 <= len(name) <= 30:
            raise CardReadError("insurance card name is missing or too long")
        return CardData("insurance", number, name, id_number.upper() if id_number else None)
    raise CardReadError(f"card reader sent an unknown frame type {frame.type!r}")


def card_frame(card: CardData) -> bytes:
    """The frame a serial reader sends for ``card`` (for simulators and the fake)."""
    if card.kind == "id":
        born = card.birth_date.strftime("%Y%m%d") if card.birth_date else (card.id_number or card.number)[6:14]
        return encode_frame("I", card.number, card.name, born)
    fields = [card.number, card.name] + ([card.id_number] if card.id_number else [])
    return encode_frame("M", *fields)


@runtime_checkable
class CardReader(Protocol):
    """Port: a reader of ID and insurance cards."""

    when_card: Callable[[CardData], None] | None
    when_error: Callable[[DeviceError], None] | None

    def read(self, timeout: float | None = None) -> CardData:
        """The next card; raises CardReadError, ReadTimeout or DeviceClosed."""

    def clear(self) -> None: ...

    def close(self) -> None: ...


class _ReaderBase(EventSource[CardData]):
    def __init__(self) -> None:
        super().__init__("card reader")
        self._parser = FrameParser()

    when_card = EventSource.when_item  # the domain word for it

    def _feed(self, data: bytes) -> None:
        for item in self._parser.feed(data):
            if isinstance(item, FrameError):
                self._events.put(CardReadError(f"damaged card data ({item}): please present the card again"))
            elif isinstance(item, Frame):
                try:
                    card = _card_from_frame(item)
                except CardReadError as exc:
                    self._events.put(exc)
                else:
                    log.info("card read: %s", card.masked)
                    self._events.put(card)
            # ACK/NAK bytes mean nothing from a card reader

    def _quiet(self) -> None:
        err = self._parser.reset()
        if err is not None:
            self._events.put(CardReadError(f"damaged card data ({err}): please present the card again"))



class SerialCardReader(_ReaderBase):
    """``CardReader`` on a serial reader (see the module docstring for the frames); pyserial, own thread."""

    def __init__(self, *, port: str, baudrate: int = 9600, frame_timeout: float = 0.5) -> None:
        super().__init__()
        self._link = SerialPortReader(port=port, baudrate=baudrate, timeout=frame_timeout, device="card reader",
                                      thread_name="card-reader", on_data=self._feed, on_quiet=self._quiet,
                                      on_lost=self._events.put)
        self._link.start()

    @property
    def serial(self) -> Any:
        return self._link.serial

    def close(self) -> None:
        if not self._link.closed:
            self._link.close()
            self._events.close()


class PcscCardReader(_ReaderBase):
    """``CardReader`` on a PC/SC reader through pyscard (optional: ``pip install pyscard``, ``pcscd`` running).

    Contactless insurance and hospital cards are identified by their UID (``GET DATA``
    ``FF CA 00 00 00``, supported by PC/SC part 3 readers); ``lookup(uid)`` turns a UID into
    ``CardData`` (the hospital's card register), returning None for an unknown card.
    """

    GET_UID = [0xFF, 0xCA, 0x00, 0x00, 0x00]

    def __init__(self, *, lookup: Callable[[str], CardData | None], reader: str | None = None,
                 poll_interval: float = 0.3) -> None:
        super().__init__()
        try:
            from smartcard.System import readers
        except ImportError:
            raise DeviceError("PC/SC card readers need pyscard (pip install pyscard) and pcscd") from None
        try:
            available = readers()
        except Exception as exc:
            raise DeviceError(f"PC/SC is not available: {exc}") from None
        chosen = [r for r in available if reader is None or reader in str(r)]
        if not chosen:
            raise DeviceError(f"no PC/SC reader{' named ' + reader if reader else ''} is connected")
        self._reader = chosen[0]
        self._lookup = lookup
        self._poll = poll_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="card-reader-pcsc", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from smartcard.Exceptions import CardConnectionException, NoCardException

        last_uid = None
        while not self._stop.wait(self._poll):
            connection = self._reader.createConnection()
            try:
                connection.connect()
                data, sw1, sw2 = connection.transmit(self.GET_UID)
            except (NoCardException, CardConnectionException):
                last_uid = None  # card removed: the same card may be presented again
                continue
            finally:
                try:
                    connection.disconnect()
                except Exception:
                    pass
            if (sw1, sw2) != (0x90, 0x00):
                self._events.put(CardReadError(f"the card did not give its number (status {sw1:02X}{sw2:02X})"))
                continue
            uid = bytes(data).hex().upper()
            if uid == last_uid:
                continue
            last_uid = uid
            card = self._lookup(uid)
            self._events.put(card if card is not None else CardReadError("this card is not registered here"))

    def close(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(timeout=2)
            self._events.close()


class FakeCardReader(_ReaderBase):
    """A ``CardReader`` without a device: ``present(card)`` sends the card's frame through the real parser,
    ``present_raw(bytes)`` sends any bytes (a wrong checksum, a cut-off frame)."""

    def __init__(self) -> None:
        super().__init__()
        self.presented: list[CardData] = []

    def present(self, card: CardData) -> None:
        self.presented.append(card)
        self._feed(card_frame(card))

    def present_raw(self, data: bytes) -> None:
        self._feed(data)
        self._quiet()

    def close(self) -> None:
        self._events.close()
