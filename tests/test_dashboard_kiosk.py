"""A real kiosk's sessions reach the dashboard: what was done, what was given up and on which screen."""
from __future__ import annotations

from datetime import datetime

from tests.test_kiosk_flows import TZ, Kiosk, server  # noqa: F401  (the kiosk flows' module server)


def test_a_check_in_and_an_abandoned_one_show_in_the_kiosk_figures(server):  # noqa: F811
    kiosk = Kiosk(server.base_url, server.tokens["kiosk"])
    vm = kiosk.vm
    vm.home.choose("checkin")
    for key in "1005":
        vm.checkin.press(key)
    vm.checkin.press("ok")
    assert vm.screen == "ticket"
    vm.go_home()  # done: a ticket came out
    vm.home.choose("checkin")
    vm.checkin.press("9")
    vm.go_home()  # gave up on the number pad
    vm.home.choose("payment")  # gave up before identifying
    vm.end_session()
    today = datetime.now(TZ).date().isoformat()  # the hospital's day (the server runs in TZ)
    body = server.client("manager").get("/api/v1/dashboard/kiosk", params={"first": today, "last": today}).json()
    kinds = {k["kind"]: k for k in body["by_kind"]}
    assert kinds["check_in"]["done"] == 1 and kinds["check_in"]["abandoned"] == 1
    assert kinds["payment"]["abandoned"] == 1 and kinds["payment"]["done"] == 0
    assert {(a["kind"], a["screen"]) for a in body["abandoned_at"]} == {("check_in", "checkin"),
                                                                        ("payment", "identify")}
    assert body["kiosks"] == [vm.settings.device_id]


def test_payments_share_counts_the_cash_desk_the_hospital_backend_records(server):  # noqa: F811
    """The kiosk share of payments comes from the HIS, which alone sees the cash desk: one bill paid at a
    kiosk and two at the desk read as 1 : 2; a backend that cannot tell says "not recorded" (unit check)."""
    from queueserver.dashboard.queries import Dashboard
    from queueserver.hospital.embedded import EmbeddedHospitalBackend

    manager = server.client("manager")
    today = datetime.now(TZ).date().isoformat()  # the hospital's day (the server runs in TZ)

    def share() -> dict:
        return manager.get("/api/v1/dashboard/kiosk", params={"first": today, "last": today}).json()["share"]

    before = share()
    assert before["payments_recorded"] is True
    kiosk = Kiosk(server.base_url, server.tokens["kiosk"])
    vm = kiosk.vm
    vm.home.choose("payment")
    vm.on_card("E12344321")  # Emily Carter pays her bill by bank card at the kiosk
    vm.payment.choose("bank_card")
    assert vm.payment.state == "paid"
    vm.end_session()
    his = EmbeddedHospitalBackend(str(server.data_dir / "hospital.sqlite3"), timezone_name=TZ.key)
    try:  # two patients pay at the cash window (recorded by the HIS, as the cashier's system would)
        desk_bills = his.outstanding_bills("P1001")[:1] + his.outstanding_bills("P1003")[:1]
        assert len(desk_bills) == 2
        for bill in desk_bills:
            his.record_desk_payment(f"desk-{bill.bill_id}", [bill.bill_id], bill.self_pay,
                                    datetime.now(TZ))
        his.record_desk_payment(f"desk-{desk_bills[0].bill_id}", [desk_bills[0].bill_id], desk_bills[0].self_pay,
                                datetime.now(TZ))  # the cashier's retry: counted once
    finally:
        his.close()
    after = share()
    assert after["payments_paid_at_kiosk"] - before["payments_paid_at_kiosk"] == 1
    assert after["payments_paid_at_desk"] - before["payments_paid_at_desk"] == 2
    kiosk_n, desk_n = after["payments_paid_at_kiosk"], after["payments_paid_at_desk"]
    assert after["payment_kiosk_share"] == round(kiosk_n / (kiosk_n + desk_n), 3)
    # a HIS that does not record the desk: the share is "not recorded", never a made-up 0 % or 100 %
    from queueserver.hospital_file import load_hospital
    board = Dashboard(hospital=load_hospital(), read=lambda: None, today=lambda: today)
    assert board._payment_share([today]) == {"payments_recorded": False, "payments_paid_at_kiosk": None,
                                             "payments_paid_at_desk": None, "payment_kiosk_share": None}
