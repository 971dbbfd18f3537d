"""The queue server's hot statements, run straight on the driver's connection (sqlite3 or psycopg).

SQLAlchemy Core costs about 20-35 us per execution of an already compiled statement on this
hardware (execution context, events, result metadata), and 100+ us on a loaded machine with
psycopg; sqlite3 itself needs about 3 us. A check-in or a call runs a dozen statements, and
one writer thread does all the work, so that overhead alone was a third of the server's time
per operation.

:class:`Prepared` compiles a Core statement once with positional parameters for the store's
dialect and keeps SQLAlchemy's own bind and result processors for each parameter and column,
so values are stored and read back exactly as through SQLAlchemy (datetimes, booleans, the
``UTCDateTime`` decorator). On PostgreSQL psycopg then prepares each statement server-side
after its fifth use (its ``prepare_threshold``), so the server parses and plans it once.
Statements are written once, as Core, for both databases; rows come back as dicts
(``row["column"]``). Other drivers go through ``Connection.execute``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import Executable
from sqlalchemy.sql.selectable import Select

_REQUIRED = object()


class Rows:
    """The answer of one statement: its rows (dicts) and how many rows it changed."""

    __slots__ = ("rows", "rowcount")

    def __init__(self, rows: list[dict[str, Any]], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def first(self) -> dict[str, Any] | None:
        return self.rows[0] if self.rows else None

    def one(self) -> dict[str, Any]:
        if len(self.rows) != 1:
            raise LookupError(f"expected one row, got {len(self.rows)}")
        return self.rows[0]

    def all(self) -> list[dict[str, Any]]:
        return self.rows

    def scalar_one(self) -> Any:
        return next(iter(self.one().values()))


class Prepared:
    """One Core statement compiled for a positional-parameter dialect (SQLite), run on the raw cursor."""

    def __init__(self, stmt: Executable, dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        if compiled.positiontup is None or "POSTCOMPILE" in str(compiled):
            raise ValueError("only statements with plain positional parameters can be prepared")
        self.sql = str(compiled)
        self._params: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            default = _REQUIRED if bind.required else bind.value
            self._params.append((name, default, bind.type.dialect_impl(dialect).bind_processor(dialect)))
        # A SELECT's columns, or the RETURNING columns of an INSERT/UPDATE (none: no rows back).
        columns: Sequence[Any] = list(stmt.selected_columns if isinstance(stmt, Select)
                                      else getattr(stmt, "exported_columns", ()))
        self._keys = [c.key for c in columns]
        self._procs = [_result_processor(c.type, dialect) for c in columns]
        self._returns = bool(columns)

    def execute(self, raw: Any, params: Mapping[str, Any]) -> Rows:
        args = []
        for name, default, proc in self._params:
            value = params.get(name, default)
            if value is _REQUIRED:
                raise KeyError(f"a value is required for the parameter {name!r}")
            args.append(proc(value) if proc is not None else value)
        cursor = raw.execute(self.sql, args)
        if not self._returns:
            return Rows([], cursor.rowcount)
        keys, procs = self._keys, self._procs
        rows = [{k: (p(v) if p is not None else v) for k, p, v in zip(keys, procs, record)}
                for record in cursor.fetchall()]
        return Rows(rows, cursor.rowcount)


def positional(dialect: Dialect) -> Dialect | None:
    """The dialect with positional parameters that ``Prepared`` compiles for (None: not supported)."""
    if dialect.name == "sqlite":
        return dialect  # qmark already
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

        fmt = PGDialect_psycopg(paramstyle="format")  # %s placeholders, which psycopg takes as a list
        fmt.server_version_info = dialect.server_version_info
        return fmt
    return None


def _result_processor(type_: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    try:
        return type_.dialect_impl(dialect).result_processor(dialect, None)  # type: ignore[no-any-return]
    except (TypeError, ValueError):  # PostgreSQL's numeric types want the column's type oid: psycopg's own
        return None                  # float and int values are already what SQLAlchemy would give


class StatementRunner:
    """Runs Core statements on a connection: prepared on sqlite3 and psycopg, through SQLAlchemy elsewhere."""

    def __init__(self, dialect: Dialect) -> None:
        compile_for = positional(dialect)
        self.dialect = compile_for or dialect
        self.fast = compile_for is not None
        self._prepared: dict[int, tuple[Executable, Prepared]] = {}

    def __call__(self, conn: Connection, stmt: Executable, params: Mapping[str, Any] | None = None) -> Rows:
        params = params or {}
        if not self.fast:
            result = conn.execute(stmt, dict(params))
            rows = [dict(r) for r in result.mappings()] if result.returns_rows else []
            return Rows(rows, result.rowcount)
        hit = self._prepared.get(id(stmt))
        if hit is None or hit[0] is not stmt:  # the statement itself is kept, so its id stays unique
            hit = (stmt, Prepared(stmt, self.dialect))
            self._prepared[id(stmt)] = hit
        return hit[1].execute(conn.connection.driver_connection, params)
