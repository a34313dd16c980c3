"""The unit of work: one database transaction per use case, rolled back unless committed.

Services receive a ``uow_factory`` and write ``with uow_factory() as uow: ...; uow.commit()``.
They never import SQLAlchemy; the repositories below are their only way to the tables.
"""
from __future__ import annotations

from contextlib import nullcontext

from sqlalchemy.exc import IntegrityError, OperationalError

from .repositories import duplicate_key
from sqlalchemy.orm import Session, sessionmaker

from ..domain.errors import Conflict, DuplicateKey
from . import privacy, reports
from . import repositories as repos
from .db import Database

__all__ = ["DuplicateKey", "SqlUnitOfWork", "uow_factory"]


class DatabaseBusy(Conflict):
    status = 503


class SqlUnitOfWork:
    def __init__(self, db: Database, *, read_only: bool = False, now=None) -> None:
        self._db = db
        self._now = now or repos.m.utcnow
        self._read_only = read_only
        factory = db.sessions.get(read_only)
        if factory is None:
            engine = db.reader if read_only else db.writer
            factory = db.sessions[read_only] = sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)
        self._session_factory = factory
        self._lock = db.write_lock if (db.write_lock is not None and not read_only) else nullcontext()
        self.for_update = not db.is_sqlite and not read_only
        self.memo = db.memo

    def __enter__(self) -> "SqlUnitOfWork":
        self._lock.__enter__()
        try:
            self.session: Session = self._session_factory()
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def __getattr__(self, name: str):
        """The repositories, each made on first use: most use cases touch two or three of fifteen."""
        make = _REPOSITORIES.get(name)
        if make is None or "session" not in self.__dict__:
            raise AttributeError(name)
        repo = make(self.session, self._now, self.for_update)
        setattr(self, name, repo)
        return repo

    def __exit__(self, *exc) -> None:
        try:
            self.session.close()  # rolls back whatever was not committed, and returns the connection
        finally:
            self._lock.__exit__(*exc)

    def flush(self) -> None:
        repos.flush(self.session)

    def commit(self) -> None:
        try:
            self.session.commit()
        except IntegrityError as e:
            self.session.rollback()
            raise duplicate_key(e) from e
        except OperationalError as e:  # pragma: no cover - needs a lock held past the busy timeout
            self.session.rollback()
            raise DatabaseBusy("the database is busy; try again") from e

    def rollback(self) -> None:
        self.session.rollback()


_REPOSITORIES = {
    "customers": lambda s, now, lock: repos.Customers(s, now, lock),
    "cards": lambda s, now, lock: repos.Cards(s, now),
    "programmes": lambda s, now, lock: repos.Programmes(s, now),
    "rewards": lambda s, now, lock: repos.Rewards(s, now),
    "tills": lambda s, now, lock: repos.Tills(s, now),
    "users": lambda s, now, lock: repos.Users(s, now),
    "transactions": lambda s, now, lock: repos.Transactions(s, now, lock),
    "ledger": lambda s, now, lock: repos.Ledger(s, now),
    "products": lambda s, now, lock: repos.CustomerProducts(s, now),
    "feedback": lambda s, now, lock: repos.Feedback(s, now),
    "follow_ups": lambda s, now, lock: repos.FollowUps(s, now),
    "audit": lambda s, now, lock: repos.Audit(s, now),
    "print_jobs": lambda s, now, lock: repos.PrintJobs(s, now),
    "reports": lambda s, now, lock: reports.Reports(s),
    "privacy": lambda s, now, lock: privacy.Privacy(s),
}


def uow_factory(db: Database, now=None):
    def make(read_only: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(db, read_only=read_only, now=now)

    return make
