"""Card terminal: a patient pays a bill; every way it can end is said clearly and nothing is taken twice."""
from __future__ import annotations

import threading
import time

import pytest

from hardware.payment_terminal import (
    FakePaymentTerminal,
    PaymentOutcomeUnknownError,
    PaymentTerminal,
    SerialPaymentTerminal,
    TerminalBusyError,
    TerminalNotRespondingError,
)
from tests.hardware_sims import TerminalSim


@pytest.fixture
def sim():
    terminal_sim = TerminalSim()
    try:
        yield terminal_sim
    finally:
        terminal_sim.close()


@pytest.fixture
def terminal(sim):
    t = SerialPaymentTerminal(port=sim.path, ack_timeout=0.2, retries=3, cancel_timeout=0.5)
    try:
        yield t
    finally:
        t.close()


def _wait(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_terminal_approved_sale(sim, terminal):
    assert isinstance(terminal, PaymentTerminal)
    result = terminal.sale(txn_id="K1-0001", amount_fen=3500, timeout=5)
    assert result.approved and result.auth_code == "AUTH01" and result.amount_fen == 3500
    assert sim.sales == [("K1-0001", "3500", "CNY")]
    _wait(lambda: sim.acks == 1)  # the kiosk acknowledged the result, so the terminal stops repeating it


def test_terminal_declined_sale_says_why(sim, terminal):
    sim.mode = "decline"
    result = terminal.sale(txn_id="K1-0002", amount_fen=3500, timeout=5)
    assert result.outcome == "declined" and result.detail == "insufficient funds" and not result.auth_code


def test_terminal_patient_pays_after_a_while(sim, terminal):
    sim.mode = "wait"
    threading.Thread(target=lambda: (sim.sale_seen.wait(3), time.sleep(0.1), sim.tap()), daemon=True).start()
    result = terminal.sale(txn_id="K1-0003", amount_fen=120, timeout=5)
    assert result.approved and result.auth_code == "AUTH04"


def test_terminal_patient_cancels_on_the_screen(sim, terminal):
    sim.mode = "wait"
    threading.Thread(target=lambda: (sim.sale_seen.wait(3), terminal.cancel()), daemon=True).start()
    result = terminal.sale(txn_id="K1-0004", amount_fen=3500, timeout=5)
    assert result.outcome == "cancelled" and sim.cancels == ["K1-0004"]


def test_terminal_patient_does_not_pay_in_time(sim, terminal):
    sim.mode = "wait"
    started = time.monotonic()
    result = terminal.sale(txn_id="K1-0005", amount_fen=3500, timeout=0.3)
    assert result.outcome == "timed_out" and sim.cancels == ["K1-0005"]
    assert time.monotonic() - started < 2
    sim.mode = "approve"
    assert terminal.sale(txn_id="K1-0006", amount_fen=3500, timeout=5).approved  # no stuck state


def test_terminal_approval_that_crossed_the_cancel_is_reported_as_approved(sim, terminal):
    sim.mode = "approve_on_cancel"
    result = terminal.sale(txn_id="K1-0007", amount_fen=3500, timeout=0.3)
    assert result.approved  # the money moved: saying "timed out" would make the patient pay twice


def test_terminal_that_never_answers_is_a_clear_error_and_no_stuck_state(sim, terminal):
    sim.mode = "silent"
    started = time.monotonic()
    with pytest.raises(TerminalNotRespondingError, match="does not answer") as err:
        terminal.sale(txn_id="K1-0008", amount_fen=3500, timeout=5)
    assert err.value.txn_id == "K1-0008" and "no payment was started" in str(err.value)
    assert 0.5 < time.monotonic() - started < 2  # three tries of 0.2 s
    sim.mode = "approve"
    assert terminal.sale(txn_id="K1-0009", amount_fen=3500, timeout=5).approved


def test_terminal_that_falls_silent_mid_sale_gives_an_unknown_outcome(sim, terminal):
    sim.mode = "ack_then_silent"
    with pytest.raises(PaymentOutcomeUnknownError, match="unknown") as err:
        terminal.sale(txn_id="K1-0010", amount_fen=3500, timeout=0.3)
    assert err.value.txn_id == "K1-0010"
    sim.mode = "approve"
    assert terminal.sale(txn_id="K1-0011", amount_fen=3500, timeout=5).approved


def test_terminal_damaged_frames_are_repeated(sim, terminal):
    sim.mode = "nak_first"  # the terminal could not read our sale frame: we send it again
    assert terminal.sale(txn_id="K1-0012", amount_fen=800, timeout=5).approved
    sim.mode = "garbled_first"  # its result reached us damaged: we NAK, it repeats
    result = terminal.sale(txn_id="K1-0013", amount_fen=800, timeout=5)
    assert result.approved and result.auth_code == "AUTH02" and sim.naks_received == 1


def test_terminal_query_after_a_kiosk_restart(sim, terminal):
    terminal.sale(txn_id="K1-0014", amount_fen=3500, timeout=5)
    terminal.close()  # the kiosk lost power here
    restarted = SerialPaymentTerminal(port=sim.path, ack_timeout=0.2, cancel_timeout=0.5)
    try:
        result = restarted.query("K1-0014")
        assert result is not None and result.approved and result.amount_fen == 3500
        assert restarted.query("K1-9999") is None  # never reached the terminal: nothing was taken
    finally:
        restarted.close()


def test_terminal_one_sale_at_a_time_and_bad_amounts(sim, terminal):
    sim.mode = "wait"
    worker = threading.Thread(target=lambda: terminal.sale(txn_id="K1-0015", amount_fen=100, timeout=2), daemon=True)
    worker.start()
    sim.sale_seen.wait(3)
    with pytest.raises(TerminalBusyError):
        terminal.sale(txn_id="K1-0016", amount_fen=100, timeout=1)
    terminal.cancel()
    worker.join(5)
    for bad in (0, -5, 10**9, 12.5):
        with pytest.raises(ValueError):
            terminal.sale(txn_id="K1-0017", amount_fen=bad)


def test_fake_payment_terminal_scripts_every_outcome():
    fake = FakePaymentTerminal()
    assert isinstance(fake, PaymentTerminal)
    assert fake.sale(txn_id="F1", amount_fen=100).approved
    fake.next_outcome = "declined"
    assert fake.sale(txn_id="F2", amount_fen=100).outcome == "declined"
    fake.next_outcome = "no_answer"
    with pytest.raises(TerminalNotRespondingError):
        fake.sale(txn_id="F3", amount_fen=100)
    fake.next_outcome, fake.hold = "approved", True
    assert fake.sale(txn_id="F4", amount_fen=100, timeout=0.05).outcome == "timed_out"
    threading.Timer(0.05, fake.cancel).start()
    assert fake.sale(txn_id="F5", amount_fen=100, timeout=5).outcome == "cancelled"
    assert fake.query("F1").approved and fake.query("F3") is None
