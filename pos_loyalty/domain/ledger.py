"""The points ledger: append-only entries, and the lots of points they leave open.

The balance is the sum of the entries. Which points expire when is worked out by replaying the
entries in order: every positive entry opens a lot with its own expiry date (fixed when it was
written, so a policy change never moves it); every negative entry consumes lots, oldest expiry
first, except that a reversal or an expiry aimed at a lot (``lot_id``) takes from that lot first.
A negative balance (a return of points already spent) is a deficit the next points pay off.
"""
from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Sequence
from zoneinfo import ZoneInfo

KINDS = ("earn", "redeem", "reverse", "expire", "adjust", "bonus")


@dataclass(frozen=True)
class Entry:
    id: int
    points: int
    kind: str
    created_at: dt.datetime
    expires_at: dt.datetime | None = None
    lot_id: int | None = None


@dataclass
class Lot:
    entry_id: int
    remaining: int
    expires_at: dt.datetime | None


@dataclass(frozen=True)
class Lots:
    open: list[Lot]
    deficit: int

    @property
    def balance(self) -> int:
        return sum(lot.remaining for lot in self.open) - self.deficit

    def expired(self, now: dt.datetime) -> list[Lot]:
        return [lot for lot in self.open if lot.expires_at is not None and lot.expires_at <= now and lot.remaining > 0]

    def next_expiry(self, now: dt.datetime) -> tuple[int, dt.datetime] | None:
        """The soonest expiry still ahead, and how many points expire then."""
        ahead = [lot for lot in self.open if lot.expires_at is not None and lot.expires_at > now and lot.remaining > 0]
        if not ahead:
            return None
        when = min(lot.expires_at for lot in ahead)  # type: ignore[type-var]
        return sum(lot.remaining for lot in ahead if lot.expires_at == when), when

    def expiring_between(self, start: dt.datetime, end: dt.datetime) -> int:
        return sum(
            lot.remaining
            for lot in self.open
            if lot.expires_at is not None and start < lot.expires_at <= end and lot.remaining > 0
        )


def _expiry_order(lot: Lot) -> tuple:
    return (lot.expires_at is None, lot.expires_at or dt.datetime.max.replace(tzinfo=dt.timezone.utc), lot.entry_id)


def replay(entries: Iterable[Entry], start: Lots | None = None) -> Lots:
    """The open lots after ``entries``; after ``start`` (the open lots an earlier replay left)
    followed by ``entries``, if given. Both give the same lots as one replay of everything: a lot
    used up is never taken from again, so only the open ones carry over (a reversal aimed at a
    used-up lot takes from the oldest open ones, as it would have anyway)."""
    lots: list[Lot] = [Lot(lot.entry_id, lot.remaining, lot.expires_at) for lot in start.open] if start else []
    by_id: dict[int, Lot] = {lot.entry_id: lot for lot in lots}
    deficit = start.deficit if start else 0
    for entry in sorted(entries, key=lambda e: e.id):
        if entry.points > 0:
            pay_off = min(deficit, entry.points)
            deficit -= pay_off
            left = entry.points - pay_off
            if left:
                lot = Lot(entry.id, left, entry.expires_at)
                lots.append(lot)
                by_id[entry.id] = lot
            continue
        need = -entry.points
        target = by_id.get(entry.lot_id) if entry.lot_id is not None else None
        if target is not None and target.remaining:
            take = min(need, target.remaining)
            target.remaining -= take
            need -= take
        if need:
            for lot in sorted((lot for lot in lots if lot.remaining), key=_expiry_order):
                take = min(need, lot.remaining)
                lot.remaining -= take
                need -= take
                if not need:
                    break
        deficit += need
    return Lots([lot for lot in lots if lot.remaining], deficit)


def still_reversible(entries: Iterable[Entry], lot_id: int) -> int:
    """How many of a lot's points a return can still take back: what the entry wrote, less what
    expired from it and what earlier reversals aimed at it already took. Points spent from the lot
    stay reversible (the customer had their value); points that expired do not (they are gone
    already, and taking them twice would charge the customer for nothing)."""
    written = taken = 0
    for entry in entries:
        if entry.id == lot_id:
            written = entry.points
        elif entry.lot_id == lot_id and entry.kind in ("expire", "reverse"):
            taken += -entry.points
    return max(0, written - taken)


def add_months(day: dt.date, months: int) -> dt.date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def expiry_for(earned_at: dt.datetime, months: int | None, tz: ZoneInfo) -> dt.datetime | None:
    """Points earned on a local day D are good through D + months, and gone at the next midnight."""
    if months is None:
        return None
    last_day = add_months(earned_at.astimezone(tz).date(), months)
    midnight = dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    return midnight.astimezone(dt.timezone.utc)


def last_valid_day(expires_at: dt.datetime, tz: ZoneInfo) -> dt.date:
    """The date to print: the last local day on which the points can still be spent."""
    return (expires_at.astimezone(tz) - dt.timedelta(microseconds=1)).date()


def birthday_in(year: int, birthday: dt.date) -> dt.date:
    """This year's birthday; 29 February is kept on 28 February in other years."""
    if birthday.month == 2 and birthday.day == 29 and not calendar.isleap(year):
        return dt.date(year, 2, 28)
    return birthday.replace(year=year)


def birthday_week_start(day: dt.date, birthday: dt.date | None, window_days: int) -> dt.date | None:
    """The first day of the birthday week ``day`` falls in, or None if it falls in none. The week
    is ``window_days`` either side of the birthday, and may reach into the next or the last year
    (a 1 January birthday's week starts in December): each birthday has its own week, so "once a
    birthday" is once per week start, whatever the calendar year."""
    if birthday is None:
        return None
    for year in (day.year - 1, day.year, day.year + 1):
        if dt.MINYEAR <= year <= dt.MAXYEAR:
            occurrence = birthday_in(year, birthday)
            if abs((occurrence - day).days) <= window_days:
                return occurrence - dt.timedelta(days=window_days)
    return None


def in_birthday_week(day: dt.date, birthday: dt.date | None, window_days: int) -> bool:
    return birthday_week_start(day, birthday, window_days) is not None


def sum_points(entries: Sequence[Entry]) -> int:
    return sum(e.points for e in entries)
