"""The unit of work: one database transaction per use case, rolled back unless committed.

Services receive a ``uow_factory`` and write ``with uow_factory() as uow: ...; uow.commit()``.
They never import SQLAlchemy; the repositories below are their only way to the tables.
"""
from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ..domain.errors import Conflict, DuplicateKey
from . import privacy, reports
from . import repositories as repos
from .db import CommitGroup, Database
from .prepared import DRIVER, driver_connection
from .repositories import duplicate_key

__all__ = ["DuplicateKey", "SqlUnitOfWork", "uow_factory"]


class DatabaseBusy(Conflict):
    status = 503


class SqlUnitOfWork:
    """One transaction on one pooled connection.

    It begins on the driver's connection itself, and the counter's statements (prepared ones,
    ``prepared.py``) run there: a checkout, a card lookup and a till-token check never build
    SQLAlchemy's ``Connection`` or ``Session`` (together ~30 µs of each, in the till's busiest
    process). The first use of the ORM wraps the same connection in a ``Connection`` and a
    ``Session`` that joins the transaction already open (``join_transaction_mode="rollback_only"``:
    it flushes into it and can roll it back; the commit is the unit of work's). A statement after
    a commit begins the next transaction, as a session would.

    ``group_commit=True`` (the checkout): on SQLite, this unit of work may share one transaction
    with the writers queued behind it, each under a savepoint, and its ``commit`` returns once that
    transaction is on disk (``db.CommitGroup``). Such a unit of work runs prepared statements
    only, and ends at its commit or rollback. Elsewhere the flag changes nothing.
    """

    def __init__(self, db: Database, *, read_only: bool = False, now=None, one_read: bool = False,
                 group_commit: bool = False) -> None:
        if one_read and not read_only:
            raise ValueError("one_read is for a read-only unit of work")
        if group_commit and read_only:
            raise ValueError("group_commit is for a writing unit of work")
        self._now = now or repos.m.utcnow
        self._engine = db.reader if read_only else db.writer
        self.dialect = self._engine.dialect
        # ``one_read``: a single statement needs no transaction of its own. On PostgreSQL that
        # saves the BEGIN and the ROLLBACK, two of the four round trips of a till-token check.
        self._one_read = one_read and not db.is_sqlite
        self._begin = None if one_read else db.begin_statement(read_only)
        self._db = db
        self.read_only = read_only  # (sees committed work only)
        self._write_lock = db.write_lock if not read_only else None  # SQLite's in-process queue of writers
        self._grouped = group_commit and self._write_lock is not None
        self._group: CommitGroup | None = None
        self.for_update = not db.is_sqlite and not read_only
        self.memo = db.memo

    def __enter__(self) -> "SqlUnitOfWork":
        if self._write_lock is not None:
            self._write_lock.acquire(self._grouped)
        self._holding = self._write_lock is not None
        self._connection = self._transaction = None
        self._fairy = None
        try:
            if self._grouped:
                self._join_group()
                return self
            if self._holding and self._db.group is not None:  # left open for a writer that joins, who was interrupted
                self._end_group()
            self._fairy = self._engine.raw_connection()
            self._dbapi = self._fairy.driver_connection
            if self._one_read:
                self._dbapi.autocommit = True  # (back off before the connection returns to the pool)
            self._begin_on_driver()
        except BaseException:
            try:
                if self._fairy is not None and self._group is None:
                    self._fairy.close()
            finally:
                self._group = None
                self._leave()
            raise
        return self

    # -- group commit (SQLite) --

    def _join_group(self) -> None:
        """Continue the commit group the writer before left open, under a savepoint; or begin one."""
        group = self._db.group
        if group is None:
            fairy = self._engine.raw_connection()
            try:
                fairy.driver_connection.execute(self._begin)
            except BaseException:
                fairy.close()
                raise
            group = self._db.group = CommitGroup(fairy)
            self._savepoint = False  # the first of the group: its rollback is the group's
        else:
            try:
                group.driver.execute("SAVEPOINT grouped")
            except self.dialect.loaded_dbapi.Error as e:
                self._fail_group(e)
                raise
            self._savepoint = True
        self._group = group
        self._members_before = group.members  # whose work, not yet on disk, this one can see
        self._fairy = group.fairy
        self._dbapi = group.driver
        self._open = True

    def _commit_in_group(self) -> None:
        group = self._group
        if self._savepoint:
            try:
                self._dbapi.execute("RELEASE grouped")
            except self.dialect.loaded_dbapi.Error as e:
                self._open = False
                self._fail_group(e)
                raise DatabaseBusy("the database could not store this; try again") from e
        group.joined()
        self._open = False
        self._leave()
        self._await_group(group)

    def _rollback_in_group(self) -> None:
        self._open = False
        if not self._savepoint:  # the group holds nobody's work but this one's
            self._end_group()
            return
        try:
            self._dbapi.execute("ROLLBACK TO grouped")
            self._dbapi.execute("RELEASE grouped")
        except self.dialect.loaded_dbapi.Error as e:  # SQLite rolled the whole transaction back
            self._fail_group(e)
            return
        if not self._dbapi.in_transaction:  # (the same, found out afterwards)
            self._fail_group(self.dialect.loaded_dbapi.OperationalError("the transaction was rolled back"))

    def _fail_group(self, error: BaseException) -> None:
        group, self._db.group = self._db.group, None
        if group is not None:
            group.fail(error)

    def _end_group(self) -> None:
        group, self._db.group = self._db.group, None
        if group is not None:
            group.finish()

    @staticmethod
    def _await_group(group: CommitGroup) -> None:
        error = group.wait()
        if error is not None:
            raise DatabaseBusy("the database could not store this; try again") from error

    def _leave(self) -> None:
        """Hand the write lock on. An open commit group is left open only for a next writer that
        joins it, while it has room; otherwise it is committed first."""
        if not self._holding:
            return
        self._holding = False
        try:
            group = self._db.group
            if group is not None and (group.full() or not self._write_lock.next_joins()):
                self._end_group()
        finally:
            self._write_lock.release()

    def _exit_group(self, clean: bool) -> None:
        group = self._group
        try:
            if self._open:
                self._rollback_in_group()
        finally:
            self._fairy = None
            self._leave()
        if clean and self._members_before:
            # what it answers may rest on the work of the group's earlier writers: not before it is on disk
            self._await_group(group)

    def _begin_on_driver(self) -> None:
        if self._begin is not None:  # SQLite: BEGIN IMMEDIATE for a writer; PostgreSQL begins by itself
            self._dbapi.execute(self._begin)
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
        if self._grouped:
            raise RuntimeError("a group-commit unit of work runs prepared statements only")
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
            if self._grouped:
                raise RuntimeError("a group-commit unit of work ends at its commit or rollback")
            self._begin_on_driver()
        return self._engine.dialect, self._dbapi

    def __exit__(self, *exc) -> None:
        if self._group is not None:
            return self._exit_group(exc[0] is None)
        try:
            if self._one_read:  # (no transaction is open in autocommit: the flag can go back at once)
                try:
                    self._dbapi.autocommit = False
                except self.dialect.loaded_dbapi.Error:  # a broken connection: the pool drops it on return
                    pass
            if self._connection is not None:
                try:
                    self.session.close()
                finally:
                    self._connection.close()  # returns the connection to the pool, which rolls back what was not committed
            else:
                self._fairy.close()  # (the same)
        finally:
            self._fairy = None
            self._leave()

    def flush(self) -> None:
        session = self.__dict__.get("session")
        if session is not None:
            repos.flush(session)

    def commit(self) -> None:
        if self._group is not None:
            if self._open:
                self._commit_in_group()
            return
        session = self.__dict__.get("session")
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
        self._open = False

    def _commit_on_driver(self) -> None:
        dialect = self._engine.dialect
        try:
            self._dbapi.commit()
        except dialect.loaded_dbapi.Error as e:
            raise DBAPIError.instance("COMMIT", None, e, dialect.loaded_dbapi.Error, dialect=dialect) from e

    def rollback(self) -> None:
        if self._group is not None:
            if self._open:
                self._rollback_in_group()
            return
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
    def make(read_only: bool = False, *, one_read: bool = False, group_commit: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(db, read_only=read_only, now=now, one_read=one_read, group_commit=group_commit)

    return make
