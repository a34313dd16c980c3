"""The unit of work: one database transaction per use case, rolled back unless committed.

Services receive a ``uow_factory`` and write ``with uow_factory() as uow: ...; uow.commit()``.
They never import SQLAlchemy; the repositories below are their only way to the tables.
"""
from __future__ import annotations

from contextlib import nullcontext

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..domain.errors import Conflict
from . import privacy, reports
from . import repositories as repos
from .db import Database


class DuplicateKey(Conflict):
    """Another writer stored the same key first (a retried or concurrent request)."""


class DatabaseBusy(Conflict):
    status = 503


class SqlUnitOfWork:
    def __init__(self, db: Database, *, read_only: bool = False) -> None:
        self._db = db
        self._read_only = read_only
        engine = db.reader if read_only else db.writer
        self._session_factory = sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)
        self._lock = db.write_lock if (db.write_lock is not None and not read_only) else nullcontext()
        self.for_update = not db.is_sqlite and not read_only

    def __enter__(self) -> "SqlUnitOfWork":
        self._lock.__enter__()
        try:
            self.session: Session = self._session_factory()
            s, lock = self.session, self.for_update
            self.customers = repos.Customers(s, lock)
            self.cards = repos.Cards(s)
            self.programmes = repos.Programmes(s)
            self.rewards = repos.Rewards(s)
            self.tills = repos.Tills(s)
            self.users = repos.Users(s)
            self.transactions = repos.Transactions(s)
            self.ledger = repos.Ledger(s)
            self.products = repos.CustomerProducts(s)
            self.feedback = repos.Feedback(s)
            self.follow_ups = repos.FollowUps(s)
            self.audit = repos.Audit(s)
            self.print_jobs = repos.PrintJobs(s)
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
        try:
            self.session.flush()
        except IntegrityError as e:
            self.session.rollback()
            raise DuplicateKey(_integrity_message(e)) from e

    def commit(self) -> None:
        try:
            self.session.commit()
        except IntegrityError as e:
            self.session.rollback()
            raise DuplicateKey(_integrity_message(e)) from e
        except OperationalError as e:  # pragma: no cover - needs a lock held past the busy timeout
            self.session.rollback()
            raise DatabaseBusy("the database is busy; try again") from e

    def rollback(self) -> None:
        self.session.rollback()


def _integrity_message(e: IntegrityError) -> str:
    text = str(e.orig).lower()
    for column in ("email", "phone", "number", "username", "name", "transaction_id", "visit_code"):
        if column in text:
            return f"a record with this {column.replace('_', ' ')} already exists"
    if "primary" in text or "pk_" in text or "unique" in text:
        return "this record already exists"
    return "the change conflicts with data already stored"


def uow_factory(db: Database):
    def make(read_only: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(db, read_only=read_only)

    return make
