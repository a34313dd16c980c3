"""Repositories: the only code that queries the tables. One small class per aggregate."""
from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..domain.errors import DuplicateKey
from ..domain.ledger import Entry
from . import models as m

UNIQUE_FIELDS = ("email", "phone", "number", "username", "name", "transaction_id", "visit_code")


def duplicate_key(e: IntegrityError) -> DuplicateKey:
    """A unique or primary key the database refused, as the shop's conflict naming the field."""
    text = str(e.orig).lower()
    for column in UNIQUE_FIELDS:
        if column in text:
            field = "card_number" if column == "number" else column
            return DuplicateKey(f"a record with this {column.replace('_', ' ')} already exists", field=field)
    return DuplicateKey("this record already exists")


def flush(session: Session) -> None:
    """Flush, turning a concurrent writer's duplicate into a 409 rather than a 500."""
    try:
        session.flush()
    except IntegrityError as e:
        raise duplicate_key(e) from e


class _Repo:
    def __init__(self, session: Session, now: Callable[[], dt.datetime] = m.utcnow) -> None:
        self.s = session
        self.now = now  # the shop's clock, so stamps follow it (and tests can set it)

    def _flush(self) -> None:
        flush(self.s)


class Customers(_Repo):
    def __init__(self, session: Session, now: Callable[[], dt.datetime], lock_rows: bool) -> None:
        super().__init__(session, now)
        self._lock_rows = lock_rows

    def add(self, **fields: Any) -> m.Customer:
        customer = m.Customer(**fields)
        self.s.add(customer)
        self._flush()
        return customer

    def get(self, customer_id: int) -> m.Customer | None:
        return self.s.get(m.Customer, customer_id)

    def get_for_update(self, customer_id: int) -> m.Customer | None:
        """The customer row, locked until commit where the database can (PostgreSQL); on SQLite the
        write transaction already holds the database's single write lock."""
        stmt = select(m.Customer).where(m.Customer.id == customer_id)
        if self._lock_rows:
            stmt = stmt.with_for_update()
        return self.s.scalars(stmt.execution_options(populate_existing=True)).first()

    def by_email(self, email: str) -> m.Customer | None:
        return self.s.scalars(select(m.Customer).where(m.Customer.email == email)).first()

    def by_phone(self, phone: str) -> m.Customer | None:
        return self.s.scalars(select(m.Customer).where(m.Customer.phone == phone)).first()

    def search(self, text: str, limit: int = 25) -> list[m.Customer]:
        """Card number, exact email or phone, else a name search (case-insensitive, every word)."""
        text = text.strip()
        by_card = select(m.Customer).join(m.Card, m.Card.customer_id == m.Customer.id).where(m.Card.number == text)
        found = list(self.s.scalars(by_card))
        if found:
            return found
        exact = select(m.Customer).where(or_(m.Customer.email == text.lower(), m.Customer.phone == text))
        found = list(self.s.scalars(exact))
        if found:
            return found
        stmt = select(m.Customer).where(m.Customer.erased_at.is_(None))
        for word in text.split()[:5]:
            pattern = f"%{_escape_like(word.lower())}%"
            stmt = stmt.where(
                or_(
                    func.lower(m.Customer.name).like(pattern, escape="\\"),
                    func.lower(m.Customer.preferred_name).like(pattern, escape="\\"),
                )
            )
        return list(self.s.scalars(stmt.order_by(m.Customer.name, m.Customer.id).limit(limit)))

    def all(self) -> Iterable[m.Customer]:
        return self.s.scalars(select(m.Customer).order_by(m.Customer.id))

    def count(self, *, include_erased: bool = True) -> int:
        stmt = select(func.count()).select_from(m.Customer)
        if not include_erased:
            stmt = stmt.where(m.Customer.erased_at.is_(None))
        return self.s.scalar(stmt) or 0

    def by_name(self, *, limit: int) -> list[m.Customer]:
        """The first customers in name order (case-insensitive), erased ones left out."""
        return list(
            self.s.scalars(
                select(m.Customer)
                .where(m.Customer.erased_at.is_(None))
                .order_by(func.lower(m.Customer.name), m.Customer.id)
                .limit(limit)
            )
        )

    def add_to_balance(self, customer: m.Customer, points: int) -> None:
        customer.balance = customer.balance + points


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Cards(_Repo):
    def get(self, number: str) -> m.Card | None:
        return self.s.get(m.Card, number)

    def add(self, number: str, customer_id: int) -> m.Card:
        card = m.Card(number=number, customer_id=customer_id, status="active", issued_at=self.now())
        self.s.add(card)
        self._flush()
        return card

    def of_customer(self, customer_id: int) -> list[m.Card]:
        return list(self.s.scalars(select(m.Card).where(m.Card.customer_id == customer_id).order_by(m.Card.issued_at)))


class Programmes(_Repo):
    def latest(self) -> m.ProgrammeVersion | None:
        return self.s.scalars(select(m.ProgrammeVersion).order_by(m.ProgrammeVersion.id.desc()).limit(1)).first()

    def get(self, version_id: int) -> m.ProgrammeVersion | None:
        return self.s.get(m.ProgrammeVersion, version_id)

    def add(self, data: dict[str, Any], created_by: str) -> m.ProgrammeVersion:
        version = m.ProgrammeVersion(data=data, created_by=created_by, created_at=self.now())
        self.s.add(version)
        self._flush()
        return version

    def history(self, limit: int = 50) -> list[m.ProgrammeVersion]:
        return list(self.s.scalars(select(m.ProgrammeVersion).order_by(m.ProgrammeVersion.id.desc()).limit(limit)))


class Rewards(_Repo):
    def get(self, reward_id: int) -> m.Reward | None:
        return self.s.get(m.Reward, reward_id)

    def all(self, *, active_only: bool = False) -> list[m.Reward]:
        stmt = select(m.Reward).order_by(m.Reward.points_cost, m.Reward.id)
        if active_only:
            stmt = stmt.where(m.Reward.active.is_(True))
        return list(self.s.scalars(stmt))

    def add(self, **fields: Any) -> m.Reward:
        reward = m.Reward(**fields)
        self.s.add(reward)
        self._flush()
        return reward


class Tills(_Repo):
    def by_name(self, name: str) -> m.Till | None:
        return self.s.scalars(select(m.Till).where(m.Till.name == name)).first()

    def by_token_hash(self, token_hash: str) -> m.Till | None:
        return self.s.scalars(select(m.Till).where(m.Till.token_hash == token_hash)).first()

    def get(self, till_id: int) -> m.Till | None:
        return self.s.get(m.Till, till_id)

    def add(self, name: str, token_hash: str) -> m.Till:
        till = m.Till(name=name, token_hash=token_hash, created_at=self.now())
        self.s.add(till)
        self._flush()
        return till

    def all(self) -> list[m.Till]:
        return list(self.s.scalars(select(m.Till).order_by(m.Till.name)))


class Users(_Repo):
    def by_username(self, username: str) -> m.User | None:
        return self.s.scalars(select(m.User).where(m.User.username == username)).first()

    def add(self, username: str, password_hash: str, role: str) -> m.User:
        user = m.User(username=username, password_hash=password_hash, role=role, created_at=self.now())
        self.s.add(user)
        self._flush()
        return user

    def all(self) -> list[m.User]:
        return list(self.s.scalars(select(m.User).order_by(m.User.username)))


class Transactions(_Repo):
    def __init__(self, session: Session, now: Callable[[], dt.datetime], lock_rows: bool) -> None:
        super().__init__(session, now)
        self._lock_rows = lock_rows

    def get(self, transaction_id: str) -> m.Transaction | None:
        return self.s.get(m.Transaction, transaction_id)

    def get_for_update(self, transaction_id: str) -> m.Transaction | None:
        """The sale, locked until commit where the database can (PostgreSQL), read afresh."""
        stmt = select(m.Transaction).where(m.Transaction.id == transaction_id)
        if self._lock_rows:
            stmt = stmt.with_for_update()
        return self.s.scalars(stmt.execution_options(populate_existing=True)).first()

    def by_visit_code(self, code: str) -> m.Transaction | None:
        return self.s.scalars(select(m.Transaction).where(m.Transaction.visit_code == code)).first()

    def add(self, **fields: Any) -> m.Transaction:
        tx = m.Transaction(**fields)
        self.s.add(tx)
        self._flush()
        return tx

    def add_lines(self, rows: Sequence[dict[str, Any]]) -> list[m.TransactionLine]:
        lines = [m.TransactionLine(**row) for row in rows]
        self.s.add_all(lines)
        self._flush()
        return lines

    def lines(self, transaction_id: str) -> list[m.TransactionLine]:
        return list(
            self.s.scalars(
                select(m.TransactionLine)
                .where(m.TransactionLine.transaction_id == transaction_id)
                .order_by(m.TransactionLine.line_no)
            )
        )

    def returns_of(self, transaction_id: str) -> list[m.Transaction]:
        return list(
            self.s.scalars(
                select(m.Transaction).where(m.Transaction.original_id == transaction_id).order_by(m.Transaction.recorded_at)
            )
        )

    def returned_quantities(self, transaction_id: str) -> dict[int, int]:
        """line id of the sale -> quantity_milli returned so far."""
        rows = self.s.execute(
            select(m.TransactionLine.original_line_id, func.sum(m.TransactionLine.quantity_milli))
            .join(m.Transaction, m.Transaction.id == m.TransactionLine.transaction_id)
            .where(m.Transaction.original_id == transaction_id)
            .group_by(m.TransactionLine.original_line_id)
        )
        return {line_id: int(qty) for line_id, qty in rows if line_id is not None}

    def add_redemptions(self, rows: Sequence[dict[str, Any]]) -> None:
        self.s.add_all([m.Redemption(**row) for row in rows])

    def redemptions(self, transaction_id: str) -> list[m.Redemption]:
        return list(self.s.scalars(select(m.Redemption).where(m.Redemption.transaction_id == transaction_id)))

    def of_customer(self, customer_id: int, *, limit: int = 50, before: dt.datetime | None = None) -> list[m.Transaction]:
        stmt = select(m.Transaction).where(m.Transaction.customer_id == customer_id)
        if before is not None:
            stmt = stmt.where(m.Transaction.occurred_at < before)
        return list(self.s.scalars(stmt.order_by(m.Transaction.occurred_at.desc(), m.Transaction.id.desc()).limit(limit)))

    def rolling_spend(self, customer_id: int, since: dt.datetime) -> int:
        return int(
            self.s.scalar(
                select(func.coalesce(func.sum(m.Transaction.eligible_spend), 0)).where(
                    m.Transaction.customer_id == customer_id, m.Transaction.occurred_at > since
                )
            )
            or 0
        )

    def last_visit(self, customer_id: int) -> dt.datetime | None:
        return self.s.scalar(
            select(func.max(m.Transaction.occurred_at)).where(
                m.Transaction.customer_id == customer_id, m.Transaction.kind == "sale"
            )
        )

    def set_response(self, transaction_id: str, response: dict[str, Any]) -> None:
        self.s.execute(update(m.Transaction).where(m.Transaction.id == transaction_id).values(response=response))


class Ledger(_Repo):
    def add(self, **fields: Any) -> m.LedgerEntry:
        entry = m.LedgerEntry(**fields)
        self.s.add(entry)
        self._flush()
        return entry

    def entries(self, customer_id: int) -> list[Entry]:
        rows = self.s.execute(
            select(
                m.LedgerEntry.id,
                m.LedgerEntry.points,
                m.LedgerEntry.kind,
                m.LedgerEntry.created_at,
                m.LedgerEntry.expires_at,
                m.LedgerEntry.lot_id,
            )
            .where(m.LedgerEntry.customer_id == customer_id)
            .order_by(m.LedgerEntry.id)
        )
        return [Entry(*row) for row in rows]

    def page(self, customer_id: int, *, limit: int = 100) -> list[m.LedgerEntry]:
        return list(
            self.s.scalars(
                select(m.LedgerEntry)
                .where(m.LedgerEntry.customer_id == customer_id)
                .order_by(m.LedgerEntry.id.desc())
                .limit(limit)
            )
        )

    def of_transaction(self, transaction_id: str) -> list[m.LedgerEntry]:
        return list(
            self.s.scalars(
                select(m.LedgerEntry).where(m.LedgerEntry.transaction_id == transaction_id).order_by(m.LedgerEntry.id)
            )
        )

    def sum_for(self, customer_id: int, *, cause: str | None = None, since: dt.datetime | None = None) -> int:
        stmt = select(func.coalesce(func.sum(m.LedgerEntry.points), 0)).where(m.LedgerEntry.customer_id == customer_id)
        if cause is not None:
            stmt = stmt.where(m.LedgerEntry.cause == cause)
        if since is not None:
            stmt = stmt.where(m.LedgerEntry.created_at >= since)
        return int(self.s.scalar(stmt) or 0)

    def customers_with_lots_expiring_by(self, moment: dt.datetime) -> list[int]:
        return list(
            self.s.scalars(
                select(m.LedgerEntry.customer_id)
                .where(and_(m.LedgerEntry.expires_at.is_not(None), m.LedgerEntry.expires_at <= moment, m.LedgerEntry.points > 0))
                .distinct()
                .order_by(m.LedgerEntry.customer_id)
            )
        )


class CustomerProducts(_Repo):
    def record(self, customer_id: int, changes: Sequence[tuple[str, str, int, int]], at: dt.datetime) -> None:
        """Apply (sku, description, quantity_milli, visits) changes for one basket: one read for all."""
        if not changes:
            return
        skus = [sku for sku, *_ in changes]
        rows = {
            r.sku: r
            for r in self.s.scalars(
                select(m.CustomerProduct).where(m.CustomerProduct.customer_id == customer_id, m.CustomerProduct.sku.in_(skus))
            )
        }
        for sku, description, quantity_milli, visit in changes:
            row = rows.get(sku)
            if row is None:
                row = rows[sku] = m.CustomerProduct(
                    customer_id=customer_id, sku=sku, description=description, visits=0, quantity_milli=0, last_bought_at=at
                )
                self.s.add(row)
            row.visits = max(0, row.visits + visit)
            row.quantity_milli = max(0, row.quantity_milli + quantity_milli)
            if visit > 0:
                row.description = description
                row.last_bought_at = max(row.last_bought_at, at)

    def favourites(self, customer_id: int, limit: int = 5) -> list[m.CustomerProduct]:
        return list(
            self.s.scalars(
                select(m.CustomerProduct)
                .where(m.CustomerProduct.customer_id == customer_id, m.CustomerProduct.visits > 0)
                .order_by(m.CustomerProduct.visits.desc(), m.CustomerProduct.quantity_milli.desc(), m.CustomerProduct.sku)
                .limit(limit)
            )
        )


class Feedback(_Repo):
    def add(self, **fields: Any) -> m.Feedback:
        row = m.Feedback(**fields)
        self.s.add(row)
        self._flush()
        return row

    def for_transaction(self, transaction_id: str) -> m.Feedback | None:
        return self.s.scalars(select(m.Feedback).where(m.Feedback.transaction_id == transaction_id)).first()


class FollowUps(_Repo):
    def add(self, **fields: Any) -> m.FollowUp:
        row = m.FollowUp(**fields)
        self.s.add(row)
        self._flush()
        return row

    def get(self, follow_up_id: int) -> m.FollowUp | None:
        return self.s.get(m.FollowUp, follow_up_id)

    def open_for(self, customer_id: int) -> list[m.FollowUp]:
        return list(
            self.s.scalars(
                select(m.FollowUp)
                .where(m.FollowUp.customer_id == customer_id, m.FollowUp.resolved_at.is_(None))
                .order_by(m.FollowUp.opened_at)
            )
        )

    def all_open(self) -> list[m.FollowUp]:
        return list(self.s.scalars(select(m.FollowUp).where(m.FollowUp.resolved_at.is_(None)).order_by(m.FollowUp.opened_at)))


class Audit(_Repo):
    def record(self, actor: str, action: str, entity: str, entity_id: str | None, before: Any = None, after: Any = None) -> None:
        self.s.add(
            m.AuditEntry(
                at=self.now(), actor=actor, action=action, entity=entity, entity_id=entity_id, before=before, after=after
            )
        )

    def recent(self, limit: int = 100) -> list[m.AuditEntry]:
        return list(self.s.scalars(select(m.AuditEntry).order_by(m.AuditEntry.id.desc()).limit(limit)))


class PrintJobs(_Repo):
    def add(self, transaction_id: str) -> m.PrintJob:
        job = m.PrintJob(transaction_id=transaction_id, created_at=self.now(), status="queued", attempts=0)
        self.s.add(job)
        self._flush()
        return job

    def get(self, job_id: int) -> m.PrintJob | None:
        return self.s.get(m.PrintJob, job_id)

    def unfinished_for(self, transaction_id: str) -> m.PrintJob | None:
        return self.s.scalars(
            select(m.PrintJob).where(m.PrintJob.transaction_id == transaction_id, m.PrintJob.status != "printed").limit(1)
        ).first()

    def queued(self) -> list[m.PrintJob]:
        return list(self.s.scalars(select(m.PrintJob).where(m.PrintJob.status != "printed").order_by(m.PrintJob.id)))
