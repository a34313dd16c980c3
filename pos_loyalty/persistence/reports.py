"""Aggregate queries for the manager's reports and action lists.

Every report is one or a few aggregate queries, whatever the number of customers or sales: the
database sums and counts, Python only shapes the answer. Months are bucketed with a ``CASE`` over
the month boundaries the service computes in the shop's time zone (``edges``: the range's start,
each local first-of-month midnight inside it, the range's end, all UTC), so the same SQL works on
SQLite and PostgreSQL and a sale at 00:30 on 1 March in Berlin counts in March. Buckets are
computed in a subquery and grouped on outside it, so PostgreSQL sees one column, not two copies
of an expression with different bound parameters.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import ColumnElement, String, and_, case, delete, exists, extract, func, insert, literal, literal_column, or_, select, text
from sqlalchemy.orm import Session

from ..domain.ledger import Entry
from . import models as m

IN_CLAUSE_BATCH = 500


def month_bucket(column: ColumnElement, edges: Sequence[dt.datetime]) -> ColumnElement[int]:
    """The index of the month a timestamp falls in: 0 for [edges[0], edges[1]), and so on. The
    caller keeps the timestamp within [edges[0], edges[-1])."""
    count = len(edges) - 1
    if count <= 1:
        return literal_column("0")
    return case(*[(column < edges[i + 1], i) for i in range(count - 1)], else_=count - 1)


def _sum(expr: ColumnElement) -> ColumnElement:
    return func.coalesce(func.sum(expr), 0)


def _count_if(condition: ColumnElement) -> ColumnElement:
    return _sum(case((condition, 1), else_=0))


def _active_card():
    """The customer's newest active card, as a correlated subquery (one query for the whole list)."""
    return (
        select(m.Card.number)
        .where(m.Card.customer_id == m.Customer.id, m.Card.status == "active")
        .order_by(m.Card.issued_at.desc(), m.Card.number.desc())
        .limit(1)
        .scalar_subquery()
    )


_SALE = m.Transaction.kind == "sale"
_MEMBER = m.Transaction.customer_id.is_not(None)

# One refresher of the summaries at a time on PostgreSQL (SQLite writers queue anyway).
SUMMARY_LOCK_KEY = 0x5245504F  # "REPO"
_SUMMARY_TABLES = (
    m.ReportOpenLot, m.ReportCustomer, m.ReportLedgerDay, m.ReportRetention, m.ReportLedgerQueue, m.ReportSaleQueue,
    m.ReportState,
)


def _batches(ids: Sequence[int]) -> Iterable[list[int]]:
    ids = list(ids)
    for i in range(0, len(ids), IN_CLAUSE_BATCH):
        yield ids[i : i + IN_CLAUSE_BATCH]


class Reports:
    def __init__(self, session: Session) -> None:
        self.s = session

    # -- points ------------------------------------------------------------------------------------

    def points_outstanding(self) -> int:
        return int(self.s.scalar(select(func.coalesce(func.sum(m.Customer.balance), 0))) or 0)

    def balances(self) -> dict[str, int]:
        """Points held (positive balances), deficits (negative balances, as a positive number),
        and how many customers hold points."""
        c = m.Customer.balance
        row = self.s.execute(
            select(_sum(case((c > 0, c), else_=0)), _sum(case((c < 0, -c), else_=0)), _count_if(c > 0))
        ).one()
        return {"held": int(row[0]), "deficit": int(row[1]), "holders": int(row[2])}

    def ledger_by_month(self, edges: Sequence[dt.datetime]) -> list[tuple[int, str, bool, int]]:
        """(month index, kind, positive?, sum of points) for entries written in [edges[0], edges[-1])."""
        e = m.LedgerEntry
        inner = (
            select(
                month_bucket(e.created_at, edges).label("month"),
                e.kind.label("kind"),
                case((e.points > 0, 1), else_=0).label("positive"),
                e.points.label("points"),
            )
            .where(e.created_at >= edges[0], e.created_at < edges[-1])
            .subquery()
        )
        rows = self.s.execute(
            select(inner.c.month, inner.c.kind, inner.c.positive, func.sum(inner.c.points)).group_by(
                inner.c.month, inner.c.kind, inner.c.positive
            )
        )
        return [(int(month), kind, bool(positive), int(points)) for month, kind, positive, points in rows]

    def earned_and_redeemed(self, start: dt.datetime, end: dt.datetime) -> tuple[int, int]:
        """Points earned (earn, bonus, positive adjustments) and redeemed, written in [start, end)."""
        e = m.LedgerEntry
        earned = or_(e.kind.in_(("earn", "bonus")), and_(e.kind == "adjust", e.points > 0))
        row = self.s.execute(
            select(_sum(case((earned, e.points), else_=0)), _sum(case((e.kind == "redeem", -e.points), else_=0))).where(
                e.created_at >= start, e.created_at < end
            )
        ).one()
        return int(row[0]), int(row[1])

    def sales_with_redemptions(self, start: dt.datetime, end: dt.datetime) -> tuple[int, int, int]:
        """Sales made in [start, end): all of them, those with a card, those that redeemed points."""
        t = m.Transaction
        row = self.s.execute(
            select(func.count(), _count_if(_MEMBER), _count_if(t.points_redeemed > 0)).where(
                _SALE, t.occurred_at >= start, t.occurred_at < end
            )
        ).one()
        return int(row[0]), int(row[1]), int(row[2])

    def customers_with_points_expiring(self, after: dt.datetime, until: dt.datetime) -> list[int]:
        """Customers with points written to expire in (after, until]; whether they are still held,
        only a replay of the customer's ledger says."""
        e = m.LedgerEntry
        return list(
            self.s.scalars(
                select(e.customer_id)
                .where(e.expires_at > after, e.expires_at <= until, e.points > 0)
                .distinct()
                .order_by(e.customer_id)
            )
        )

    def ledgers_of(self, customer_ids: Sequence[int]) -> Iterable[tuple[int, list[Entry]]]:
        """Each customer's ledger entries in order, read a batch of customers per query."""
        e = m.LedgerEntry
        for i in range(0, len(customer_ids), IN_CLAUSE_BATCH):
            batch = list(customer_ids[i : i + IN_CLAUSE_BATCH])
            entries: dict[int, list[Entry]] = {cid: [] for cid in batch}
            rows = self.s.execute(
                select(e.customer_id, e.id, e.points, e.kind, e.created_at, e.expires_at, e.lot_id)
                .where(e.customer_id.in_(batch))
                .order_by(e.customer_id, e.id)
            )
            for customer_id, *fields in rows:
                entries[customer_id].append(Entry(*fields))
            yield from entries.items()

    # -- customers ---------------------------------------------------------------------------------

    def customer_activity(
        self, start: dt.datetime, end: dt.datetime, year_before: dt.datetime, recent_from: dt.datetime
    ) -> dict[str, int]:
        """Active, new, returning and lapsing customers, counted in one query.

        active: a sale in [start, end); new: the first sale ever in it; returning: a sale in it and
        one before it; lapsing: a sale in [year_before, start) and none in [recent_from, end).
        """
        t = m.Transaction
        per_customer = (
            select(
                t.customer_id,
                _count_if(and_(t.occurred_at >= start, t.occurred_at < end)).label("in_range"),
                _count_if(t.occurred_at < start).label("before"),
                _count_if(and_(t.occurred_at >= year_before, t.occurred_at < start)).label("year_before"),
                _count_if(and_(t.occurred_at >= recent_from, t.occurred_at < end)).label("recent"),
            )
            .where(_SALE, _MEMBER, t.occurred_at < end)
            .group_by(t.customer_id)
            .subquery()
        )
        c = per_customer.c
        row = self.s.execute(
            select(
                _count_if(c.in_range > 0),
                _count_if(and_(c.in_range > 0, c.before == 0)),
                _count_if(and_(c.in_range > 0, c.before > 0)),
                _count_if(and_(c.year_before > 0, c.recent == 0)),
            )
        ).one()
        return {"active": int(row[0]), "new": int(row[1]), "returning": int(row[2]), "lapsing": int(row[3])}

    def retention(self, edges: Sequence[dt.datetime]) -> list[tuple[int, int, int]]:
        """(month of first sale, month of a later sale, customers) for customers whose first sale
        ever falls in [edges[0], edges[-1]), counting each customer once per month they bought in."""
        t = m.Transaction
        first = (
            select(t.customer_id.label("customer_id"), func.min(t.occurred_at).label("first_at"))
            .where(_SALE, _MEMBER)
            .group_by(t.customer_id)
            .having(func.min(t.occurred_at) >= edges[0], func.min(t.occurred_at) < edges[-1])
            .subquery()
        )
        cohort = select(first.c.customer_id, month_bucket(first.c.first_at, edges).label("cohort")).subquery()
        months = (
            select(t.customer_id.label("customer_id"), month_bucket(t.occurred_at, edges).label("month"))
            .where(_SALE, _MEMBER, t.occurred_at >= edges[0], t.occurred_at < edges[-1])
            .distinct()
            .subquery()
        )
        rows = self.s.execute(
            select(cohort.c.cohort, months.c.month, func.count())
            .join(months, months.c.customer_id == cohort.c.customer_id)
            .group_by(cohort.c.cohort, months.c.month)
        )
        return [(int(a), int(b), int(n)) for a, b, n in rows]

    def lapsing_customers(self, bought_since: dt.datetime, not_since: dt.datetime) -> list[dict[str, Any]]:
        """Customers (not erased) whose last sale is in [bought_since, not_since), longest away first."""
        t = m.Transaction
        last = (
            select(t.customer_id.label("customer_id"), func.max(t.occurred_at).label("last_visit"))
            .where(_SALE, _MEMBER)
            .group_by(t.customer_id)
            .having(func.max(t.occurred_at) >= bought_since, func.max(t.occurred_at) < not_since)
            .subquery()
        )
        stmt = (
            select(*_contact_columns(), last.c.last_visit)
            .join(last, last.c.customer_id == m.Customer.id)
            .where(m.Customer.erased_at.is_(None))
            .order_by(last.c.last_visit, m.Customer.id)
        )
        return [dict(row._mapping) for row in self.s.execute(stmt)]

    def contacts(self, customer_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Name, card, balance and contact details of these customers (not erased), by id."""
        found: dict[int, dict[str, Any]] = {}
        for i in range(0, len(customer_ids), IN_CLAUSE_BATCH):
            batch = list(customer_ids[i : i + IN_CLAUSE_BATCH])
            stmt = select(*_contact_columns()).where(m.Customer.id.in_(batch), m.Customer.erased_at.is_(None))
            found.update({row.customer_id: dict(row._mapping) for row in self.s.execute(stmt)})
        return found

    def birthdays_on(self, month_days: Iterable[tuple[int, int]]) -> list[dict[str, Any]]:
        """Customers (not erased) born on any of these (month, day) pairs."""
        pairs = sorted(set(month_days))
        if not pairs:
            return []
        month, day = extract("month", m.Customer.birthday), extract("day", m.Customer.birthday)
        stmt = (
            select(*_contact_columns(), m.Customer.birthday)
            .where(
                m.Customer.erased_at.is_(None),
                m.Customer.birthday.is_not(None),
                or_(*[and_(month == mo, day == d) for mo, d in pairs]),
            )
            .order_by(m.Customer.id)
        )
        return [dict(row._mapping) for row in self.s.execute(stmt)]

    # -- summaries: kept up to date by services.reports.refresh_summaries --------------------------

    @property
    def _postgres(self) -> bool:
        return self.s.get_bind().dialect.name == "postgresql"

    def lock_summaries(self, *, one_snapshot: bool = False) -> None:
        """Take the summaries for this transaction (first thing in it). ``one_snapshot``: every
        statement reads the same snapshot (PostgreSQL's REPEATABLE READ), for a rebuild."""
        if self._postgres:
            if one_snapshot:  # (valid only as the transaction's first statement, as it is here)
                self.s.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            self.s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SUMMARY_LOCK_KEY})

    def summary_state(self) -> dict[str, str]:
        return {key: value for key, value in self.s.execute(select(m.ReportState.key, m.ReportState.value))}

    def reset_summaries(self, state: dict[str, str]) -> None:
        """Empty every summary and both queues (what the rebuild is about to read covers them)."""
        for model in _SUMMARY_TABLES:
            self.s.execute(delete(model))
        self.s.execute(insert(m.ReportState), [{"key": k, "value": v} for k, v in state.items()])

    def every_ledger(self) -> Iterable[tuple[int, list[Entry]]]:
        """Every customer's ledger entries in order, one customer at a time (streamed)."""
        e = m.LedgerEntry
        rows = self.s.execute(
            select(e.customer_id, e.id, e.points, e.kind, e.created_at, e.expires_at, e.lot_id)
            .order_by(e.customer_id, e.id)
            .execution_options(yield_per=20_000)
        )
        current, entries = None, []
        for customer_id, *fields in rows:
            if customer_id != current:
                if entries:
                    yield current, entries
                current, entries = customer_id, []
            entries.append(Entry(*fields))
        if entries:
            yield current, entries

    def every_member_sale(self) -> Iterable[tuple[int, list[dt.datetime]]]:
        """Every customer's card sales' times, one customer at a time (streamed)."""
        t = m.Transaction
        rows = self.s.execute(
            select(t.customer_id, t.occurred_at).where(_SALE, _MEMBER).order_by(t.customer_id).execution_options(yield_per=20_000)
        )
        current, times = None, []
        for customer_id, occurred_at in rows:
            if customer_id != current:
                if times:
                    yield current, times
                current, times = customer_id, []
            times.append(occurred_at)
        if times:
            yield current, times

    def ledger_queue(self, limit: int) -> list[tuple[int, int | None, Entry | None]]:
        """(queued entry id, customer, the entry) for the oldest ``limit`` queued ledger entries."""
        q, e = m.ReportLedgerQueue, m.LedgerEntry
        rows = self.s.execute(
            select(q.entry_id, e.customer_id, e.id, e.points, e.kind, e.created_at, e.expires_at, e.lot_id)
            .outerjoin(e, e.id == q.entry_id)
            .order_by(q.entry_id)
            .limit(limit)
        )
        return [(qid, customer_id, Entry(*fields) if fields[0] is not None else None) for qid, customer_id, *fields in rows]

    def sale_queue(self, limit: int) -> list[tuple[int, int, dt.datetime | None]]:
        """(queue id, customer, the sale's time or None: read the customer's sales again)."""
        q = m.ReportSaleQueue
        return [tuple(row) for row in self.s.execute(select(q.id, q.customer_id, q.occurred_at).order_by(q.id).limit(limit))]

    def customer_summaries(self, customer_ids: Sequence[int]) -> dict[int, m.ReportCustomer]:
        rc = m.ReportCustomer
        found: dict[int, Any] = {}
        for batch in _batches(customer_ids):
            found.update({row.customer_id: row for row in self.s.execute(select(rc).where(rc.customer_id.in_(batch))).scalars()})
        return found

    def open_lots_of(self, customer_ids: Sequence[int]) -> dict[int, list[tuple[int, int, dt.datetime | None]]]:
        """customer -> [(entry id, points remaining, expires at)] as last summarised."""
        lot = m.ReportOpenLot
        found: dict[int, list] = {cid: [] for cid in customer_ids}
        for batch in _batches(customer_ids):
            for customer_id, entry_id, remaining, expires_at in self.s.execute(
                select(lot.customer_id, lot.entry_id, lot.remaining, lot.expires_at).where(lot.customer_id.in_(batch))
            ):
                found[customer_id].append((entry_id, remaining, expires_at))
        return found

    def ledgers_of_customers(self, customer_ids: Sequence[int]) -> dict[int, list[Entry]]:
        return dict(self.ledgers_of(list(customer_ids)))

    def member_sales_of(self, customer_ids: Sequence[int]) -> dict[int, list[dt.datetime]]:
        t = m.Transaction
        found: dict[int, list] = {cid: [] for cid in customer_ids}
        for batch in _batches(customer_ids):
            for customer_id, occurred_at in self.s.execute(
                select(t.customer_id, t.occurred_at).where(_SALE, t.customer_id.in_(batch))
            ):
                found[customer_id].append(occurred_at)
        return found

    def _upsert(self, model, rows: list[dict[str, Any]], keys: Sequence[str], update: Callable) -> None:
        if not rows:
            return
        table = model.__table__
        if self._postgres:
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(table)
        self.s.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=update(table, stmt.excluded)), rows)

    def replace_open_lots(self, customer_ids: Sequence[int], lots: list[dict[str, Any]]) -> None:
        lot = m.ReportOpenLot
        for batch in _batches(customer_ids):
            self.s.execute(delete(lot).where(lot.customer_id.in_(batch)))
        self.add_open_lots(lots)

    def add_open_lots(self, lots: list[dict[str, Any]]) -> None:
        if lots:
            self.s.execute(insert(m.ReportOpenLot), lots)

    def save_ledger_state(self, rows: list[dict[str, Any]]) -> None:
        """rows of customer_id, deficit, last_entry_id (the sales' columns left as they are)."""
        self._upsert(
            m.ReportCustomer,
            [{"first_sale_at": None, "last_sale_at": None, "months": "", **row} for row in rows],
            ["customer_id"],
            lambda t, new: {"deficit": new.deficit, "last_entry_id": new.last_entry_id},
        )

    def save_sales_state(self, rows: list[dict[str, Any]]) -> None:
        """rows of customer_id, first_sale_at, last_sale_at, months (the ledger's columns left as they are)."""
        self._upsert(
            m.ReportCustomer,
            [{"deficit": 0, "last_entry_id": 0, **row} for row in rows],
            ["customer_id"],
            lambda t, new: {"first_sale_at": new.first_sale_at, "last_sale_at": new.last_sale_at, "months": new.months},
        )

    def add_ledger_days(self, sums: dict[tuple[dt.datetime, str, bool], int]) -> None:
        rows = [{"day_start": day, "kind": kind, "positive": positive, "points": points}
                for (day, kind, positive), points in sums.items()]
        self._upsert(m.ReportLedgerDay, rows, ["day_start", "kind", "positive"], lambda t, new: {"points": t.c.points + new.points})

    def add_retention(self, counts: dict[tuple[int, int], int]) -> None:
        rows = [{"cohort": c, "month": mo, "customers": n} for (c, mo), n in counts.items() if n]
        self._upsert(m.ReportRetention, rows, ["cohort", "month"], lambda t, new: {"customers": t.c.customers + new.customers})

    def dequeue(self, ledger_entry_ids: Sequence[int], sale_queue_ids: Sequence[int]) -> None:
        for batch in _batches(ledger_entry_ids):
            self.s.execute(delete(m.ReportLedgerQueue).where(m.ReportLedgerQueue.entry_id.in_(batch)))
        for batch in _batches(sale_queue_ids):
            self.s.execute(delete(m.ReportSaleQueue).where(m.ReportSaleQueue.id.in_(batch)))

    # -- the reports, read from the summaries -------------------------------------------------------

    def expiring_totals(self, after: dt.datetime, until: dt.datetime) -> tuple[int, int]:
        """(customers, points) still held in lots that expire in (after, until]."""
        lot = m.ReportOpenLot
        row = self.s.execute(
            select(func.count(func.distinct(lot.customer_id)), _sum(lot.remaining)).where(lot.expires_at > after, lot.expires_at <= until)
        ).one()
        return int(row[0]), int(row[1])

    def expiring_by_customer(self, after: dt.datetime, until: dt.datetime) -> dict[int, tuple[int, dt.datetime]]:
        """customer -> (points still held that expire in (after, until], the first such expiry)."""
        lot = m.ReportOpenLot
        rows = self.s.execute(
            select(lot.customer_id, func.sum(lot.remaining), func.min(lot.expires_at))
            .where(lot.expires_at > after, lot.expires_at <= until)
            .group_by(lot.customer_id)
        )
        return {customer_id: (int(points), first) for customer_id, points, first in rows}

    def ledger_days_by_month(self, edges: Sequence[dt.datetime]) -> list[tuple[int, str, bool, int]]:
        """As ledger_by_month, from the daily sums (every edge is a local midnight)."""
        d = m.ReportLedgerDay
        inner = (
            select(month_bucket(d.day_start, edges).label("month"), d.kind.label("kind"), d.positive.label("positive"), d.points.label("points"))
            .where(d.day_start >= edges[0], d.day_start < edges[-1])
            .subquery()
        )
        rows = self.s.execute(
            select(inner.c.month, inner.c.kind, inner.c.positive, func.sum(inner.c.points)).group_by(
                inner.c.month, inner.c.kind, inner.c.positive
            )
        )
        return [(int(month), kind, bool(positive), int(points)) for month, kind, positive, points in rows]

    def member_sale_in(self, start: dt.datetime | None, end: dt.datetime | None) -> bool:
        """Whether any card sale happened in [start, end) (an open end: none given)."""
        t = m.Transaction
        conditions = [_SALE, _MEMBER]
        if start is not None:
            conditions.append(t.occurred_at >= start)
        if end is not None:
            conditions.append(t.occurred_at < end)
        return bool(self.s.scalar(select(exists().where(*conditions))))

    def activity_from_summaries(
        self, start: dt.datetime, year_before: dt.datetime, recent_from: dt.datetime, whole_months: Sequence[int] = ()
    ) -> dict[str, int]:
        """customer_activity's counts when no card sale happened at or after the range's end: then a
        customer is active if their last sale is at or after ``start``, new if their first is, and
        lapsing if they bought in [year_before, start) and their last sale is before ``recent_from``.

        ``whole_months`` are the shop's months lying wholly inside [year_before, start): a customer
        whose summary lists one of them bought in that year without looking at their sales; only
        the others are looked up (at chain scale, hundreds of thousands of index probes fewer)."""
        rc = m.ReportCustomer
        active = int(self.s.scalar(select(func.count()).where(rc.last_sale_at >= start)) or 0)
        new = int(self.s.scalar(select(func.count()).where(rc.first_sale_at >= start)) or 0)
        lapsing = int(self.s.scalar(
            select(func.count()).where(rc.last_sale_at >= year_before, rc.last_sale_at < min(start, recent_from))
        ) or 0)
        if recent_from > start:  # last sale in [start, recent_from): lapsing if they also bought in [year_before, start)
            t = m.Transaction
            bought_before = exists().where(
                t.customer_id == rc.customer_id, _SALE, t.occurred_at >= year_before, t.occurred_at < start
            )
            if whole_months:  # (both databases evaluate the cheap test first and skip the probe)
                listed = literal(",", String) + rc.months + literal(",", String)
                # newest month first: a customer still coming in the range most likely bought lately
                latest_first = sorted(whole_months, reverse=True)
                bought_before = or_(*[listed.like(f"%,{int(month)},%") for month in latest_first], bought_before)
            lapsing += int(self.s.scalar(
                select(func.count()).where(
                    rc.last_sale_at >= start, rc.last_sale_at < recent_from, rc.first_sale_at < start, bought_before
                )
            ) or 0)
        return {"active": active, "new": new, "returning": active - new, "lapsing": lapsing}

    def retention_cells(self, first_month: int, last_month: int) -> list[tuple[int, int, int]]:
        """(cohort, month, customers) for cohorts and months within [first_month, last_month]."""
        r = m.ReportRetention
        rows = self.s.execute(
            select(r.cohort, r.month, r.customers).where(
                r.cohort >= first_month, r.cohort <= last_month, r.month <= last_month, r.customers != 0
            )
        )
        return [(int(c), int(mo), int(n)) for c, mo, n in rows]

    def count_lapsing_from_summaries(self, bought_since: dt.datetime, not_since: dt.datetime) -> int:
        """Everyone whose last card sale is in the range (from the summaries' index alone), less the
        erased among them (found by ``ix_customers_erased_at``): no join of every counted row."""
        rc, c = m.ReportCustomer, m.Customer
        in_range = and_(rc.last_sale_at >= bought_since, rc.last_sale_at < not_since)
        everyone = int(self.s.scalar(select(func.count()).select_from(rc).where(in_range)) or 0)
        # Two steps, so that no planner starts from the range's hundreds of thousands of rows.
        erased_ids = list(self.s.scalars(select(c.id).where(c.erased_at.is_not(None))))
        erased = 0
        for start in range(0, len(erased_ids), 500):
            erased += int(self.s.scalar(
                select(func.count()).select_from(rc).where(rc.customer_id.in_(erased_ids[start:start + 500]), in_range)
            ) or 0)
        return everyone - erased

    def lapsing_from_summaries(self, bought_since: dt.datetime, not_since: dt.datetime, limit: int | None = None) -> list[tuple]:
        """As lapsing_customers, from each customer's last card sale; plain tuples (the list can be
        long): customer_id, name, email, phone, marketing_consent, balance, card_number, last_visit."""
        rc, c = m.ReportCustomer, m.Customer
        stmt = (
            select(c.id, c.name, c.email, c.phone, c.marketing_consent, c.balance, _active_card(), rc.last_sale_at)
            .join(rc, rc.customer_id == c.id)
            .where(rc.last_sale_at >= bought_since, rc.last_sale_at < not_since, c.erased_at.is_(None))
            .order_by(rc.last_sale_at, rc.customer_id)
            .limit(limit)
        )
        return self.s.execute(stmt).all()

    # -- ratings and follow-ups -------------------------------------------------------------------

    def ratings(self, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
        f = m.Feedback
        columns = {
            "ratings": func.count(),
            "satisfaction_count": func.count(f.satisfaction),
            "satisfaction_sum": _sum(f.satisfaction),
            "recommend_count": func.count(f.recommend),
            "promoters": _count_if(f.recommend >= 9),
            "detractors": _count_if(f.recommend <= 6),
            "complaints": _count_if(f.complaint.is_(True)),
            **{f"satisfaction_{score}": _count_if(f.satisfaction == score) for score in range(1, 6)},
        }
        row = self.s.execute(
            select(*[expr.label(name) for name, expr in columns.items()]).where(f.created_at >= start, f.created_at < end)
        ).one()
        return {name: int(value or 0) for name, value in row._mapping.items()}

    def open_follow_ups(self, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """How many follow-ups are open, and the oldest ``limit`` of them with the customer's name."""
        fu = m.FollowUp
        count = int(self.s.scalar(select(func.count()).where(fu.resolved_at.is_(None))) or 0)
        rows = self.s.execute(
            select(
                fu.id, fu.opened_at, fu.reason, fu.transaction_id, fu.customer_id,
                m.Customer.name.label("customer_name"), _active_card().label("card_number"),
            )
            .outerjoin(m.Customer, m.Customer.id == fu.customer_id)
            .where(fu.resolved_at.is_(None))
            .order_by(fu.opened_at, fu.id)
            .limit(limit)
        )
        return count, [dict(row._mapping) for row in rows]

    # -- rewards -----------------------------------------------------------------------------------

    def top_rewards(self, start: dt.datetime, end: dt.datetime, limit: int) -> list[dict[str, Any]]:
        """Rewards redeemed on sales made in [start, end): how often, for how many points, most used first."""
        r = m.Redemption
        times = func.count(r.id).label("times_redeemed")
        points = _sum(r.points).label("points_spent")
        stmt = (
            select(r.reward_id, m.Reward.name, times, points, _sum(r.discount).label("discount_given"))
            .join(m.Transaction, m.Transaction.id == r.transaction_id)
            .join(m.Reward, m.Reward.id == r.reward_id)
            .where(m.Transaction.occurred_at >= start, m.Transaction.occurred_at < end)
            .group_by(r.reward_id, m.Reward.name)
            .order_by(times.desc(), points.desc(), r.reward_id)
            .limit(limit)
        )
        return [dict(row._mapping) for row in self.s.execute(stmt)]


def _contact_columns() -> list[ColumnElement]:
    c = m.Customer
    return [
        c.id.label("customer_id"), c.name, c.preferred_name, c.email, c.phone, c.marketing_consent, c.balance,
        _active_card().label("card_number"),
    ]
