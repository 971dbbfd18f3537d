"""The managers' dashboard: daily aggregates of the queue, kiosk usage, plots and a weekly PDF report.

- ``tables``: the aggregate tables (Alembic revision 0005), on the store's MetaData;
- ``aggregate``: folds one day's tickets and kiosk events into per department/room/hour cells;
  ``close_day`` stores them once the day is over; ``open_day``: today's cells, kept up to date as
  the day goes (only changed tickets folded again);
- ``quantiles``: the median/p90 definition shared by the dashboard and ``/api/v1/stats``;
- ``queries``: the figures of a date range (per department, room, hour, day; before/after);
- ``plots`` and ``report``: SVG plots for the page, the weekly A4 PDF (zh/en);
- ``scheduler``: closes past days and writes the weekly report; ``router``: the HTTP side.

See docs/dashboard.md.
"""
