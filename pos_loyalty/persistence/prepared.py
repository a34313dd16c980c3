"""Core statements compiled once and run on the driver's own cursor: the counter's hot paths.

SQLAlchemy's execution machinery costs 0.1-0.2 ms a statement in Python; SQLite's own work for a
checkout's indexed reads and inserts is a few microseconds each, and a checkout runs a dozen of
them while it holds the store's write lock. So the statements stay SQLAlchemy Core (written once,
for both databases, against the models' tables) and are compiled once per dialect; each run then
does what SQLAlchemy's execution would do for them and nothing more: fill in the statement's
literal parameters, apply the column types' bind and result processors (UTC timestamps, JSON,
dates, booleans), call the driver, and wrap a driver error as SQLAlchemy's, so callers see the
same ``IntegrityError`` / ``OperationalError`` either way.

What it does not do, and refuses at compile time instead of getting wrong: statements whose
parameters expand at execution (``IN`` lists: write them with ``or_``), Python-side column
defaults that are not plain values, and ``RETURNING``. Nor does it invalidate a pooled connection
the database dropped, as SQLAlchemy's execution would: the unit of work does, when psycopg says
the connection broke (``uow.SqlUnitOfWork.__exit__``), and the pool pings a PostgreSQL connection
parked for more than a moment before it is used again (``db.Parking``); SQLite has no connection
to lose.
"""
from __future__ import annotations

import re
from collections import namedtuple
from operator import itemgetter
from typing import Any, Callable, Sequence

from sqlalchemy import bindparam
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session


ROWS_IN_ONE_MAX = 100  # rows of one multi-row INSERT (beyond, the driver's executemany)


class Prepared:
    """One Core statement, with a compiled plan per dialect (and, for an INSERT, per set of columns
    given). Module-level constants in the repositories; plans are built on first use.

    ``rows_in_one``: an INSERT of many rows goes to PostgreSQL as one statement with a row of
    values each (what SQLAlchemy's own execution does, "insertmanyvalues"), not as the driver's
    executemany, which has the server run the statement once a row: a sale's ten lines took ten
    executions (~1 ms). Only for rows whose order is carried by their own columns (a line's
    number, a product's SKU; their serial ids still follow the VALUES order, as PostgreSQL reads
    the list in order, and tests/test_prepared_statements.py checks it): the ledger's entries,
    whose ids alone order them, stay row by row. SQLite runs an executemany in C within the
    process, at a few µs a row, and keeps it."""

    __slots__ = ("statement", "rows_in_one", "_plans")

    def __init__(self, statement, *, rows_in_one: bool = False) -> None:
        self.statement = statement
        self.rows_in_one = rows_in_one
        self._plans: dict[tuple, _Plan] = {}

    def plan(self, dialect, keys: tuple[str, ...] | None = None) -> "_Plan":
        key = (dialect.name, keys)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _Plan(self.statement, dialect, keys)
        return plan

    def plan_rows(self, dialect, keys: tuple[str, ...], count: int) -> "_Plan":
        """The statement with ``count`` rows of values, one parameter per column and row, named
        ``<column>__<row>`` (``rows_params`` names them so)."""
        key = (dialect.name, keys, count)
        plan = self._plans.get(key)
        if plan is None:
            columns = self.statement.table.c
            rows = [{k: bindparam(f"{k}__{i}", type_=columns[k].type) for k in keys} for i in range(count)]
            plan = self._plans[key] = _Plan(self.statement.values(rows), dialect, None)
        return plan


def rows_params(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {f"{k}__{i}": v for i, row in enumerate(rows) for k, v in row.items()}


class _Plan:
    __slots__ = ("sql", "names", "positional", "processors", "fixed", "row", "result_processors", "returns_rows", "cursor_class",
                 "_pick", "_processed")

    def __init__(self, statement, dialect, keys: tuple[str, ...] | None) -> None:
        # (as for an executemany: no implicit RETURNING of new primary keys, which nothing here reads)
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys is not None else None, for_executemany=True)
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("a statement with parameters that expand at execution cannot be prepared")
        if getattr(compiled, "effective_returning", None):
            raise ValueError("a statement with RETURNING cannot be prepared")
        self.sql = compiled.string
        self.positional = dialect.paramstyle in ("qmark", "format", "numeric")
        self.names = tuple(compiled.positiontup) if self.positional else tuple(dict.fromkeys(compiled.bind_names.values()))
        # psycopg: the statement in PostgreSQL's own numbered form, run on a ``RawCursor``. A
        # ``%(name)s`` statement is parsed by psycopg on every run, and one longer than 4 kB or
        # with over 50 parameters (a sale's lines in one INSERT) is parsed anew each time, uncached.
        self.cursor_class = None
        if not self.positional and dialect.name == "postgresql" and dialect.driver == "psycopg":
            import psycopg

            self.sql, order = _numbered(self.sql)
            if set(order) != set(self.names):
                raise ValueError(f"the statement's placeholders {order} are not its parameters {self.names}")
            self.names, self.positional, self.cursor_class = order, True, psycopg.RawCursor
        given = set(keys or ())
        self.fixed: dict[str, Any] = {}
        self.processors: dict[str, Callable[[Any], Any]] = {}
        for name in self.names:
            bind = compiled.binds[name]
            processor = _bind_processor(bind.type, dialect)
            if processor is not None:
                self.processors[name] = processor
            if name in given or (bind.callable is None and bind.value is None):
                continue  # the caller's to give
            value = bind.effective_value
            self.fixed[name] = processor(value) if processor is not None and value is not None else value
        for column in getattr(compiled, "insert_prefetch", None) or ():
            if column.key in given:
                continue
            default = column.default
            if default is None or not default.is_scalar:
                raise ValueError(f"{column} has a default computed at execution; give it a value")
            value = default.arg
            processor = self.processors.get(column.key)
            self.fixed[column.key] = processor(value) if processor is not None and value is not None else value
        # for the usual call, where the caller gives every parameter (an INSERT of the keys given, a
        # SELECT without literal values): one C call picks them in order, then the processors run
        self._pick = itemgetter(*self.names) if self.names and not self.fixed else None
        self._processed = tuple((i, self.processors[name]) for i, name in enumerate(self.names) if name in self.processors)
        self.returns_rows = statement.is_select
        if self.returns_rows:
            columns = list(statement.selected_columns)
            self.row = namedtuple("Row", [c.key or f"_{i}" for i, c in enumerate(columns)], rename=True)
            self.result_processors = [_result_processor(c.type, dialect) for c in columns]
            if not any(self.result_processors):
                self.result_processors = None
        else:
            self.row, self.result_processors = None, None

    def bind(self, params: dict[str, Any]) -> Any:
        if self._pick is not None and self.positional:
            try:
                picked = self._pick(params)
            except KeyError:
                pass  # a parameter left out: its fixed value, below
            else:
                if len(self.names) == 1:
                    picked = (picked,)
                if not self._processed:
                    return picked
                values = list(picked)
                for i, processor in self._processed:
                    if values[i] is not None:
                        values[i] = processor(values[i])
                return tuple(values)
        fixed, processors = self.fixed, self.processors
        values = []
        for name in self.names:
            if name in params:
                value = params[name]
                processor = processors.get(name)
                if processor is not None and value is not None:
                    value = processor(value)
            else:
                value = fixed[name]
            values.append(value)
        return tuple(values) if self.positional else dict(zip(self.names, values))

    def rows(self, raw: Sequence[tuple]) -> list[Any]:
        make = self.row._make
        processors = self.result_processors
        if processors is None:
            return [make(r) for r in raw]
        return [make([v if p is None or v is None else p(v) for p, v in zip(processors, r)]) for r in raw]


_PYFORMAT = re.compile(r"%(?:%|\(([^)]+)\)s)")


def _numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """A ``%(name)s`` statement in PostgreSQL's ``$1`` form, and its parameters' names in number
    order: a name used twice is one number, and ``%%`` is a ``%``, as psycopg converts them."""
    numbers: dict[str, int] = {}

    def number(match: re.Match) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        if name not in numbers:
            numbers[name] = len(numbers) + 1
        return f"${numbers[name]}"

    return _PYFORMAT.sub(number, sql), tuple(numbers)


def _bind_processor(type_, dialect) -> Callable[[Any], Any] | None:
    """The column type's bind processor, or the one call it offers for SQLAlchemy's several
    (``fused_bind_processor``: our UTC timestamps on SQLite)."""
    fused = getattr(type_, "fused_bind_processor", None)
    processor = fused(dialect) if fused is not None else None
    return processor if processor is not None else type_.dialect_impl(dialect).bind_processor(dialect)


def _result_processor(type_, dialect) -> Callable[[Any], Any] | None:
    """The column type's result processor; a type may offer one call for what SQLAlchemy does in
    several (``fused_result_processor``: our UTC timestamps on SQLite)."""
    fused = getattr(type_, "fused_result_processor", None)
    processor = fused(dialect) if fused is not None else None
    return processor if processor is not None else type_.dialect_impl(dialect).result_processor(dialect, None)


class Rows(list):
    """A statement's rows, read like SQLAlchemy's result where the repositories use one."""

    def first(self) -> Any:
        return self[0] if self else None


# ``session.info`` key: (dialect, driver connection) of a transaction the session has joined, set
# by the unit of work that began it (uow.py) and removed when that transaction ends
DRIVER = "prepared.driver"


def driver_connection(session: Session) -> tuple[Any, Any]:
    """The dialect and the driver's connection of the session's current transaction: the unit of
    work's own, or else looked up once per transaction (``Session.connection()`` costs more than
    a SQLite read)."""
    given = session.info.get(DRIVER)
    if given is not None:
        return given
    transaction = session.get_transaction()
    held = session.info.get("prepared.connection")
    if transaction is None or held is None or held[0] is not transaction:
        connection = session.connection()  # begins the transaction if none is open
        held = session.info["prepared.connection"] = (
            session.get_transaction(), connection.dialect, connection.connection.driver_connection
        )
    return held[1], held[2]


def run(where: Session | tuple[Any, Any], prepared: Prepared, params: dict[str, Any] | Sequence[dict[str, Any]] | None = None) -> Rows:
    """Run ``prepared`` in the session's transaction (begun as any other, e.g. ``BEGIN IMMEDIATE``),
    or on a (dialect, driver connection) whose transaction is open (a unit of work's ``driver()``),
    with one set of parameters, or a list of them (an INSERT of many rows)."""
    dialect, dbapi_connection = where if type(where) is tuple else driver_connection(where)
    plan, arguments, many = _bound(dialect, prepared, params)
    if plan is None:
        return Rows()
    cursor = dbapi_connection.cursor() if plan.cursor_class is None else plan.cursor_class(dbapi_connection)
    try:
        if many:
            cursor.executemany(plan.sql, arguments)
            return Rows()
        cursor.execute(plan.sql, arguments)
        if not plan.returns_rows:
            return Rows()
        return Rows(plan.rows(cursor.fetchall()))
    except dialect.loaded_dbapi.Error as e:
        raise DBAPIError.instance(plan.sql, arguments, e, dialect.loaded_dbapi.Error, dialect=dialect) from e
    finally:
        cursor.close()


def send(where: tuple[Any, Any], prepared: Prepared, params: dict[str, Any] | None = None) -> "Pending":
    """``run`` in two halves: the statement is executed now and its rows read by ``Pending.rows``.
    Inside psycopg's pipeline mode (``uow.SqlUnitOfWork.in_one_trip``) the execution only queues the
    statement, and the first ``rows()`` sends everything queued and waits once for all of it."""
    dialect, dbapi_connection = where
    plan, arguments, many = _bound(dialect, prepared, params)
    if many:
        raise ValueError("send is for one set of parameters")
    cursor = dbapi_connection.cursor() if plan.cursor_class is None else plan.cursor_class(dbapi_connection)
    try:
        cursor.execute(plan.sql, arguments)
    except dialect.loaded_dbapi.Error as e:
        cursor.close()
        raise DBAPIError.instance(plan.sql, arguments, e, dialect.loaded_dbapi.Error, dialect=dialect) from e
    except BaseException:
        cursor.close()
        raise
    return Pending(dialect, plan, arguments, cursor)


class Pending:
    """A statement executed (or, in a pipeline, queued) whose rows are still to be read."""

    __slots__ = ("dialect", "plan", "arguments", "cursor")

    def __init__(self, dialect, plan: "_Plan", arguments: Any, cursor) -> None:
        self.dialect, self.plan, self.arguments, self.cursor = dialect, plan, arguments, cursor

    def rows(self) -> Rows:
        plan, cursor, dialect = self.plan, self.cursor, self.dialect
        if cursor is None:
            raise RuntimeError("these rows were read already")
        self.cursor = None
        try:
            if not plan.returns_rows:
                return Rows()
            return Rows(plan.rows(cursor.fetchall()))
        except dialect.loaded_dbapi.Error as e:
            raise DBAPIError.instance(plan.sql, self.arguments, e, dialect.loaded_dbapi.Error, dialect=dialect) from e
        finally:
            cursor.close()


def _bound(dialect, prepared: Prepared, params) -> tuple["_Plan | None", Any, bool]:
    """(plan, the driver's arguments, whether they are many sets); (None, None, True) for no rows at all."""
    many = isinstance(params, list)
    if many:
        if not params:
            return None, None, True
        keys = tuple(params[0])
        if prepared.rows_in_one and 1 < len(params) <= ROWS_IN_ONE_MAX and dialect.name == "postgresql" \
                and all(p.keys() == params[0].keys() for p in params):
            plan = prepared.plan_rows(dialect, keys, len(params))  # one statement with a row of values each
            return plan, plan.bind(rows_params(params)), False
        plan = prepared.plan(dialect, keys)
        return plan, [plan.bind(p) for p in params], True
    params = params or {}
    plan = prepared.plan(dialect, tuple(params) if prepared.statement.is_insert else None)
    return plan, plan.bind(params), False
