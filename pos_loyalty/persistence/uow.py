"""The unit of work: one database transaction per use case, rolled back unless committed.

Services receive a ``uow_factory`` and write ``with uow_factory() as uow: ...; uow.commit()``.
They never import SQLAlchemy; the repositories below are their only way to the tables.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ..domain.errors import Conflict, DuplicateKey
from . import privacy, reports
from . import repositories as repos
from .db import Database
from .prepared import DRIVER, driver_connection
from .repositories import duplicate_key

__all__ = ["DuplicateKey", "SqlUnitOfWork", "uow_factory"]


class DatabaseBusy(Conflict):
    status = 503


class DatabaseUnreachable(Conflict):
    """The database server dropped the connection (PostgreSQL restarted, the network failed).
    Before the commit was sent nothing was saved, and the request may be sent again at once; a
    connection lost while committing leaves it unknown whether the commit landed (a sale or return
    sent again with its id is recorded once; anything else is to be looked up first)."""

    status = 503

    LOST = "the connection to the database was lost; nothing was saved, try again"
    LOST_WHILE_SAVING = ("the connection to the database was lost while saving, so it may or may not have been "
                         "saved: look before trying again (a sale sent again with its id is recorded once)")


class SqlUnitOfWork:
    """One transaction on one pooled connection.

    It begins on the driver's connection itself, and the counter's statements (prepared ones,
    ``prepared.py``) run there: a checkout, a card lookup and a till-token check never build
    SQLAlchemy's ``Connection`` or ``Session`` (together ~30 µs of each, in the till's busiest
    process). The first use of the ORM wraps the same connection in a ``Connection`` and a
    ``Session`` that joins the transaction already open (``join_transaction_mode="rollback_only"``:
    it flushes into it and can roll it back; the commit is the unit of work's). A statement after
    a commit begins the next transaction, as a session would.
    """

    def __init__(self, db: Database, *, read_only: bool = False, now=None, one_read: bool = False,
                 one_snapshot: bool = True) -> None:
        if (one_read or not one_snapshot) and not read_only:
            raise ValueError("one_read and one_snapshot=False are for a read-only unit of work")
        self._now = now or repos.m.utcnow
        self._engine = db.reader if read_only else db.writer
        self.dialect = self._engine.dialect
        # ``one_read``: a single statement needs no transaction of its own. On PostgreSQL that
        # saves the BEGIN and the ROLLBACK, two of the four round trips of a till-token check.
        # ``one_snapshot=False``: reads that need not all see the same moment. PostgreSQL's
        # transactions (READ COMMITTED) give each statement a snapshot of its own anyway, so there
        # they run in autocommit, two round trips fewer; SQLite's read transaction is one snapshot
        # and costs no round trip, so it stays.
        self._autocommit = (one_read or not one_snapshot) and not db.is_sqlite
        self._begin = None if one_read else db.begin_statement(read_only)
        self._lock = db.write_lock if (db.write_lock is not None and not read_only) else nullcontext()
        self._parking = db.parked_readers if read_only else db.parked_writer
        self.read_only = read_only  # (sees committed work only)
        self.for_update = not db.is_sqlite and not read_only
        self.memo = db.memo

    def __enter__(self) -> "SqlUnitOfWork":
        self._lock.__enter__()
        self._connection = self._transaction = None
        self._committing = False
        self._fairy = None
        try:
            self._fairy = (self._parking is not None and self._parking.take()) or self._engine.raw_connection()
            self._dbapi = self._fairy.driver_connection
            if self._autocommit:
                self._dbapi.autocommit = True  # (back off before the connection returns to the pool)
            self._begin_on_driver()
        except BaseException:
            try:
                if self._fairy is not None:
                    self._fairy.close()
            finally:
                self._lock.__exit__(None, None, None)
            raise
        return self

    def _begin_on_driver(self) -> None:
        if self._begin is not None:  # SQLite: BEGIN IMMEDIATE for a writer; PostgreSQL begins by itself
            try:
                self._dbapi.execute(self._begin)
            except self.dialect.loaded_dbapi.OperationalError as e:
                # another process (a misconfigured second till on the same file, a backup tool)
                # held SQLite's write lock past the busy timeout: a 503 the till retries, as at commit
                raise DatabaseBusy("the database is busy; try again") from e
        self._open = True

    def __getattr__(self, name: str):
        """The session, and the repositories, each made on first use: most use cases touch two or
        three of fifteen, and the counter's touch no session."""
        if "_fairy" not in self.__dict__ or self.__dict__["_fairy"] is None:
            raise AttributeError(name)
        if name == "session":
            return self._open_session()
        make = _REPOSITORIES.get(name)
        if make is None:
            raise AttributeError(name)
        repo = make(self)
        setattr(self, name, repo)
        return repo

    def _open_session(self) -> Session:
        connection = self._connection = Connection(self._engine, connection=self._fairy)
        if self._open:  # the driver's transaction is open: SQLAlchemy takes it as begun (db.py's begin hook)
            self._transaction = connection.begin()
        session = Session(bind=connection, join_transaction_mode="rollback_only", expire_on_commit=False, autoflush=True)
        if self._open:
            session.info[DRIVER] = (self._engine.dialect, self._dbapi)
        self.session = session
        return session

    def driver(self) -> tuple[Any, Any]:
        """(dialect, driver connection) for a prepared statement, in this unit of work's transaction
        and after what the session holds is flushed, so a read sees this unit of work's own changes."""
        session = self.__dict__.get("session")
        if session is not None:
            repos.flush(session)
            return driver_connection(session)
        if not self._open:
            self._begin_on_driver()
        return self._engine.dialect, self._dbapi

    batching = False  # inside ``in_one_trip`` on PostgreSQL: reads are sent, and read later

    @contextmanager
    def in_one_trip(self) -> Iterator[None]:
        """On PostgreSQL, the prepared statements run inside are sent one after another without
        waiting for each answer (psycopg's pipeline mode), and the answers come back together: a
        checkout's five writes, or the reads that do not depend on each other, cost one round trip
        to the server, not one each. They run in order, in this unit of work's transaction, as
        before. A read inside is sent by a repository's ``..._later`` method: call its ``get()``
        after the block, whose end waits once for every answer (a ``get()`` inside waits as well,
        and the end then waits again; a plain read waits at once). An error is raised by a later
        statement of the block, by the end of the block or by a ``get()``, as SQLAlchemy's (a
        unique key refused: ``DuplicateKey``); the first statement that failed aborts the rest.
        Elsewhere (SQLite runs in the process; a session's flushes go their own way) the
        statements run as they always do, and a ``..._later`` read is read at once."""
        if self.dialect.name != "postgresql" or self.__dict__.get("session") is not None or self.batching:
            try:
                yield
            except IntegrityError as e:  # (as inside a pipeline: the same error whatever the database)
                raise duplicate_key(e) from e
            return
        dialect, dbapi = self.driver()
        self.batching = True
        try:
            with dbapi.pipeline():
                yield
        except IntegrityError as e:  # (raised, wrapped, by a later statement of the block, when the answer came back early)
            raise duplicate_key(e) from e
        except dialect.loaded_dbapi.Error as e:
            wrapped = DBAPIError.instance("(statements sent in one round trip)", None, e, dialect.loaded_dbapi.Error,
                                          dialect=dialect)
            if isinstance(wrapped, IntegrityError):
                raise duplicate_key(wrapped) from e
            raise wrapped from e
        finally:
            self.batching = False

    def __exit__(self, *exc) -> None:
        dropped = exc[0] is not None and issubclass(exc[0], Exception) and self._dropped()
        try:
            if dropped:
                self._drop(exc[1])
            if self._autocommit:  # (no transaction is open in autocommit: the flag can go back at once)
                try:
                    self._dbapi.autocommit = False
                except self.dialect.loaded_dbapi.Error:  # a broken connection: the pool drops it on return
                    pass
            try:
                if self._connection is not None:
                    try:
                        self.session.close()
                    finally:
                        self._connection.close()  # returns the connection to the pool, which rolls back what was not committed
                elif self._parking is None or not self._park():
                    self._fairy.close()  # (the same)
            except Exception as e:
                if exc[0] is not None or not self._dropped():
                    raise
                # the server dropped the connection after the work was done (and committed, if it
                # was to be): ending the transaction has nothing left to undo, and the result stands
                self._parking.empty()  # (the others may be gone too: the pool pings each before use)
                if self._connection is not None and not self._connection.closed:
                    self._connection.invalidate(e)
                    self._connection.close()
        finally:
            self._fairy = None
            self._lock.__exit__(*exc)

        if dropped:
            lost = DatabaseUnreachable.LOST_WHILE_SAVING if self._committing else DatabaseUnreachable.LOST
            raise DatabaseUnreachable(lost) from exc[1]

    def _drop(self, cause: BaseException) -> None:
        """The pool opens a new connection in this one's place; the parked ones may be gone too,
        so they go back to the pool, which pings each before use."""
        connection = self._connection
        (connection if connection is not None and not connection.closed else self._fairy).invalidate(cause)
        self._parking.empty()

    def _dropped(self) -> bool:
        """Did the server drop this unit of work's connection? (psycopg says so: SQLite has no
        connection to lose)"""
        return bool(getattr(self._dbapi, "broken", False)) if self._fairy is not None else False

    def _park(self) -> bool:
        """Leave the connection for the next unit of work, rolled back as the pool would have
        (False if the parking is full or the rollback failed: then the pool takes it, and drops
        it if it is broken). psycopg's rollback sends nothing when no transaction is open."""
        dbapi = self._dbapi
        try:
            if getattr(dbapi, "closed", False) or getattr(dbapi, "autocommit", None) is True:  # (psycopg's: a
                return False  # closed connection, or one whose autocommit did not go back, is the pool's to deal with)
            if getattr(dbapi, "in_transaction", True):  # (sqlite3's; psycopg's rollback is its own check)
                dbapi.rollback()
        except self.dialect.loaded_dbapi.Error:
            return False
        return self._parking.leave(self._fairy)

    def flush(self) -> None:
        session = self.__dict__.get("session")
        if session is not None:
            repos.flush(session)

    def commit(self) -> None:
        session = self.__dict__.get("session")
        self._committing = True  # (until it returns: a connection lost meanwhile leaves the outcome unknown)
        try:
            if session is not None:
                session.commit()  # flushes; the transaction stays open (it is ours, not the session's)
                if self._transaction is not None and self._transaction.is_active:
                    self._transaction.commit()
                session.info.pop(DRIVER, None)  # what follows goes through the session, which begins anew
            elif self._open:
                self._commit_on_driver()
        except IntegrityError as e:
            self.rollback()
            raise duplicate_key(e) from e
        except OperationalError as e:  # pragma: no cover - needs a lock held past the busy timeout
            self.rollback()
            raise DatabaseBusy("the database is busy; try again") from e
        self._open = self._committing = False

    def _commit_on_driver(self) -> None:
        dialect = self._engine.dialect
        try:
            self._dbapi.commit()
        except dialect.loaded_dbapi.Error as e:
            raise DBAPIError.instance("COMMIT", None, e, dialect.loaded_dbapi.Error, dialect=dialect) from e

    def rollback(self) -> None:
        session = self.__dict__.get("session")
        if session is not None:
            session.rollback()
            if self._transaction is not None and self._transaction.is_active:
                self._transaction.rollback()
            session.info.pop(DRIVER, None)
        else:
            self._dbapi.rollback()
        self._open = False


_REPOSITORIES: dict[str, Callable[[SqlUnitOfWork], Any]] = {
    "customers": lambda uow: repos.Customers(uow, uow._now, uow.for_update),
    "cards": lambda uow: repos.Cards(uow, uow._now),
    "programmes": lambda uow: repos.Programmes(uow, uow._now),
    "rewards": lambda uow: repos.Rewards(uow, uow._now),
    "tills": lambda uow: repos.Tills(uow, uow._now),
    "users": lambda uow: repos.Users(uow, uow._now),
    "transactions": lambda uow: repos.Transactions(uow, uow._now, uow.for_update),
    "ledger": lambda uow: repos.Ledger(uow, uow._now),
    "products": lambda uow: repos.CustomerProducts(uow, uow._now),
    "feedback": lambda uow: repos.Feedback(uow, uow._now),
    "follow_ups": lambda uow: repos.FollowUps(uow, uow._now),
    "audit": lambda uow: repos.Audit(uow, uow._now),
    "print_jobs": lambda uow: repos.PrintJobs(uow, uow._now),
    "reports": lambda uow: reports.Reports(uow.session),
    "privacy": lambda uow: privacy.Privacy(uow.session),
}


def uow_factory(db: Database, now=None):
    def make(read_only: bool = False, *, one_read: bool = False, one_snapshot: bool = True) -> SqlUnitOfWork:
        return SqlUnitOfWork(db, read_only=read_only, now=now, one_read=one_read, one_snapshot=one_snapshot)

    return make
