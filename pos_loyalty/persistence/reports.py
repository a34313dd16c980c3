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
from typing import Any, Iterable, Sequence

from sqlalchemy import ColumnElement, and_, case, extract, func, literal_column, or_, select
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
