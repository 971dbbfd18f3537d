"""Alembic environment of the queue store.

The server runs migrations itself at start (``Store.migrate``), handing Alembic its open
connection; ``alembic upgrade head`` from the repository root (``alembic.ini``) works too,
with ``-x db=PATH_OR_URL``.
"""
from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from queueserver.store import database_url, metadata
import queueserver.store_help  # noqa: F401,E402  (help, session and answer tables share the metadata)
import queueserver.dashboard.tables  # noqa: E402,F401  (the dashboard's tables share the MetaData)
import queueserver.fleet.tables  # noqa: E402,F401  (the fleet page's alert history and accepted configs)

config = context.config
target_metadata = metadata


def _include(obj, name, type_, reflected, compare_to):  # the hospital backend's his_* tables are not ours
    return not (type_ == "table" and name and not name.startswith("qs_"))


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, include_object=_include,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
        return
    db = context.get_x_argument(as_dictionary=True).get("db") or config.get_main_option("sqlalchemy.url")
    if not db:
        raise RuntimeError("no database: pass -x db=URL or set sqlalchemy.url")
    engine = create_engine(database_url(db))
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, include_object=_include,
                          render_as_batch=conn.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()


run()
