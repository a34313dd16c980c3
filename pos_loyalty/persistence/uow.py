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
        engine = db.reader if read_only else db.writer
        self._session_factory = sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)
        self._lock = db.write_lock if (db.write_lock is not None and not read_only) else nullcontext()
        self.for_update = not db.is_sqlite and not read_only

    def __enter__(self) -> "SqlUnitOfWork":
        self._lock.__enter__()
        try:
            self.session: Session = self._session_factory()
            s, lock, now = self.session, self.for_update, self._now
            self.customers = repos.Customers(s, now, lock)
            self.cards = repos.Cards(s, now)
            self.programmes = repos.Programmes(s, now)
            self.rewards = repos.Rewards(s, now)
            self.tills = repos.Tills(s, now)
            self.users = repos.Users(s, now)
            self.transactions = repos.Transactions(s, now, lock)
            self.ledger = repos.Ledger(s, now)
            self.products = repos.CustomerProducts(s, now)
            self.feedback = repos.Feedback(s, now)
            self.follow_ups = repos.FollowUps(s, now)
            self.audit = repos.Audit(s, now)
            self.print_jobs = repos.PrintJobs(s, now)
            self.reports = reports.Reports(s)
            self.privacy = privacy.Privacy(s)
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.session.rollback()
            self.session.close()
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


def uow_factory(db: Database, now=None):
    def make(read_only: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(db, read_only=read_only, now=now)

    return make
