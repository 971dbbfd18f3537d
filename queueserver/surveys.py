"""``Surveys``: the patient's satisfaction rating (1-5) after the visit, once per ticket."""
from __future__ import annotations

from sqlalchemy import update

from queueserver.context import QueueContext
from queueserver.dashboard.aggregate import reopen_day
from queueserver.errors import SurveyNotOpen
from queueserver.store import tickets


class Surveys:
    """Ratings of finished visits."""

    def __init__(self, ctx: QueueContext) -> None:
        self.ctx = ctx

    def record(self, ticket_id: str, score: int, comment: str = "") -> None:
        """Store the rating; ``SurveyNotOpen`` before the visit is finished or for a second rating."""
        with self.ctx.store.tx() as tx:
            t = self.ctx.ticket_row(tx.conn, ticket_id)
            if t["status"] != "done":
                raise SurveyNotOpen("The survey opens once your visit is finished.")
            if t["survey_score"] is not None:
                raise SurveyNotOpen("Thank you: this visit was already rated.")
            tx.conn.execute(update(tickets).where(tickets.c.ticket_id == ticket_id).values(
                survey_score=score, survey_comment=comment.strip()[:500] or None))
            reopen_day(tx.conn, t["day"])  # a rating of a day the dashboard closed already
