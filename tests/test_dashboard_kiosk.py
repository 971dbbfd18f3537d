"""A real kiosk's sessions reach the dashboard: what was done, what was given up and on which screen."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from tests.test_kiosk_flows import Kiosk, server  # noqa: F401  (the kiosk flows' module server)


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
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    body = server.client("manager").get("/api/v1/dashboard/kiosk", params={"first": today, "last": today}).json()
    kinds = {k["kind"]: k for k in body["by_kind"]}
    assert kinds["check_in"]["done"] == 1 and kinds["check_in"]["abandoned"] == 1
    assert kinds["payment"]["abandoned"] == 1 and kinds["payment"]["done"] == 0
    assert {(a["kind"], a["screen"]) for a in body["abandoned_at"]} == {("check_in", "checkin"),
                                                                        ("payment", "identify")}
    assert body["kiosks"] == [vm.settings.device_id]
