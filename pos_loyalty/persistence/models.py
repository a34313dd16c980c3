"""The database schema, as SQLAlchemy 2.x typed models.

Money is integer minor units, points are integers, quantities are integer thousandths
(``quantity_milli``), and every timestamp is stored in UTC and read back timezone-aware.
The ledger is append-only: the migrations install triggers that refuse UPDATE and DELETE (but
for erasure blanking an entry's reason, migration 0010).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# SQLAlchemy's default text for a DATETIME on SQLite (``sqlite.DATETIME._storage_format``)
_SQLITE_DATETIME_FORMAT = "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (which keeps no zone) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; timestamps must be timezone-aware")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)

    def fused_bind_processor(self, dialect):
        """For the prepared statements: an aware datetime to SQLite's stored text in one call, where
        SQLAlchemy chains two (the above, then its own formatting); the same text, for the
        storage format SQLAlchemy uses by default (else None: the chain it is)."""
        if dialect.name != "sqlite" or getattr(self.impl.dialect_impl(dialect), "_storage_format", None) != _SQLITE_DATETIME_FORMAT:
            return None
        utc = dt.timezone.utc

        def process(value: dt.datetime) -> str:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to the database; timestamps must be timezone-aware")
            v = value.astimezone(utc)
            return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)

        return process

    def fused_result_processor(self, dialect):
        """For the prepared statements (``prepared.py``): SQLite's stored text to an aware UTC
        datetime in one call, where SQLAlchemy chains two (``fromisoformat``, then the above)."""
        if dialect.name != "sqlite":
            return None
        parse, utc = dt.datetime.fromisoformat, dt.timezone.utc

        def process(value: str) -> dt.datetime:
            moment = parse(value)
            return moment.replace(tzinfo=utc) if moment.tzinfo is None else moment.astimezone(utc)

        return process


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    preferred_name: Mapped[str | None] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    phone: Mapped[str | None] = mapped_column(String(32), unique=True)
    birthday: Mapped[dt.date | None] = mapped_column(Date)
    language: Mapped[str | None] = mapped_column(String(16))
    marketing_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    preferences: Mapped[dict[str, Any]] = mapped_column(default=dict)
    staff_notes: Mapped[str | None] = mapped_column(Text)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    erased_at: Mapped[dt.datetime | None]

    __table_args__ = (Index("ix_customers_name_lower", "name"),)


class Card(Base):
    __tablename__ = "cards"

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    status: Mapped[str] = mapped_column(String(10), default="active")  # active | blocked
    issued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    blocked_at: Mapped[dt.datetime | None]
    blocked_reason: Mapped[str | None] = mapped_column(String(200))


class ProgrammeVersion(Base):
    """One saved version of the earn rules, tiers and expiry policy; never changed once written."""

    __tablename__ = "programme_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict[str, Any]]


class Reward(Base):
    __tablename__ = "rewards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16))  # amount_off | percent_off | free_item
    amount: Mapped[int | None] = mapped_column(BigInteger)  # minor units, amount_off
    percent: Mapped[int | None] = mapped_column(Integer)  # 1..100, percent_off
    cap: Mapped[int | None] = mapped_column(BigInteger)  # minor units, percent_off
    sku: Mapped[str | None] = mapped_column(String(64))  # free_item
    points_cost: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[dt.date | None] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)
    tiers: Mapped[list[Any] | None]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Till(Base):
    __tablename__ = "tills"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # manager | cashier
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[dt.datetime | None]
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None]


class Transaction(Base):
    """A sale or a return as the till sent it, with what we answered (kept for idempotent retries)."""

    __tablename__ = "transactions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # sale | return
    original_id: Mapped[str | None] = mapped_column(ForeignKey("transactions.id"), index=True)
    till_id: Mapped[int | None] = mapped_column(ForeignKey("tills.id"))
    cashier: Mapped[str | None] = mapped_column(String(100))
    occurred_at: Mapped[dt.datetime]
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    currency: Mapped[str] = mapped_column(String(3))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    card_number: Mapped[str | None] = mapped_column(String(32))
    subtotal: Mapped[int] = mapped_column(BigInteger)
    discount: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int] = mapped_column(BigInteger)
    eligible_spend: Mapped[int] = mapped_column(BigInteger, default=0)  # negative for returns
    points_earned: Mapped[int] = mapped_column(BigInteger, default=0)  # negative for reversals
    points_redeemed: Mapped[int] = mapped_column(BigInteger, default=0)
    programme_version_id: Mapped[int | None] = mapped_column(ForeignKey("programme_versions.id"))
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any] | None]
    visit_code: Mapped[str | None] = mapped_column(String(16), unique=True)
    claimed_at: Mapped[dt.datetime | None]

    __table_args__ = (
        # covering (migration 0006): a customer's rolling spend and last visit from the index alone
        Index("ix_transactions_customer_occurred", "customer_id", "occurred_at", "kind", "eligible_spend"),
        Index("ix_transactions_occurred_at", "occurred_at"),
    )


class TransactionLine(Base):
    __tablename__ = "transaction_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("transactions.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(64))
    quantity_milli: Mapped[int] = mapped_column(BigInteger)
    unit_price: Mapped[int] = mapped_column(BigInteger)
    line_discount: Mapped[int] = mapped_column(BigInteger, default=0)
    reward_discount: Mapped[int] = mapped_column(BigInteger, default=0)
    paid: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    original_line_id: Mapped[int | None] = mapped_column(ForeignKey("transaction_lines.id"), index=True)

    __table_args__ = (UniqueConstraint("transaction_id", "line_no", name="uq_transaction_lines_transaction_id_line_no"),)


class Redemption(Base):
    __tablename__ = "redemptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("transactions.id"), index=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id"), index=True)
    reward_name: Mapped[str] = mapped_column(String(120))
    points: Mapped[int] = mapped_column(BigInteger)
    discount: Mapped[int] = mapped_column(BigInteger)


class LedgerEntry(Base):
    """One movement of points. Append-only: the database refuses UPDATE and DELETE, except an
    erasure setting ``reason`` to "[erased]" (migration 0010)."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(8))  # earn | redeem | reverse | expire | adjust | bonus
    cause: Mapped[str] = mapped_column(String(16))  # sale | return | claim | adjustment | expiry | welcome | birthday | promotion | import
    points: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None]
    transaction_id: Mapped[str | None] = mapped_column(ForeignKey("transactions.id"), index=True)
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"))
    user: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_ledger_entries_expires_at", "expires_at"),
        Index("ix_ledger_entries_created_at", "created_at"),
    )


class CustomerProduct(Base):
    """What a customer buys, kept current on every sale and return: the source of favourites."""

    __tablename__ = "customer_products"
    # on SQLite stored in key order, a customer's rows side by side (migration 0008)
    __table_args__ = {"sqlite_with_rowid": False}

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(String(200))
    visits: Mapped[int] = mapped_column(Integer, default=0)
    quantity_milli: Mapped[int] = mapped_column(BigInteger, default=0)
    last_bought_at: Mapped[dt.datetime]


class Feedback(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("transactions.id"), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    satisfaction: Mapped[int | None] = mapped_column(Integer)  # 1..5
    recommend: Mapped[int | None] = mapped_column(Integer)  # 0..10
    comment: Mapped[str | None] = mapped_column(Text)
    complaint: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class FollowUp(Base):
    __tablename__ = "follow_ups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    feedback_id: Mapped[int | None] = mapped_column(ForeignKey("feedback.id"))
    transaction_id: Mapped[str | None] = mapped_column(ForeignKey("transactions.id"))
    opened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(Text)
    resolved_at: Mapped[dt.datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolution: Mapped[str | None] = mapped_column(Text)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]


class PrintJob(Base):
    """A receipt waiting for (or done by) the printer; a fault leaves it queued for reprint.

    ``station`` is the till whose printer is to print it (the ``station`` setting): tills sharing a
    database each print only their own. NULL is a job from before migration 0009, claimed by the
    first station to start (see ``PrintJobs.claim_unowned``).
    """

    __tablename__ = "print_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("transactions.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(10), default="queued")  # queued | printed | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    printed_at: Mapped[dt.datetime | None]
    station: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        # a station's waiting receipts (start-up, the Devices page) without reading every receipt ever printed
        Index("ix_print_jobs_station_status", "station", "status"),
    )


# -- report summaries (migration 0003) -------------------------------------------------------------
# Kept by the manager's reports (services/reports.refresh_summaries), never by the till's code:
# triggers on ledger_entries and transactions append what is new to the two queues in the writing
# transaction itself, and the reports fold the queues into the summaries before they read them.
# Everything here can be rebuilt from the ledger and the sales (the reports do so when the
# summaries' version or the shop's time zone changes).


class ReportState(Base):
    """What the summaries were built for: their format version and the shop's time zone."""

    __tablename__ = "report_state"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(64))


class ReportLedgerQueue(Base):
    """Ledger entries written since the summaries were last brought up to date."""

    __tablename__ = "report_ledger_queue"

    entry_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class ReportSaleQueue(Base):
    """Card sales written since the summaries were last brought up to date. ``occurred_at`` is
    None when a sale changed hands or time (a claim): the customer's sales are read again."""

    __tablename__ = "report_sale_queue"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[dt.datetime | None]


class ReportCustomer(Base):
    """Per customer: the first and last card sale, the local months they bought in, and the
    deficit their ledger's replay leaves (their open lots are in report_open_lots)."""

    __tablename__ = "report_customers"

    customer_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    first_sale_at: Mapped[dt.datetime | None]
    last_sale_at: Mapped[dt.datetime | None]
    months: Mapped[str] = mapped_column(Text, default="")  # month numbers (year * 12 + month - 1), comma-separated
    deficit: Mapped[int] = mapped_column(BigInteger, default=0)
    last_entry_id: Mapped[int] = mapped_column(Integer, default=0)  # the newest ledger entry replayed

    __table_args__ = (
        Index("ix_report_customers_last_sale_at", "last_sale_at", "customer_id", "first_sale_at", "months"),  # 0007
        Index("ix_report_customers_first_sale_at", "first_sale_at"),
    )


class ReportOpenLot(Base):
    """A lot of points still held: what ``domain.ledger.replay`` leaves open, per ledger entry."""

    __tablename__ = "report_open_lots"

    entry_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    customer_id: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[dt.datetime | None]
    remaining: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_report_open_lots_customer_id", "customer_id"),
        Index("ix_report_open_lots_expires_at", "expires_at", "customer_id", "remaining"),
    )


class ReportLedgerDay(Base):
    """Points written per local day (its first instant, UTC), kind and sign."""

    __tablename__ = "report_ledger_days"

    day_start: Mapped[dt.datetime] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    positive: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    points: Mapped[int] = mapped_column(BigInteger, default=0)


class ReportRetention(Base):
    """Customers whose first card sale was in local month ``cohort`` who bought in local month
    ``month`` (both year * 12 + month - 1)."""

    __tablename__ = "report_retention"

    cohort: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    month: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    customers: Mapped[int] = mapped_column(Integer, default=0)


# -- a customer's ledger from the index alone (migrations 0004, 0006) ------------------------------
# Ledger.customers_with_lots_expiring_by reads, per customer, every entry's points, expiry date and
# the lot it is aimed at: one ordered pass over this index, never the table's rows. A checkout and a
# card lookup replay one customer's entries and sum their welcome and birthday bonuses from it too.
Index(
    "ix_ledger_entries_customer_lots",
    LedgerEntry.customer_id,
    LedgerEntry.id,
    LedgerEntry.points,
    LedgerEntry.kind,
    LedgerEntry.cause,
    LedgerEntry.created_at,
    LedgerEntry.expires_at,
    LedgerEntry.lot_id,
)


# -- counting without the erased (migration 0005) --------------------------------------------------
# Reports.count_lapsing_from_summaries subtracts the few erased customers, found by this index,
# instead of joining every counted customer to its row.
Index("ix_customers_erased_at", Customer.erased_at)
