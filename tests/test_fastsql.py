"""The prepared SQLite path stores and reads back exactly what SQLAlchemy does.

Tickets written through ``queueserver.fastsql`` are read by the statistics, the pages and
PostgreSQL-shaped code through plain SQLAlchemy, and the other way round: a datetime that
came back naive or shifted, or a flag that came back as 0, would move patients in the queue.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, insert, select, update

from queueserver.fastsql import Prepared, StatementRunner
from queueserver.store import tickets

SHANGHAI = timezone(timedelta(hours=8))


@pytest.fixture()
def store(sqlite_store):
    return sqlite_store


def ticket_values(**over: object) -> dict:
    values = {c.name: None for c in tickets.columns}
    values.update(ticket_id="t1", day="2026-11-23", department="internal", number_seq=7, number="A007",
                  source="appointment", masked_name="张*", language="zh", emergency=True, is_returning=False,
                  issued_at=datetime(2026, 11, 23, 9, 30, 15, 123456, tzinfo=SHANGHAI),
                  arrived_at=datetime(2026, 11, 23, 1, 30, 15, 123456, tzinfo=timezone.utc),
                  slot_start=datetime(2026, 11, 23, 9, 30, tzinfo=SHANGHAI), status="waiting",
                  recall_count=0, recalls_total=0, no_show_count=0)
    values.update(over)
    return values


def test_rows_written_fast_read_the_same_through_sqlalchemy_and_back(store):
    run = StatementRunner(store.engine.dialect)
    with store.tx() as tx:
        stored = run(tx.conn, insert(tickets).returning(*tickets.c), ticket_values()).one()
    assert stored["issued_at"] == datetime(2026, 11, 23, 1, 30, 15, 123456, tzinfo=timezone.utc)
    assert stored["issued_at"].tzinfo is not None and stored["emergency"] is True
    assert stored["is_returning"] is False and stored["called_at"] is None
    with store.read() as conn:
        via_sqlalchemy = dict(conn.execute(select(tickets)).mappings().one())
        via_fast = run(conn, select(tickets).where(tickets.c.ticket_id == bindparam("tid")), {"tid": "t1"}).one()
    assert via_fast == via_sqlalchemy == stored


def test_updates_report_how_many_rows_changed_and_defaults_come_from_the_statement(store):
    run = StatementRunner(store.engine.dialect)
    with store.tx() as tx:
        run(tx.conn, insert(tickets), ticket_values())
        called = update(tickets).where(tickets.c.ticket_id == bindparam("tid"), tickets.c.status == "waiting") \
            .values(status="called", called_at=bindparam("now"))
        now = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)
        assert run(tx.conn, called, {"tid": "t1", "now": now}).rowcount == 1
        assert run(tx.conn, called, {"tid": "t1", "now": now}).rowcount == 0  # no longer waiting
        row = run(tx.conn, select(tickets.c.status, tickets.c.called_at)).one()
    assert row == {"status": "called", "called_at": now}


def test_a_missing_parameter_is_a_clear_error_not_a_null(store):
    run = StatementRunner(store.engine.dialect)
    with store.read() as conn:
        with pytest.raises(KeyError, match="'tid'"):
            run(conn, select(tickets).where(tickets.c.ticket_id == bindparam("tid")), {})


def test_expanding_in_lists_are_refused_at_preparation(store):
    stmt = select(tickets).where(tickets.c.ticket_id.in_(bindparam("ids", expanding=True)))
    with pytest.raises(ValueError, match="positional"):
        Prepared(stmt, store.engine.dialect)


def test_datetimes_are_stored_as_the_same_text_either_way(store):
    """Written fast, read by SQLAlchemy, and the reverse, including a whole second (no microseconds)."""
    run = StatementRunner(store.engine.dialect)
    whole = datetime(2026, 11, 23, 9, 0, 0, tzinfo=SHANGHAI)
    with store.tx() as tx:
        run(tx.conn, insert(tickets), ticket_values(ticket_id="fast", number="A001", issued_at=whole))
        tx.conn.execute(insert(tickets).values(**ticket_values(ticket_id="slow", number="A002", issued_at=whole)))
        texts = dict(tx.conn.exec_driver_sql("SELECT ticket_id, issued_at FROM qs_tickets").all())
        fast = run(tx.conn, select(tickets.c.ticket_id, tickets.c.issued_at)).all()
    assert texts["fast"] == texts["slow"] == "2026-11-23 01:00:00.000000"
    assert {r["ticket_id"]: r["issued_at"] for r in fast} == {"fast": whole, "slow": whole}
