"""Today's figures come from cells kept up to date as the day goes: after every kind of change they are
exactly the figures a fold of the day's tickets from scratch gives."""
from __future__ import annotations

from datetime import timezone


from queueserver.dashboard.kiosk_events import KioskEvent, record_kiosk_event
from queueserver.dashboard.queries import Dashboard
from tests.clinic_day import clinic_on_both_stores  # noqa: F401  (the ``clinic`` fixture)
from tests.dashboard_day import simulate




def test_the_open_day_kept_as_the_day_goes_shows_the_same_figures_as_a_fold_from_scratch(clinic):
    simulate(clinic, until="09:30")  # walk-ins, appointments, calls, recalls, no-shows, service, surveys
    svc, day = clinic.service, clinic.day.isoformat()
    board = Dashboard(hospital=svc.hospital, read=clinic.store.read, today=svc.today)

    def same_as_from_scratch(changed: int | None = None) -> int:
        board.forget_open_days()  # the answer cache, not the kept cells
        kept = board.queue_figures(day, day)
        refolded = board.open_day.refolded
        assert kept == board.queue_figures(day, day, raw=True)
        fresh = Dashboard(hospital=svc.hospital, read=clinic.store.read, today=svc.today)
        assert kept == fresh.queue_figures(day, day)
        assert board.kiosk_figures(day, day) == fresh.kiosk_figures(day, day)
        if changed is not None:  # only the tickets that changed were folded again
            assert refolded == changed
        return refolded

    assert same_as_from_scratch() > 40  # the first query folded the whole morning
    same_as_from_scratch(changed=0)

    clinic.later(minutes=2)
    clinic.walk_in("surgery")
    same_as_from_scratch(changed=1)
    clinic.later(minutes=3)
    clinic.call_next("r3")  # the surgery room calls its next patient
    same_as_from_scratch()
    clinic.later(minutes=1)
    svc.recall("r3")
    same_as_from_scratch(changed=1)
    clinic.later(minutes=2)
    svc.no_show("r3")
    same_as_from_scratch(changed=1)
    clinic.later(minutes=1)
    clinic.call_next("r3")
    clinic.later(minutes=1)
    svc.start_service("r3")
    clinic.later(minutes=9)
    finished = svc.finish("r3")
    svc.survey(finished.ticket_id, 2)
    same_as_from_scratch()
    stored = record_kiosk_event(clinic.store, KioskEvent(event_id="k1-0001", kiosk="k1", kind="payment",
                                                         outcome="abandoned", screen="pay_method", seconds=41.5),
                                now=clinic.now.astimezone(timezone.utc), day=day)
    assert stored
    same_as_from_scratch(changed=0)
    assert board.kiosk_figures(day, day)["abandoned_at"] == [{"kind": "payment", "screen": "pay_method", "sessions": 1}]
    moved = clinic.walk_in("surgery")
    svc.transfer(moved["ticket_id"], department="internal")  # a new cell for it, and the one it left
    same_as_from_scratch()
    clinic.later(minutes=30)
    svc.end_of_day()  # every waiting ticket cancelled at once
    same_as_from_scratch()
    assert board.queue_figures(day, day)["total"]["cancelled"] > 0
