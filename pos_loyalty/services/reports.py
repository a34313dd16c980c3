"""Programme health for the store manager, and the lists of customers to act on.

Every report covers a range of local days [start, end) in the shop's time zone and answers a
table the panel can draw as a chart and show as a table::

    {"report": ..., "start": "2026-01-01", "end": "2026-07-01", "timezone": "Europe/Berlin",
     "columns": [{"key": "month", "label": "Month"}, ...], "rows": [{"month": "2026-01", ...}],
     ...figures for the whole range...}

Points and money are integers (money in minor units). Ratios are never floats: a share is a
percentage with one decimal, written as text from exact integer arithmetic and rounded half up
(``percent(1, 3) == "33.3"``; ``None`` when there is nothing to divide by); the average
satisfaction is text with one decimal (``"4.3"``); the NPS is a whole number from -100 to 100.

Action lists (lapsing customers, points expiring soon, birthdays coming) are lists of plain
rows; ``to_csv(rows, columns)`` writes any of them for a spreadsheet, and ``export_action_list``
is the download, noted in the audit log (who, which list, how many rows). They leave out erased
customers (nothing is left to contact) but keep those without marketing consent, with a
``marketing_consent`` column; their email and phone are only filled in where consent was given.

Speed: points outstanding, earned versus spent, customer activity (with retention), the lapsing
list and points expiring read summaries (the ``report_*`` tables, migration 0003) instead of the
whole history: each customer's open lots of points (``domain.ledger.replay``'s answer), first and
last card sale and the local months they bought in; the points written per local day; and the
retention matrix by month. Triggers queue every new ledger entry and card sale in the writing
transaction; ``refresh_summaries`` folds the queues in before each of these reports reads them, so
the answer is the same as from the base tables (``summaries=False`` computes it from them, the
reference the tests compare with). Where a range makes the summaries unable to answer exactly (a
card sale dated at or after the range's end; a range starting mid-month after sales earlier in
that month), the report reads the base tables as before.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterable, Mapping, Sequence

from ..domain.errors import InvalidInput, NotFound
from ..domain.ledger import Entry, add_months, birthday_in, last_valid_day, replay
from ..domain.programme import format_multiplier
from .context import Shop
from .programme import current_programme
from .staff import record_export

MAX_MONTHS = 120
DEFAULT_LAPSING_DAYS = 60
DEFAULT_EXPIRY_WINDOW_DAYS = 30
DEFAULT_BIRTHDAY_WINDOW_DAYS = 7


# -- exact figures as text -------------------------------------------------------------------------


def _round_half_up(value: Fraction) -> int:
    """To the nearest whole number, halves away from zero (so -2.5 -> -3, as 2.5 -> 3)."""
    magnitude = math.floor(abs(value) + Fraction(1, 2))
    return magnitude if value >= 0 else -magnitude


def one_decimal(value: Fraction) -> str:
    tenths = _round_half_up(value * 10)
    whole, tenth = divmod(abs(tenths), 10)
    return f"{'-' if tenths < 0 else ''}{whole}.{tenth}"


def percent(part: int, whole: int) -> str | None:
    """``part`` of ``whole`` as a percentage with one decimal, e.g. ``"42.5"``; None if whole is 0."""
    if not whole:
        return None
    return one_decimal(Fraction(part * 100, whole))


def value_of(points: int, point_value_minor: Fraction) -> int:
    """What points are worth in minor units, floored (never promise a cent more than they are worth)."""
    return math.floor(points * point_value_minor)


# -- the range -------------------------------------------------------------------------------------


def _date(value: Any, field: str) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput("is not a real date", field=field) from None
    raise InvalidInput("is a date written YYYY-MM-DD", field=field)


@dataclass(frozen=True)
class Period:
    """Local days [start, end) in the shop's time zone, and the UTC instants that bound them."""

    start: dt.date
    end: dt.date
    start_at: dt.datetime
    end_at: dt.datetime
    months: tuple[str, ...]  # "2026-01", ... : the calendar months the range touches
    edges: tuple[dt.datetime, ...]  # start_at, each local first-of-month midnight inside, end_at

    def header(self, shop: Shop, report: str) -> dict[str, Any]:
        return {"report": report, "start": self.start.isoformat(), "end": self.end.isoformat(), "timezone": str(shop.timezone)}


def _midnight(shop: Shop, day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=shop.timezone).astimezone(dt.timezone.utc)


def period(shop: Shop, start: Any, end: Any) -> Period:
    """Check a report's range: two dates, the end after the start, at most ten years apart."""
    start, end = _date(start, "start"), _date(end, "end")
    if end <= start:
        raise InvalidInput("the end comes after the start (the end day itself is not included)", field="end")
    months, edges = [], [_midnight(shop, start)]
    first = start.replace(day=1)
    while first < end:
        months.append(f"{first.year:04d}-{first.month:02d}")
        if len(months) > MAX_MONTHS:
            raise InvalidInput(f"a report covers at most {MAX_MONTHS // 12} years", field="end")
        first = add_months(first, 1)
        if first < end:
            edges.append(_midnight(shop, first))
    edges.append(_midnight(shop, end))
    return Period(start, end, edges[0], edges[-1], tuple(months), tuple(edges))


def _columns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "label": label} for key, label in pairs]


def _whole(value: Any, field: str, maximum: int, unit: str = "days") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidInput(f"is a whole number of {unit} from 1 to {maximum}", field=field)
    return value


# -- summaries -------------------------------------------------------------------------------------

SUMMARY_VERSION = "1"  # bump when what the summaries hold changes: they are rebuilt
REFRESH_BATCH = 2000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class _Calendar:
    """Local days and months of the shop's time zone, for UTC instants (day starts cached)."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self._day_starts: dict[dt.date, dt.datetime] = {}

    def day_start(self, moment: dt.datetime) -> dt.datetime:
        day = moment.astimezone(self.shop.timezone).date()
        start = self._day_starts.get(day)
        if start is None:
            start = self._day_starts[day] = _midnight(self.shop, day)
        return start

    def month(self, moment: dt.datetime) -> int:
        local = moment.astimezone(self.shop.timezone)
        return local.year * 12 + local.month - 1


def _month_number(month: str) -> int:
    year, number = month.split("-")
    return int(year) * 12 + int(number) - 1


def _months_of(text: str) -> set[int]:
    return {int(x) for x in text.split(",")} if text else set()


def _months_text(months: set[int]) -> str:
    return ",".join(str(x) for x in sorted(months))


def refresh_summaries(shop: Shop, *, rebuild: bool = False) -> dict[str, Any]:
    """Fold what was written since the last call into the report summaries; ``current`` says
    whether they can answer. Safe to call any time, from any number of processes; cheap when little
    was written, and in batches that each hold the write lock only briefly.

    Summaries that are new, of another version or for another time zone are built from the whole
    history only with ``rebuild``: that reads everything in one transaction (minutes at chain
    scale), which on SQLite would hold every till's checkout that long. So it is done where no till
    waits: ``pos-loyalty init`` after an upgrade, ``pos-loyalty reports rebuild``, and the nightly
    job. Until then the reports answer from the base tables (slower, the same figures)."""
    state = {"version": SUMMARY_VERSION, "timezone": str(shop.timezone)}
    calendar = _Calendar(shop)
    done: dict[str, Any] = {"current": True, "rebuilt": 0, "ledger_entries": 0, "sales": 0}
    while True:
        with shop.uow() as uow:
            uow.reports.lock_summaries()
            current = uow.reports.summary_state() == state
            if current:
                ledger = uow.reports.ledger_queue(REFRESH_BATCH)
                sales = uow.reports.sale_queue(REFRESH_BATCH)
                if not ledger and not sales:
                    return done
                _fold_ledger(uow, calendar, ledger)
                _fold_sales(uow, calendar, sales)
                uow.reports.dequeue([q for q, _, _ in ledger], [q for q, _, _ in sales])
                uow.commit()
                done["ledger_entries"] += len(ledger)
                done["sales"] += len(sales)
                if len(ledger) < REFRESH_BATCH and len(sales) < REFRESH_BATCH:
                    return done
        if not current:
            if not rebuild:
                return {**done, "current": False}
            _rebuild(shop, calendar, state)
            done["rebuilt"] = 1


def _lot_rows(customer_id: int, lots) -> list[dict[str, Any]]:
    return [{"entry_id": lot.entry_id, "customer_id": customer_id, "expires_at": lot.expires_at, "remaining": lot.remaining}
            for lot in lots.open]


def _fold_ledger(uow, calendar: _Calendar, queued: list[tuple[int, int | None, Entry | None]]) -> None:
    """New ledger entries: into the daily sums; and each customer's lots replayed on from where
    the summary left them (or, should an entry come before what was replayed, from the start)."""
    entries_of: dict[int, list[Entry]] = defaultdict(list)
    days: dict[tuple[dt.datetime, str, bool], int] = defaultdict(int)
    for _, customer_id, entry in queued:
        if entry is None:  # pragma: no cover - the ledger is append-only
            continue
        entries_of[customer_id].append(entry)
        days[(calendar.day_start(entry.created_at), entry.kind, entry.points > 0)] += entry.points
    ids = sorted(entries_of)
    if not ids:
        return
    summaries = uow.reports.customer_summaries(ids)
    stored = uow.reports.open_lots_of(ids)
    replayed_to = {cid: (summaries[cid].last_entry_id if cid in summaries else 0) for cid in ids}
    again = [cid for cid in ids if min(e.id for e in entries_of[cid]) <= replayed_to[cid]]
    whole = uow.reports.ledgers_of_customers(again) if again else {}
    lots: list[dict[str, Any]] = []
    state = []
    for cid in ids:
        if cid in whole:
            entries = whole[cid]
        else:
            deficit = summaries[cid].deficit if cid in summaries else 0
            entries = [Entry(entry_id, remaining, "earn", _EPOCH, expires_at) for entry_id, remaining, expires_at in stored[cid]]
            if deficit:  # no lot is open while points are owed: the debt comes first
                entries.append(Entry(0, -deficit, "redeem", _EPOCH))
            entries += entries_of[cid]
        result = replay(entries)
        lots += _lot_rows(cid, result)
        last = max([replayed_to[cid], *(e.id for e in entries)])
        state.append({"customer_id": cid, "deficit": result.deficit, "last_entry_id": last})
    uow.reports.replace_open_lots(ids, lots)
    uow.reports.save_ledger_state(state)
    uow.reports.add_ledger_days(days)


def _sales_state(calendar: _Calendar, customer_id: int, times: list[dt.datetime], old_first: dt.datetime | None,
                 old_months: set[int], retention: dict[tuple[int, int], int], *, replace: bool,
                 old_last: dt.datetime | None = None) -> dict[str, Any]:
    """A customer's first and last card sale and months, with their sales added (or, ``replace``,
    as these sales alone); the change to the retention matrix goes into ``retention``."""
    if replace:
        first, last = min(times, default=None), max(times, default=None)
        months = {calendar.month(t) for t in times}
    else:
        known = [t for t in (old_first, old_last) if t is not None]
        first, last = min([*known, *times], default=None), max([*known, *times], default=None)
        months = old_months | {calendar.month(t) for t in times}
    old_cohort = calendar.month(old_first) if old_first is not None else None
    cohort = calendar.month(first) if first is not None else None
    if old_cohort == cohort:
        for month in months - old_months:
            retention[(cohort, month)] += 1
        for month in old_months - months:
            retention[(cohort, month)] -= 1
    else:
        for month in old_months:
            retention[(old_cohort, month)] -= 1
        for month in months:
            retention[(cohort, month)] += 1
    return {"customer_id": customer_id, "first_sale_at": first, "last_sale_at": last, "months": _months_text(months)}


def _fold_sales(uow, calendar: _Calendar, queued: list[tuple[int, int, dt.datetime | None]]) -> None:
    """New card sales: each customer's first and last sale, months, and the retention matrix."""
    new_times: dict[int, list[dt.datetime]] = defaultdict(list)
    read_again: set[int] = set()
    for _, customer_id, occurred_at in queued:
        if occurred_at is None:
            read_again.add(customer_id)
        else:
            new_times[customer_id].append(occurred_at)
    ids = sorted(set(new_times) | read_again)
    if not ids:
        return
    summaries = uow.reports.customer_summaries(ids)
    fresh = uow.reports.member_sales_of(sorted(read_again)) if read_again else {}
    retention: dict[tuple[int, int], int] = defaultdict(int)
    state = []
    for cid in ids:
        old = summaries.get(cid)
        old_first, old_last = (old.first_sale_at, old.last_sale_at) if old else (None, None)
        old_months = _months_of(old.months) if old else set()
        if cid in fresh:
            state.append(_sales_state(calendar, cid, fresh[cid], old_first, old_months, retention, replace=True))
        else:
            state.append(_sales_state(calendar, cid, new_times[cid], old_first, old_months, retention, replace=False,
                                      old_last=old_last))
    uow.reports.save_sales_state(state)
    uow.reports.add_retention(retention)


def _rebuild(shop: Shop, calendar: _Calendar, state: dict[str, str]) -> None:
    """The summaries from the whole ledger and every sale, in one transaction that reads one
    snapshot: the queued rows it empties are those it read."""
    flush_every = 20_000
    with shop.uow() as uow:
        reports = uow.reports
        reports.lock_summaries(one_snapshot=True)
        if reports.summary_state() == state:
            return
        reports.reset_summaries(state)
        days: dict[tuple[dt.datetime, str, bool], int] = defaultdict(int)
        lots: list[dict[str, Any]] = []
        ledger_state: list[dict[str, Any]] = []
        for customer_id, entries in reports.every_ledger():
            for entry in entries:
                days[(calendar.day_start(entry.created_at), entry.kind, entry.points > 0)] += entry.points
            result = replay(entries)
            lots += _lot_rows(customer_id, result)
            ledger_state.append({"customer_id": customer_id, "deficit": result.deficit, "last_entry_id": entries[-1].id})
            if len(lots) >= flush_every or len(ledger_state) >= flush_every:
                reports.add_open_lots(lots)
                reports.save_ledger_state(ledger_state)
                lots, ledger_state = [], []
        reports.add_open_lots(lots)
        reports.save_ledger_state(ledger_state)
        reports.add_ledger_days(days)
        retention: dict[tuple[int, int], int] = defaultdict(int)
        sales_state: list[dict[str, Any]] = []
        for customer_id, times in reports.every_member_sale():
            sales_state.append(_sales_state(calendar, customer_id, times, None, set(), retention, replace=True))
            if len(sales_state) >= flush_every:
                reports.save_sales_state(sales_state)
                sales_state = []
        reports.save_sales_state(sales_state)
        reports.add_retention(retention)
        uow.commit()


# -- points ----------------------------------------------------------------------------------------


def points_outstanding(shop: Shop, *, within_days: int = DEFAULT_EXPIRY_WINDOW_DAYS, summaries: bool = True) -> dict[str, Any]:
    """The points customers hold today and what they are worth; and what expires soon.

    ``points`` is what customers can still spend (the sum of the positive balances; erased
    accounts included, as the ledger keeps them); ``deficit`` is what customers who returned
    points they had spent owe back, so ``points - deficit`` is the sum of every balance.
    """
    within_days = _whole(within_days, "within_days", 365)
    if summaries:
        summaries = refresh_summaries(shop)["current"]
    now = shop.now()
    with shop.uow(read_only=True) as uow:
        programme = current_programme(uow)
        balances = uow.reports.balances()
        if summaries:
            expiring_customers, soon = uow.reports.expiring_totals(now, now + dt.timedelta(days=within_days))
        else:
            expiring = _expiring(uow, now, within_days)
            expiring_customers, soon = len(expiring), sum(points for points, _ in expiring.values())
    value = programme.point_value_minor
    rows = [
        {"measure": "held", "points": balances["held"], "value_minor": value_of(balances["held"], value)},
        {"measure": f"expiring within {within_days} days", "points": soon, "value_minor": value_of(soon, value)},
    ]
    return {
        "report": "points_outstanding",
        "as_of": now.isoformat(),
        "currency": shop.currency,
        "point_value_minor": format_multiplier(value),
        "points": balances["held"],
        "value_minor": value_of(balances["held"], value),
        "deficit": balances["deficit"],
        "customers_holding_points": balances["holders"],
        "expiring": {"within_days": within_days, "points": soon, "value_minor": value_of(soon, value), "customers": expiring_customers},
        "columns": _columns(("measure", "Measure"), ("points", "Points"), ("value_minor", "Worth")),
        "rows": rows,
    }


def _expiring(uow, now: dt.datetime, days: int) -> dict[int, tuple[int, dt.datetime]]:
    """customer id -> (points still held that expire within ``days``, the first such expiry),
    replaying the ledgers of every customer with such points (the summaries' reference)."""
    until = now + dt.timedelta(days=days)
    candidates = uow.reports.customers_with_points_expiring(now, until)
    found: dict[int, tuple[int, dt.datetime]] = {}
    for customer_id, entries in uow.reports.ledgers_of(candidates):
        lots = [
            lot for lot in replay(entries).open
            if lot.expires_at is not None and now < lot.expires_at <= until and lot.remaining > 0
        ]
        if lots:
            found[customer_id] = (sum(lot.remaining for lot in lots), min(lot.expires_at for lot in lots))
    return found


EARN_SPEND_COLUMNS = (
    ("month", "Month"),
    ("earned", "Earned"),
    ("spent", "Spent"),
    ("expired", "Expired"),
    ("reversed", "Reversed by returns"),
    ("given_back", "Given back on returns"),
    ("corrected", "Taken away by a manager"),
    ("net", "Net change"),
)


def _ledger_column(kind: str, positive: bool) -> str:
    if kind in ("earn", "bonus") or (kind == "adjust" and positive):
        return "earned"
    if kind == "redeem":
        return "spent"
    if kind == "expire":
        return "expired"
    if kind == "reverse":
        return "given_back" if positive else "reversed"
    return "corrected"  # a negative adjustment


def earned_versus_spent(shop: Shop, start: Any, end: Any, *, summaries: bool = True) -> dict[str, Any]:
    """Points earned (earn, bonuses, goodwill) against points spent on rewards, month by month;
    with those that expired, were reversed by returns, given back, or corrected away. Every figure
    is a positive number of points; ``net`` is the change in what customers hold."""
    p = period(shop, start, end)
    if summaries:
        summaries = refresh_summaries(shop)["current"]
    with shop.uow(read_only=True) as uow:
        sums = uow.reports.ledger_days_by_month(p.edges) if summaries else uow.reports.ledger_by_month(p.edges)
    keys = [key for key, _ in EARN_SPEND_COLUMNS[1:]]
    rows = [{"month": month, **{k: 0 for k in keys}} for month in p.months]
    for index, kind, positive, points in sums:
        row = rows[index]
        row[_ledger_column(kind, positive)] += abs(points)
        row["net"] += points
    totals = {k: sum(row[k] for row in rows) for k in keys}
    return {**p.header(shop, "earned_versus_spent"), "columns": _columns(*EARN_SPEND_COLUMNS), "rows": rows, "totals": totals}


def redemption_rate(shop: Shop, start: Any, end: Any) -> dict[str, Any]:
    """Points redeemed as a share of points earned in the range; and the share of sales (of all,
    and of those with a card) on which a reward was redeemed."""
    p = period(shop, start, end)
    with shop.uow(read_only=True) as uow:
        earned, redeemed = uow.reports.earned_and_redeemed(p.start_at, p.end_at)
        sales, member_sales, with_redemption = uow.reports.sales_with_redemptions(p.start_at, p.end_at)
    rows = [
        {"measure": "points redeemed of points earned", "part": redeemed, "whole": earned, "percent": percent(redeemed, earned)},
        {"measure": "sales with a redemption", "part": with_redemption, "whole": sales, "percent": percent(with_redemption, sales)},
        {"measure": "card sales with a redemption", "part": with_redemption, "whole": member_sales,
         "percent": percent(with_redemption, member_sales)},
    ]
    return {
        **p.header(shop, "redemption_rate"),
        "points_earned": earned,
        "points_redeemed": redeemed,
        "redemption_rate_percent": percent(redeemed, earned),
        "sales": sales,
        "card_sales": member_sales,
        "sales_with_redemption": with_redemption,
        "sales_with_redemption_percent": percent(with_redemption, sales),
        "card_sales_with_redemption_percent": percent(with_redemption, member_sales),
        "columns": _columns(("measure", "Measure"), ("part", "Count"), ("whole", "Out of"), ("percent", "%")),
        "rows": rows,
    }


# -- customers -------------------------------------------------------------------------------------


def customer_activity(shop: Shop, start: Any, end: Any, *, lapsing_days: int = DEFAULT_LAPSING_DAYS,
                      summaries: bool = True) -> dict[str, Any]:
    """Active, new, returning and lapsing customers in the range, and retention by month of first visit.

    active: bought in the range; new: their first purchase ever is in it; returning: bought in it
    and before it (so active = new + returning); lapsing: bought in the twelve months before the
    range starts, but not in the last ``lapsing_days`` days before it ends.

    Retention: for each month of the range, the customers whose first purchase was that month
    (``customers``), and how many of them bought in each month since (``month_0`` is the first
    month itself, always everyone; a month past the range's end is None).

    Erased customers are counted like any other: their visits stay, only who they were is gone.
    """
    lapsing_days = _whole(lapsing_days, "lapsing_days", 365)
    p = period(shop, start, end)
    year_before = _midnight(shop, add_months(p.start, -12))
    recent_from = _midnight(shop, p.end - dt.timedelta(days=lapsing_days))
    if summaries:
        summaries = refresh_summaries(shop)["current"]
    with shop.uow(read_only=True) as uow:
        # The summaries know each customer's first and last card sale and the months they bought
        # in, ever: they answer for this range if no card sale is dated at or after its end.
        summarised = summaries and not uow.reports.member_sale_in(p.end_at, None)
        if summarised:
            year_start = add_months(p.start, -12)
            first_whole = _month_number(year_start.strftime("%Y-%m")) + (0 if year_start.day == 1 else 1)
            last_whole = _month_number(p.start.strftime("%Y-%m")) - 1
            counts = uow.reports.activity_from_summaries(
                p.start_at, year_before, recent_from, whole_months=range(first_whole, last_whole + 1)
            )
        else:
            counts = uow.reports.customer_activity(p.start_at, p.end_at, year_before, recent_from)
        # Retention by whole months: the first month may start later than the 1st only if no card
        # sale falls in that month before the range starts.
        first_of_month = p.start.replace(day=1)
        if summarised and (first_of_month == p.start or not uow.reports.member_sale_in(_midnight(shop, first_of_month), p.start_at)):
            first = _month_number(p.months[0])
            cells = [(cohort - first, month - first, n)
                     for cohort, month, n in uow.reports.retention_cells(first, _month_number(p.months[-1]))]
        else:
            cells = uow.reports.retention(p.edges)
    rows = [{"measure": key, "customers": counts[key]} for key in ("active", "new", "returning", "lapsing")]
    return {
        **p.header(shop, "customer_activity"),
        **counts,
        "lapsing_days": lapsing_days,
        "columns": _columns(("measure", "Customers"), ("customers", "Count")),
        "rows": rows,
        "retention": _retention_table(p, cells),
    }


def _retention_table(p: Period, cells: Iterable[tuple[int, int, int]]) -> dict[str, Any]:
    n = len(p.months)
    counts = {(cohort, month): customers for cohort, month, customers in cells}
    rows = []
    for cohort in range(n):
        size = counts.get((cohort, cohort), 0)
        if not size:
            continue
        row: dict[str, Any] = {"cohort": p.months[cohort], "customers": size, "percent": {}}
        for since in range(n):
            key = f"month_{since}"
            if cohort + since < n:
                row[key] = counts.get((cohort, cohort + since), 0)
                row["percent"][key] = percent(row[key], size)
            else:
                row[key] = None
                row["percent"][key] = None
        rows.append(row)
    columns = [("cohort", "First visit"), ("customers", "Customers")] + [
        (f"month_{k}", "First month" if k == 0 else f"+{k} month{'s' if k > 1 else ''}") for k in range(n)
    ]
    return {"columns": _columns(*columns), "rows": rows}


# -- ratings ---------------------------------------------------------------------------------------


def visit_ratings(shop: Shop, start: Any, end: Any, *, follow_up_limit: int = 50) -> dict[str, Any]:
    """Ratings given in the range: average satisfaction (1-5, one decimal), NPS (% promoters 9-10
    minus % detractors 0-6, a whole number), how many; and the follow-ups still open today."""
    follow_up_limit = _whole(follow_up_limit, "follow_up_limit", 1000, "rows")
    p = period(shop, start, end)
    with shop.uow(read_only=True) as uow:
        r = uow.reports.ratings(p.start_at, p.end_at)
        open_count, open_rows = uow.reports.open_follow_ups(follow_up_limit)
    responses = r["recommend_count"]
    nps = _round_half_up(Fraction((r["promoters"] - r["detractors"]) * 100, responses)) if responses else None
    average = one_decimal(Fraction(r["satisfaction_sum"], r["satisfaction_count"])) if r["satisfaction_count"] else None
    rows = [
        {"satisfaction": score, "ratings": r[f"satisfaction_{score}"], "percent": percent(r[f"satisfaction_{score}"], r["satisfaction_count"])}
        for score in range(1, 6)
    ]
    return {
        **p.header(shop, "visit_ratings"),
        "ratings": r["ratings"],
        "complaints": r["complaints"],
        "satisfaction": {"average": average, "count": r["satisfaction_count"]},
        "nps": {
            "score": nps,
            "responses": responses,
            "promoters": r["promoters"],
            "passives": responses - r["promoters"] - r["detractors"],
            "detractors": r["detractors"],
        },
        "columns": _columns(("satisfaction", "Satisfaction"), ("ratings", "Ratings"), ("percent", "%")),
        "rows": rows,
        "open_follow_ups": {
            "count": open_count,
            "columns": _columns(("opened_at", "Opened"), ("customer_name", "Customer"), ("card_number", "Card"), ("reason", "Reason")),
            "rows": [
                {
                    "id": f["id"],
                    "opened_at": f["opened_at"].isoformat(),
                    "opened_on": shop.local_date(f["opened_at"]).isoformat(),
                    "reason": f["reason"],
                    "transaction_id": f["transaction_id"],
                    "customer_id": f["customer_id"],
                    "customer_name": f["customer_name"],
                    "card_number": f["card_number"],
                }
                for f in open_rows
            ],
        },
    }


# -- rewards ---------------------------------------------------------------------------------------


def top_rewards(shop: Shop, start: Any, end: Any, *, limit: int = 10) -> dict[str, Any]:
    """The rewards redeemed most often on sales in the range, with the points and money they took."""
    limit = _whole(limit, "limit", 100, "rows")
    p = period(shop, start, end)
    with shop.uow(read_only=True) as uow:
        rows = uow.reports.top_rewards(p.start_at, p.end_at, limit)
    rows = [{k: (int(v) if k != "name" else v) for k, v in row.items()} for row in rows]
    return {
        **p.header(shop, "top_rewards"),
        "columns": _columns(("name", "Reward"), ("times_redeemed", "Times redeemed"), ("points_spent", "Points spent"),
                            ("discount_given", "Discount given")),
        "rows": rows,
    }


# -- action lists ----------------------------------------------------------------------------------

LAPSING_COLUMNS = ("customer_id", "name", "card_number", "last_visit", "days_away", "balance", "marketing_consent", "email", "phone")
EXPIRING_COLUMNS = ("customer_id", "name", "card_number", "points_expiring", "expires_after", "balance", "marketing_consent", "email", "phone")
BIRTHDAY_COLUMNS = ("customer_id", "name", "preferred_name", "card_number", "birthday_on", "turns", "balance", "marketing_consent", "email", "phone")


def _contact(row: Mapping[str, Any]) -> dict[str, Any]:
    consent = bool(row["marketing_consent"])
    return {
        "customer_id": row["customer_id"],
        "name": row["name"],
        "card_number": row["card_number"],
        "balance": int(row["balance"]),
        "marketing_consent": consent,
        "email": row["email"] if consent else None,
        "phone": row["phone"] if consent else None,
    }


def lapsing_customers(shop: Shop, *, days: int = DEFAULT_LAPSING_DAYS, summaries: bool = True) -> list[dict[str, Any]]:
    """Customers who bought within the last twelve months but not for ``days`` days, longest away
    first: every one of them (the CSV); ``lapsing_page`` gives the first few and the count."""
    days = _whole(days, "days", 365)
    if summaries:
        summaries = refresh_summaries(shop)["current"]
    now = shop.now()
    today = shop.local_date(now)
    bought_since, not_since = _lapsing_window(shop, now, days)
    if summaries:
        with shop.uow(read_only=True) as uow:
            found = uow.reports.lapsing_from_summaries(bought_since, not_since)
        return _lapsing_rows(shop, today, found)
    with shop.uow(read_only=True) as uow:
        rows = uow.reports.lapsing_customers(bought_since, not_since)
    out = []
    for row in rows:
        last = shop.local_date(row["last_visit"])
        out.append({**_contact(row), "last_visit": last.isoformat(), "days_away": (today - last).days})
    return out


def lapsing_page(shop: Shop, *, limit: int, days: int = DEFAULT_LAPSING_DAYS) -> tuple[list[dict[str, Any]], int]:
    """The first ``limit`` rows of ``lapsing_customers`` and how many there are in all: what the
    manager's page shows of a list that runs to hundreds of thousands in a chain, from one fold of
    the summaries and one read."""
    days = _whole(days, "days", 365)
    if not refresh_summaries(shop)["current"]:
        everyone = lapsing_customers(shop, days=days, summaries=False)
        return everyone[:limit], len(everyone)
    now = shop.now()
    bought_since, not_since = _lapsing_window(shop, now, days)
    with shop.uow(read_only=True) as uow:
        found = uow.reports.lapsing_from_summaries(bought_since, not_since, limit)
        total = uow.reports.count_lapsing_from_summaries(bought_since, not_since)
    return _lapsing_rows(shop, shop.local_date(now), found), total


def count_lapsing(shop: Shop, *, days: int = DEFAULT_LAPSING_DAYS) -> int:
    """How many customers ``lapsing_customers`` lists, counted by the database."""
    return lapsing_page(shop, limit=0, days=days)[1]


def _lapsing_window(shop: Shop, now: dt.datetime, days: int) -> tuple[dt.datetime, dt.datetime]:
    return _midnight(shop, add_months(shop.local_date(now), -12)), now - dt.timedelta(days=days)


def _lapsing_rows(shop: Shop, today: dt.date, found: Iterable[tuple]) -> list[dict[str, Any]]:
    """The lapsing list's rows (as ``_contact`` and the last visit make them), from rows in order
    of the last visit: the local day is worked out once per day, not once per customer."""
    out = []
    next_day = None
    for customer_id, name, email, phone, consent, balance, card_number, last_visit in found:
        if next_day is None or last_visit >= next_day:
            day = shop.local_date(last_visit)
            next_day = _midnight(shop, day + dt.timedelta(days=1))
            last, away = day.isoformat(), (today - day).days
        consent = bool(consent)
        out.append({
            "customer_id": customer_id, "name": name, "card_number": card_number, "balance": int(balance),
            "marketing_consent": consent, "email": email if consent else None, "phone": phone if consent else None,
            "last_visit": last, "days_away": away,
        })
    return out


def points_expiring(shop: Shop, *, days: int = DEFAULT_EXPIRY_WINDOW_DAYS, summaries: bool = True) -> list[dict[str, Any]]:
    """Customers holding points that expire within ``days`` days: how many, and the last day they
    can be spent (the earliest, if several dates fall in the window). Soonest first."""
    days = _whole(days, "days", 365)
    if summaries:
        summaries = refresh_summaries(shop)["current"]
    now = shop.now()
    with shop.uow(read_only=True) as uow:
        if summaries:
            expiring = uow.reports.expiring_by_customer(now, now + dt.timedelta(days=days))
        else:
            expiring = _expiring(uow, now, days)
        contacts = uow.reports.contacts(sorted(expiring))
    out = []
    for customer_id, (points, first) in sorted(expiring.items(), key=lambda item: (item[1][1], item[0])):
        if customer_id in contacts:
            out.append({
                **_contact(contacts[customer_id]),
                "points_expiring": points,
                "expires_after": last_valid_day(first, shop.timezone).isoformat(),
            })
    return out


def birthdays_coming(shop: Shop, *, days: int = DEFAULT_BIRTHDAY_WINDOW_DAYS) -> list[dict[str, Any]]:
    """Customers whose birthday falls in the next ``days`` days, today included; a 29 February
    birthday is kept on 28 February in other years (as the birthday bonus does). Soonest first."""
    days = _whole(days, "days", 60)
    today = shop.local_date()
    window = [today + dt.timedelta(days=n) for n in range(days)]
    month_days = {(d.month, d.day) for d in window}
    if any(d.month == 2 and d.day == 28 and birthday_in(d.year, dt.date(2000, 2, 29)) == d for d in window):
        month_days.add((2, 29))
    with shop.uow(read_only=True) as uow:
        rows = uow.reports.birthdays_on(month_days)
    out = []
    for row in rows:
        born: dt.date = row["birthday"]
        on = next((d for d in (birthday_in(y, born) for y in (today.year, today.year + 1)) if today <= d <= window[-1]), None)
        if on is None:  # 29 February in a leap year's window that holds 28 February only
            continue
        out.append({**_contact(row), "preferred_name": row["preferred_name"], "birthday_on": on.isoformat(), "turns": on.year - born.year})
    return sorted(out, key=lambda r: (r["birthday_on"], r["name"], r["customer_id"]))


# name: (every row of the list, its CSV columns, the window in days it is drawn for by default)
ACTION_LISTS = {
    "lapsing": (lapsing_customers, LAPSING_COLUMNS, DEFAULT_LAPSING_DAYS),
    "expiring": (points_expiring, EXPIRING_COLUMNS, DEFAULT_EXPIRY_WINDOW_DAYS),
    "birthdays": (birthdays_coming, BIRTHDAY_COLUMNS, DEFAULT_BIRTHDAY_WINDOW_DAYS),
}


def export_action_list(shop: Shop, name: str, *, actor: str, days: int | None = None) -> str:
    """Every row of an action list as CSV, for the manager to download: names, cards, and the
    contact details of those who agreed to offers. Audited as ``action_list.export`` (who, which
    list, its window in days, how many rows), as the privacy export is."""
    if name not in ACTION_LISTS:
        raise NotFound(f"there is no list of customers called {name!r}", field="name")
    find, columns, default_days = ACTION_LISTS[name]
    days = default_days if days is None else days
    rows = find(shop, days=days)
    record_export(shop, actor, "action_list.export", "action_list", name, {"days": days, "rows": len(rows)})
    return to_csv(rows, columns)


# -- CSV -------------------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?\Z")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    text = str(value)
    # A spreadsheet runs a cell starting with = + - @ as a formula; a name like "=HYPERLINK(...)"
    # must stay text. Plain numbers (a phone number "+4930...", a negative balance) are left alone.
    if text.startswith(_FORMULA_START) and not _NUMBER.match(text):
        return "'" + text
    return text


def to_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """The rows as CSV text: a header of the column names, then one line per row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return out.getvalue()
