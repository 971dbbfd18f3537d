"""The administrator changes the hospital through the API: validated, applied live, kept across a restart."""
from __future__ import annotations


def test_admin_changes_rules_and_rooms_live_and_they_survive_a_restart(queue_server):
    with queue_server.client("admin") as admin, queue_server.client("kiosk") as kiosk:
        config = admin.get("/api/v1/admin/hospital").json()
        assert config["rules"]["priority_ratio"] == 2
        config["rules"]["priority_ratio"] = 1
        config["rooms"].append({"id": "r5", "name": {"zh": "5 诊室", "en": "room 5"}, "departments": ["surgery"]})
        changed = admin.put("/api/v1/admin/hospital", json=config)
        assert changed.status_code == 200, changed.text
        assert admin.get("/api/v1/rooms/r5/state").json()["room_name"]["en"] == "room 5"
        assert kiosk.put("/api/v1/admin/hospital", json=config).status_code == 403

        bad = dict(config, rules=dict(config["rules"], priority_ratio=0))
        refused = admin.put("/api/v1/admin/hospital", json=bad)
        assert refused.status_code == 422
        assert refused.json()["detail"] == "rules.priority_ratio: Input should be greater than or equal to 1 (got 0)"

        # A room with a patient waiting for it cannot disappear.
        kiosk.post("/api/v1/checkins", json={"appointment_no": "AP1006"})  # booked into r2
        without_r2 = dict(config, rooms=[r for r in config["rooms"] if r["id"] != "r2"],
                          clinicians=[dict(c, rooms=[r for r in c["rooms"] if r != "r2"]) for c in config["clinicians"]])
        kept = admin.put("/api/v1/admin/hospital", json=without_r2)
        assert kept.status_code == 409 and "Room r2 still has patients" in kept.json()["detail"]

    queue_server.stop()
    queue_server.start()
    with queue_server.client("admin") as admin:
        assert admin.get("/api/v1/admin/hospital").json()["rules"]["priority_ratio"] == 1
        assert admin.get("/api/v1/rooms/r5/state").status_code == 200
