"""Repositories: the only code that queries the tables. One small class per aggregate."""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from sqlalchemy import and_, bindparam, case, func, or_, select, type_coerce, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..domain.errors import DuplicateKey
from ..domain.ledger import Entry
from . import models as m
from ..later import Later
from .prepared import Prepared, Rows, run, send

if TYPE_CHECKING:
    from .uow import SqlUnitOfWork

# The tables themselves, for the counter's hot paths (checkout, card lookup, till tokens): plain
# SQLAlchemy Core statements returning rows, no ORM object graphs. Rows read like the models
# (``row.balance``), so the services do not care which they were handed.
CUSTOMERS = m.Customer.__table__
CARDS = m.Card.__table__
PROGRAMMES = m.ProgrammeVersion.__table__
REWARDS = m.Reward.__table__
TILLS = m.Till.__table__
TRANSACTIONS = m.Transaction.__table__
LINES = m.TransactionLine.__table__
REDEMPTIONS = m.Redemption.__table__
LEDGER = m.LedgerEntry.__table__
PRODUCTS = m.CustomerProduct.__table__
FOLLOW_UPS = m.FollowUp.__table__


def _spent_after(name: str):
    return func.coalesce(func.sum(case((TRANSACTIONS.c.occurred_at > bindparam(name), TRANSACTIONS.c.eligible_spend), else_=0)), 0)


# Built once: constructing a statement costs more than SQLAlchemy's cached compile and SQLite's read.
# The card's holder comes with the newest programme version's id: what a sale or a lookup reads
# next anyway, and on PostgreSQL a round trip saved.
_CARD_HOLDER = (
    select(
        CARDS.c.status.label("card_status"), CARDS.c.blocked_reason.label("card_blocked_reason"), CUSTOMERS,
        select(func.max(PROGRAMMES.c.id)).scalar_subquery().label("latest_programme_id"),
    )
    .join_from(CARDS, CUSTOMERS, CUSTOMERS.c.id == CARDS.c.customer_id)
    .where(CARDS.c.number == bindparam("number"))
)
_CARD_HOLDER_LOCKED = Prepared(_CARD_HOLDER.with_for_update(of=CUSTOMERS))
# What the cashier screen needs about the holder beyond the row, in the same read: the spend over
# the rolling year and the last visit (both from the customer's sales, by index).
_CARD_HOLDER_WITH_VISITS = Prepared(_CARD_HOLDER.add_columns(
    select(func.coalesce(func.sum(TRANSACTIONS.c.eligible_spend), 0))
    .where(TRANSACTIONS.c.customer_id == CUSTOMERS.c.id, TRANSACTIONS.c.occurred_at > bindparam("since"))
    .scalar_subquery()
    .label("rolling_spend"),
    type_coerce(
        select(TRANSACTIONS.c.occurred_at)
        .where(TRANSACTIONS.c.customer_id == CUSTOMERS.c.id, TRANSACTIONS.c.kind == "sale")
        .order_by(TRANSACTIONS.c.occurred_at.desc())
        .limit(1)
        .scalar_subquery(),
        m.UTCDateTime(),
    ).label("last_sale_at"),
))
_CARD_HOLDER = Prepared(_CARD_HOLDER)
_ADD_TO_BALANCE = Prepared(
    update(CUSTOMERS).where(CUSTOMERS.c.id == bindparam("customer_id")).values(balance=CUSTOMERS.c.balance + bindparam("points"))
)
_CARDS_OF = Prepared(select(CARDS).where(CARDS.c.customer_id == bindparam("customer_id")).order_by(CARDS.c.issued_at))
_LATEST_PROGRAMME = Prepared(select(PROGRAMMES.c.id).order_by(PROGRAMMES.c.id.desc()).limit(1))
_PROGRAMME_VERSION = Prepared(select(PROGRAMMES.c.id, PROGRAMMES.c.data).where(PROGRAMMES.c.id == bindparam("id")))
_REWARDS_BY_COST = select(REWARDS).order_by(REWARDS.c.points_cost, REWARDS.c.id)
_ACTIVE_REWARDS = Prepared(_REWARDS_BY_COST.where(REWARDS.c.active.is_(True)))
_REWARDS_BY_COST = Prepared(_REWARDS_BY_COST)
_TILL_BY_TOKEN = Prepared(select(TILLS.c.id, TILLS.c.name).where(TILLS.c.token_hash == bindparam("token_hash"), TILLS.c.revoked_at.is_(None)))
_ANSWER_OF = Prepared(select(TRANSACTIONS.c.id, TRANSACTIONS.c.kind, TRANSACTIONS.c.request_hash, TRANSACTIONS.c.response).where(
    TRANSACTIONS.c.id == bindparam("id")
))
_SPEND_SINCE = Prepared(select(_spent_after("a")).where(
    TRANSACTIONS.c.customer_id == bindparam("customer_id"), TRANSACTIONS.c.occurred_at > bindparam("earliest")
))
# What a card sale reads of the customer's history, in one statement: the eligible spend after two
# moments (the tier at the sale's time, and the rolling year now), the welcome points held, and the
# birthday points since a moment (the start of the birthday week the sale falls in).
def _eligible_spend_after(moment: str):
    return (
        select(func.coalesce(func.sum(TRANSACTIONS.c.eligible_spend), 0))
        .where(TRANSACTIONS.c.customer_id == bindparam("customer_id"), TRANSACTIONS.c.occurred_at > bindparam(moment))
        .scalar_subquery()
    )


def _held(cause: str, since: str | None = None):
    conditions = [LEDGER.c.customer_id == bindparam("customer_id"), LEDGER.c.cause == cause]
    held = select(func.coalesce(func.sum(LEDGER.c.points), 0))
    if since is None:
        return held.where(*conditions).scalar_subquery()
    # an entry counts from when it was made, and a reversal from when the entry it takes back was:
    # a return of last year's birthday purchase, made in this year's week, does not unpay this year
    lot = LEDGER.alias("taken_back")
    made = func.coalesce(lot.c.created_at, LEDGER.c.created_at)
    return (
        held.select_from(LEDGER.outerjoin(lot, lot.c.id == LEDGER.c.lot_id))
        .where(*conditions, made >= bindparam(since))
        .scalar_subquery()
    )


_SALE_HISTORY = Prepared(select(
    _eligible_spend_after("a").label("spend_a"), _eligible_spend_after("b").label("spend_b"),
    _held("welcome").label("welcome_held"), _held("birthday", "birthday_since").label("birthday_held"),
))
_ENTRIES_OF = Prepared(
    select(LEDGER.c.id, LEDGER.c.points, LEDGER.c.kind, LEDGER.c.created_at, LEDGER.c.expires_at, LEDGER.c.lot_id)
    .where(LEDGER.c.customer_id == bindparam("customer_id"))
    .order_by(LEDGER.c.id)
)
_ENTRIES_AFTER = Prepared(
    select(LEDGER.c.id, LEDGER.c.points, LEDGER.c.kind, LEDGER.c.created_at, LEDGER.c.expires_at, LEDGER.c.lot_id)
    .where(LEDGER.c.customer_id == bindparam("customer_id"), LEDGER.c.id > bindparam("after"))
    .order_by(LEDGER.c.id)
)
_FAVOURITES = Prepared(
    select(PRODUCTS.c.sku, PRODUCTS.c.description, PRODUCTS.c.visits)
    .where(PRODUCTS.c.customer_id == bindparam("customer_id"), PRODUCTS.c.visits > 0)
    .order_by(PRODUCTS.c.visits.desc(), PRODUCTS.c.quantity_milli.desc(), PRODUCTS.c.sku)
    .limit(bindparam("limit"))
)
_OPEN_FOLLOW_UPS = Prepared(
    select(FOLLOW_UPS.c.id, FOLLOW_UPS.c.opened_at, FOLLOW_UPS.c.reason)
    .where(FOLLOW_UPS.c.customer_id == bindparam("customer_id"), FOLLOW_UPS.c.resolved_at.is_(None))
    .order_by(FOLLOW_UPS.c.opened_at)
)


def _bought_upsert(insert):
    stmt = insert(PRODUCTS)
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[PRODUCTS.c.customer_id, PRODUCTS.c.sku],
        set_={
            "visits": PRODUCTS.c.visits + new.visits,
            "quantity_milli": PRODUCTS.c.quantity_milli + new.quantity_milli,
            "description": new.description,
            "last_bought_at": case((new.last_bought_at > PRODUCTS.c.last_bought_at, new.last_bought_at), else_=PRODUCTS.c.last_bought_at),
        },
    )


_RECORD_BOUGHT: dict[str, Prepared] = {}


def _record_bought(dialect_name: str) -> Prepared:
    """The favourites' upsert in the database's own dialect, made on first use: importing the
    PostgreSQL dialect cost every SQLite till ~25 ms of its start-up."""
    stmt = _RECORD_BOUGHT.get(dialect_name)
    if stmt is None:
        if dialect_name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = _RECORD_BOUGHT[dialect_name] = Prepared(_bought_upsert(insert), rows_in_one=True)  # (a sale's SKUs are distinct)
    return stmt


_INSERT_TRANSACTION = Prepared(TRANSACTIONS.insert())
_INSERT_LINES = Prepared(LINES.insert(), rows_in_one=True)
_INSERT_REDEMPTIONS = Prepared(REDEMPTIONS.insert())
_INSERT_ENTRIES = Prepared(LEDGER.insert())

UNIQUE_FIELDS = ("email", "phone", "number", "username", "name", "transaction_id", "visit_code")


def duplicate_key(e: IntegrityError) -> DuplicateKey:
    """A unique or primary key the database refused, as the shop's conflict naming the field."""
    text = str(e.orig).lower()
    for column in UNIQUE_FIELDS:
        if column in text:
            field = "card_number" if column == "number" else column
            return DuplicateKey(f"a record with this {column.replace('_', ' ')} already exists", field=field)
    return DuplicateKey("this record already exists")


def _history(rows: Rows) -> tuple[int, int, int, int]:
    row = rows.first()
    return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0), int(row[3] or 0)


def _entries(rows: Rows) -> list[Entry]:
    return [Entry(*row) for row in rows]


def flush(session: Session) -> None:
    """Flush, turning a concurrent writer's duplicate into a 409 rather than a 500."""
    try:
        session.flush()
    except IntegrityError as e:
        raise duplicate_key(e) from e


class _Repo:
    def __init__(self, session: Session | SqlUnitOfWork, now: Callable[[], dt.datetime] = m.utcnow) -> None:
        # a Session, or the unit of work (uow.py), whose session is made only if the ORM is used:
        # until then prepared statements run on its driver connection
        if isinstance(session, Session):
            self._session, self._uow = session, None
        else:
            self._session, self._uow = None, session
        self.now = now  # the shop's clock, so stamps follow it (and tests can set it)

    @property
    def s(self) -> Session:
        session = self._session
        if session is None:
            session = self._session = self._uow.session
        return session

    def _dialect_name(self) -> str:
        return self._uow.dialect.name if self._uow is not None else self.s.get_bind().dialect.name

    def _flush(self) -> None:
        flush(self.s)

    def _later(self, stmt: Prepared, params: dict[str, Any] | None, convert: Callable[[Rows], Any]) -> Later:
        """``convert(self._core(stmt, params))``, as a ``Later``: sent now and read when asked for
        inside the unit of work's ``in_one_trip`` on PostgreSQL, read at once elsewhere."""
        uow = self._uow
        if uow is not None and uow.batching:
            return Later(send(uow.driver(), stmt, params), convert)
        return Later.done(convert(self._core(stmt, params)))

    def _core(self, stmt, params=None):
        """A prebuilt Core statement on the session's connection (after flushing what the ORM holds,
        so a read sees this unit of work's own changes); a ``Prepared`` one on the driver's cursor."""
        if isinstance(stmt, Prepared):
            if self._uow is not None:
                return run(self._uow.driver(), stmt, params)
            flush(self.s)
            return run(self.s, stmt, params)
        flush(self.s)
        return self.s.connection().execute(stmt, params)


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

    # -- Core, for the counter --

    def card_holder(self, card_number: str, *, for_update: bool = False):
        """The card's status and its holder's row in one read (None if no such card); with
        ``for_update`` the customer row is locked until commit where the database can."""
        return self.card_holder_later(card_number, for_update=for_update).get()

    def card_holder_later(self, card_number: str, *, for_update: bool = False) -> Later:
        stmt = _CARD_HOLDER_LOCKED if for_update and self._lock_rows else _CARD_HOLDER
        return self._later(stmt, {"number": card_number}, Rows.first)

    def card_holder_with_visits(self, card_number: str, *, rolling_since: dt.datetime):
        """``card_holder`` plus ``rolling_spend`` (eligible spend after ``rolling_since``) and
        ``last_sale_at``: what the cashier screen shows, in one read."""
        return self.card_holder_with_visits_later(card_number, rolling_since=rolling_since).get()

    def card_holder_with_visits_later(self, card_number: str, *, rolling_since: dt.datetime) -> Later:
        return self._later(_CARD_HOLDER_WITH_VISITS, {"number": card_number, "since": rolling_since}, Rows.first)

    def change_balance(self, customer_id: int, points: int) -> None:
        if points:
            self._core(_ADD_TO_BALANCE, {"customer_id": customer_id, "points": points})


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

    def rows_of_customer(self, customer_id: int) -> list[Any]:
        return self.rows_of_customer_later(customer_id).get()

    def rows_of_customer_later(self, customer_id: int) -> Later:
        return self._later(_CARDS_OF, {"customer_id": customer_id}, list)


class Programmes(_Repo):
    def latest(self):
        """The newest version's id (a row), or None: enough to tell whether the version in hand is
        still the current one, without reading its rules."""
        return self._core(_LATEST_PROGRAMME).first()

    def row(self, version_id: int):
        """A version's id and rules as a row (None if there is no such version)."""
        return self._core(_PROGRAMME_VERSION, {"id": version_id}).first()

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

    def rows(self, *, active_only: bool = False, also: Sequence[int] = ()) -> list[Any]:
        """Rewards as rows (cheapest first): the active ones, plus any ids in ``also``."""
        return self.rows_later(active_only=active_only, also=also).get()

    def rows_later(self, *, active_only: bool = False, also: Sequence[int] = ()) -> Later:
        if not active_only:
            return self._later(_REWARDS_BY_COST, None, list)
        if also:  # a shop's catalogue is a few dozen rows: all of them, rather than an IN list per sale
            wanted = set(also)
            return self._later(_REWARDS_BY_COST, None, lambda rows: [row for row in rows if row.active or row.id in wanted])
        return self._later(_ACTIVE_REWARDS, None, list)

    def add(self, **fields: Any) -> m.Reward:
        reward = m.Reward(**fields)
        self.s.add(reward)
        self._flush()
        return reward


class Tills(_Repo):
    def by_name(self, name: str) -> m.Till | None:
        return self.s.scalars(select(m.Till).where(m.Till.name == name)).first()

    def active_by_token_hash(self, token_hash: str):
        """(id, name) of the unrevoked till holding this token, or None: one indexed read."""
        return self.active_by_token_hash_later(token_hash).get()

    def active_by_token_hash_later(self, token_hash: str) -> Later:
        return self._later(_TILL_BY_TOKEN, {"token_hash": token_hash}, Rows.first)

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

    # -- Core, for the counter --

    def answer_of(self, transaction_id: str):
        """(id, kind, request_hash, response) of a stored transaction, or None: what a retry needs."""
        return self.answer_of_later(transaction_id).get()

    def answer_of_later(self, transaction_id: str) -> Later:
        return self._later(_ANSWER_OF, {"id": transaction_id}, Rows.first)

    def spend_since(self, customer_id: int, since: dt.datetime) -> int:
        """The customer's eligible spend after a moment."""
        row = self._core(_SPEND_SINCE, {"customer_id": customer_id, "earliest": since, "a": since}).first()
        return int(row[0] or 0)

    def insert(self, row: dict[str, Any], lines: Sequence[dict[str, Any]], redemptions: Sequence[dict[str, Any]] = ()) -> None:
        """A whole transaction with its lines and redemptions, as three statements."""
        try:
            self._core(_INSERT_TRANSACTION, [row])
        except IntegrityError as e:  # another till stored the same id first
            raise duplicate_key(e) from e
        if lines:
            self._core(_INSERT_LINES, list(lines))
        if redemptions:
            self._core(_INSERT_REDEMPTIONS, list(redemptions))

    def sale_history(self, customer_id: int, *, spend_after: tuple[dt.datetime, dt.datetime], birthday_since: dt.datetime) -> tuple[int, int, int, int]:
        """(eligible spend after each of the two moments, welcome points held, birthday points since
        ``birthday_since``): what a card sale needs of the customer's history, in one read."""
        return self.sale_history_later(customer_id, spend_after=spend_after, birthday_since=birthday_since).get()

    def sale_history_later(self, customer_id: int, *, spend_after: tuple[dt.datetime, dt.datetime],
                           birthday_since: dt.datetime) -> Later:
        return self._later(_SALE_HISTORY, {
            "customer_id": customer_id, "a": spend_after[0], "b": spend_after[1], "birthday_since": birthday_since,
        }, _history)

    def set_response(self, transaction_id: str, response: dict[str, Any]) -> None:
        self.s.execute(update(m.Transaction).where(m.Transaction.id == transaction_id).values(response=response))


class Ledger(_Repo):
    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        """Entries in the order given (ids rise in that order), as one statement."""
        if rows:
            self._core(_INSERT_ENTRIES, list(rows))

    def add(self, **fields: Any) -> m.LedgerEntry:
        entry = m.LedgerEntry(**fields)
        self.s.add(entry)
        self._flush()
        return entry

    def entries(self, customer_id: int, *, after: int | None = None) -> list[Entry]:
        """The customer's entries in order (only those with an id above ``after``, if given)."""
        return self.entries_later(customer_id, after=after).get()

    def entries_later(self, customer_id: int, *, after: int | None = None) -> Later:
        if after is None:
            return self._later(_ENTRIES_OF, {"customer_id": customer_id}, _entries)
        return self._later(_ENTRIES_AFTER, {"customer_id": customer_id, "after": after}, _entries)

    @property
    def ids_follow_commits(self) -> bool:
        """Whether an entry committed later always has a higher id, so that "after id N" is all that
        is new since N was read. SQLite: yes (one writer at a time; a new row's id is one above the
        highest). PostgreSQL: a sequence hands out ids before commit, so not promised."""
        return self._dialect_name() == "sqlite"

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
        """Every customer whose ledger may still hold points past their date at ``moment``: never
        one fewer than ``domain.ledger.replay`` would find, and in practice only those.

        One pass over the ledger (the covering index ``ix_ledger_entries_customer_lots``), grouped
        by customer. A customer whose replay leaves points in a lot due by ``moment`` has
          - a positive entry due by ``moment``, and a positive balance (points held mean no debt);
          - and either a balance above what the lots not yet due can hold at most (their points less
            what entries aimed at them took back: nothing else reaches them while an older lot
            still holds points, since points are spent soonest expiry first),
          - or a lot due by ``moment`` written after a lot that is not (a shortened expiry policy,
            a claim of an old sale), where that bound does not hold and the replay decides.
        A customer whose lots are all spent, taken back or expired already meets none of these,
        however long their history: the run replays only those who may have points due.
        """
        from sqlalchemy import case, or_
        from sqlalchemy.orm import aliased

        e = aliased(m.LedgerEntry, name="e")
        lot = aliased(m.LedgerEntry, name="lot")  # the lot an entry is aimed at, if it is
        due = and_(e.points > 0, e.expires_at.is_not(None), e.expires_at <= moment)
        ahead = and_(e.points > 0, or_(e.expires_at.is_(None), e.expires_at > moment))
        aimed_ahead = and_(e.points < 0, lot.id.is_not(None), or_(lot.expires_at.is_(None), lot.expires_at > moment))
        balance = func.sum(e.points)
        at_most_ahead = func.sum(case((ahead, e.points), (aimed_ahead, e.points), else_=0))
        return list(
            self.s.scalars(
                select(e.customer_id)
                .outerjoin(lot, lot.id == e.lot_id)
                .group_by(e.customer_id)
                .having(
                    and_(
                        func.max(case((due, 1), else_=0)) == 1,
                        balance > 0,
                        or_(balance > at_most_ahead, func.max(case((due, e.id))) > func.min(case((ahead, e.id)))),
                    )
                )
                .order_by(e.customer_id)
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

    def record_bought(self, customer_id: int, bought: Sequence[tuple[str, str, int]], at: dt.datetime) -> None:
        """One sale's products (sku, description, quantity_milli), each a visit: one upsert statement.
        Each SKU once: PostgreSQL refuses an upsert that meets the same row twice in one statement."""
        if not bought:
            return
        if len({sku for sku, _, _ in bought}) != len(bought):
            raise ValueError("each product once a sale: add up its lines' quantities first")
        self._core(
            _record_bought(self._dialect_name()),
            [
                {"customer_id": customer_id, "sku": sku, "description": description, "visits": 1, "quantity_milli": quantity, "last_bought_at": at}
                for sku, description, quantity in bought
            ],
        )

    def favourite_rows(self, customer_id: int, limit: int = 5) -> list[Any]:
        return self.favourite_rows_later(customer_id, limit).get()

    def favourite_rows_later(self, customer_id: int, limit: int = 5) -> Later:
        return self._later(_FAVOURITES, {"customer_id": customer_id, "limit": limit}, list)

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

    def open_rows_for(self, customer_id: int) -> list[Any]:
        return self.open_rows_for_later(customer_id).get()

    def open_rows_for_later(self, customer_id: int) -> Later:
        return self._later(_OPEN_FOLLOW_UPS, {"customer_id": customer_id}, list)

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
    def add(self, transaction_id: str, station: str | None) -> m.PrintJob:
        job = m.PrintJob(transaction_id=transaction_id, station=station, created_at=self.now(), status="queued", attempts=0)
        self.s.add(job)
        self._flush()
        return job

    def get(self, job_id: int) -> m.PrintJob | None:
        return self.s.get(m.PrintJob, job_id)

    def unfinished_for(self, transaction_id: str) -> m.PrintJob | None:
        """The receipt's job still waiting at any station: a reprint takes it over, never adds a second."""
        return self.s.scalars(
            select(m.PrintJob).where(m.PrintJob.transaction_id == transaction_id, m.PrintJob.status != "printed").limit(1)
        ).first()

    def queued(self, station: str | None = None) -> list[m.PrintJob]:
        """Jobs not yet printed: ``station``'s and the unowned ones, or with no station every one."""
        query = select(m.PrintJob).where(m.PrintJob.status != "printed")
        if station is not None:
            query = query.where(or_(m.PrintJob.station == station, m.PrintJob.station.is_(None)))
        return list(self.s.scalars(query.order_by(m.PrintJob.id)))

    def printed_before(self, job: m.PrintJob) -> bool:
        """Whether the job's receipt has come out of a printer already (this job, or another)."""
        if job.printed_at is not None:
            return True
        return self.s.scalars(select(m.PrintJob.id).where(
            m.PrintJob.transaction_id == job.transaction_id, m.PrintJob.status == "printed", m.PrintJob.id != job.id).limit(1)).first() is not None

    def printed_recently(self, station: str, limit: int) -> list[m.PrintJob]:
        """``station``'s printed receipts, the latest job first, each transaction once (a copy
        printed is a job of its own). By job id: on SQLite the (station, status) index walked
        backwards, on PostgreSQL the newest ids first; a year of a till's receipts is never sorted
        for ten."""
        query = (select(m.PrintJob).where(m.PrintJob.station == station, m.PrintJob.status == "printed")
                 .order_by(m.PrintJob.id.desc()).limit(limit * 3))
        seen: set[str] = set()
        jobs = [job for job in self.s.scalars(query) if not (job.transaction_id in seen or seen.add(job.transaction_id))]
        return jobs[:limit]

    def claim_unowned(self, station: str) -> int:
        """Give ``station`` the waiting jobs that have none. One UPDATE: of two tills starting at
        once on PostgreSQL the second waits for the first's row locks, finds the station set and
        claims nothing, so each old receipt is printed once."""
        result = self.s.execute(
            update(m.PrintJob)
            .where(m.PrintJob.station.is_(None), m.PrintJob.status != "printed")
            .values(station=station)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount
