"""``StatusReplyDummy``: python-escpos' in-memory ``Dummy`` that answers real-time status requests.

A real ESC/POS printer answers ``DLE EOT n`` with one status byte (bits 1 and 4 always
set). ``Dummy`` keeps what it is sent but never answers, so a printer built on it can only
say "unknown". This fake answers like a printer with a paper sensor and a cover switch::

    dummy = StatusReplyDummy(paper="low")          # ok | low | out
    printer = EscposTicketPrinter(device=dummy)
    printer.status()                               # PrinterStatus(paper=LOW, online=True, ...)
    dummy.cover_open = True                        # status(): offline, "cover open"

``state_file`` lets another process play the technician: each answer re-reads the file,
whose words set the state (``paper=out``, ``cover=open``, ``silent`` for a printer that
has stopped answering). The kiosk takes it as ``--printer dummy-status:PATH``.
Bytes sent stay in ``output`` as with ``Dummy``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from escpos.printer import Dummy

_BASE = 0x12  # bits 1 and 4: fixed in every real-time status byte
_OFFLINE = 0x08
_COVER_OPEN = 0x04
_PAPER_NEAR_END = 0x0C
_PAPER_END = 0x60


class StatusReplyDummy(Dummy):  # type: ignore[misc]
    """A ``Dummy`` with a paper sensor and cover switch that answers ``DLE EOT 1/2/4`` (see the module docstring)."""

    def __init__(self, *, paper: str = "ok", cover_open: bool = False, silent: bool = False,
                 state_file: str | Path | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.paper = paper
        self.cover_open = cover_open
        self.silent = silent
        self.state_file = Path(state_file) if state_file else None
        self._answers: list[int] = []
        self._device = self  # "connected": python-escpos reads ``.device`` before talking to it

    def open(self, raise_not_found: bool = True) -> None:  # the in-memory device is always there
        self._device = self

    def _reload(self) -> None:
        if self.state_file is None:
            return
        try:
            words = self.state_file.read_text(encoding="utf-8").split()
        except OSError:
            words = []
        state = dict(w.split("=", 1) for w in words if "=" in w)
        self.paper = state.get("paper", "ok")
        self.cover_open = state.get("cover", "closed") == "open"
        self.silent = "silent" in words

    def _raw(self, msg: bytes) -> None:
        super()._raw(msg)
        for n in (1, 2, 4):
            if bytes([0x10, 0x04, n]) in msg:
                self._reload()
                if not self.silent:
                    self._answers.append(self._status_byte(n))

    def _status_byte(self, n: int) -> int:
        offline = self.cover_open or self.paper == "out"
        if n == 1:
            return _BASE | (_OFFLINE if offline else 0)
        if n == 2:
            return _BASE | (_COVER_OPEN if self.cover_open else 0)
        return _BASE | {"ok": 0, "low": _PAPER_NEAR_END, "out": _PAPER_NEAR_END | _PAPER_END}.get(self.paper, 0)

    def _read(self) -> bytes:
        answers, self._answers = bytes(self._answers), []
        return answers
