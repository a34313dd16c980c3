"""The ledger's rules on their own (no database): balances, lots, oldest points first, expiry dates."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from pos_loyalty.domain.ledger import (
    Entry,
    add_months,
    birthday_in,
    birthday_week_start,
    expiry_for,
    in_birthday_week,
    last_valid_day,
    replay,
    still_reversible,
    sum_points,
)
from pos_loyalty.domain.timing import EARLIEST, LATEST

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
JAN = dt.datetime(2027, 1, 31, 23, 0, tzinfo=UTC)
MAR = dt.datetime(2027, 3, 31, 22, 0, tzinfo=UTC)


def earn(id: int, points: int, expires_at: dt.datetime | None = None, kind: str = "earn") -> Entry:
    return Entry(id, points, kind, T0, expires_at)


def spend(id: int, points: int, kind: str = "redeem", lot_id: int | None = None) -> Entry:
    return Entry(id, -points, kind, T0, None, lot_id)


def test_the_balance_is_the_sum_of_the_entries():
    entries = [earn(1, 100, JAN), spend(2, 30), earn(3, 5), spend(4, 10, kind="adjust")]
    assert sum_points(entries) == 65
    assert replay(entries).balance == 65


def test_spending_takes_the_points_that_expire_soonest_first():
    # earned in March first, then in January's lot; January goes first, whatever the order written
    lots = replay([earn(1, 100, MAR), earn(2, 100, JAN), spend(3, 150)])
    assert [(lot.entry_id, lot.remaining) for lot in lots.open] == [(1, 50)]


def test_points_that_never_expire_are_spent_last():
    lots = replay([earn(1, 100, None), earn(2, 100, MAR), spend(3, 120)])
    assert [(lot.entry_id, lot.remaining) for lot in lots.open] == [(1, 80)]


def test_a_reversal_aimed_at_a_lot_takes_from_that_lot_first():
    lots = replay([earn(1, 100, JAN), earn(2, 40, MAR), spend(3, 40, kind="reverse", lot_id=2)])
    assert [(lot.entry_id, lot.remaining) for lot in lots.open] == [(1, 100)]


def test_a_reversal_of_points_already_spent_leaves_a_deficit_the_next_points_pay_off():
    lots = replay([earn(1, 100, JAN), spend(2, 100), spend(3, 100, kind="reverse", lot_id=1)])
    assert lots.open == [] and lots.deficit == 100 and lots.balance == -100
    lots = replay([earn(1, 100, JAN), spend(2, 100), spend(3, 100, kind="reverse", lot_id=1), earn(4, 130, MAR)])
    assert lots.deficit == 0
    assert [(lot.entry_id, lot.remaining) for lot in lots.open] == [(4, 30)]
    assert lots.expired(MAR) == lots.open  # only what is left after paying the debt can expire


def test_expired_lots_and_the_next_expiry():
    lots = replay([earn(1, 100, JAN), earn(2, 40, MAR), earn(3, 2, MAR), earn(4, 7, None), spend(5, 30)])
    assert lots.next_expiry(T0) == (70, JAN)
    assert lots.next_expiry(JAN) == (42, MAR)  # at the expiry moment January's points are gone
    assert [lot.entry_id for lot in lots.expired(JAN)] == [1]
    assert lots.next_expiry(MAR) is None
    assert lots.expiring_between(T0, MAR) == 112
    assert lots.expiring_between(JAN, MAR) == 42


def test_an_expiry_entry_closes_its_lot_so_a_second_run_finds_nothing():
    entries = [earn(1, 100, JAN), spend(2, 30), spend(3, 70, kind="expire", lot_id=1)]
    lots = replay(entries)
    assert lots.expired(MAR) == [] and lots.balance == 0


def test_a_return_can_still_take_back_spent_points_but_not_expired_ones():
    entries = [earn(1, 100, JAN), spend(2, 60), spend(3, 40, kind="expire", lot_id=1)]
    assert still_reversible(entries, 1) == 60
    entries.append(spend(4, 25, kind="reverse", lot_id=1))
    assert still_reversible(entries, 1) == 35
    assert still_reversible([earn(1, 100, JAN)], 1) == 100
    assert still_reversible([earn(1, 100, JAN), spend(2, 100, kind="expire", lot_id=1)], 1) == 0


def test_points_are_good_through_the_same_day_months_later_and_gone_at_the_next_local_midnight():
    earned = dt.datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
    expires = expiry_for(earned, 12, BERLIN)
    assert expires == dt.datetime(2027, 6, 16, 0, 0, tzinfo=BERLIN)
    assert expires.tzinfo is UTC
    assert last_valid_day(expires, BERLIN) == dt.date(2027, 6, 15)


def test_the_day_earned_is_the_shops_local_day_not_the_utc_day():
    just_after_local_midnight = dt.datetime(2026, 6, 15, 22, 30, tzinfo=UTC)  # 00:30 on the 16th in Berlin
    assert last_valid_day(expiry_for(just_after_local_midnight, 1, BERLIN), BERLIN) == dt.date(2026, 7, 16)


def test_month_ends_and_leap_days_fall_back_to_the_last_day_of_the_month():
    assert add_months(dt.date(2026, 1, 31), 1) == dt.date(2026, 2, 28)
    assert add_months(dt.date(2028, 2, 29), 12) == dt.date(2029, 2, 28)
    assert add_months(dt.date(2026, 11, 30), 3) == dt.date(2027, 2, 28)
    assert add_months(dt.date(2026, 12, 15), 1) == dt.date(2027, 1, 15)


def test_no_expiry_policy_means_points_never_expire():
    assert expiry_for(T0, None, BERLIN) is None


def test_birthday_week_wraps_the_new_year_and_keeps_29_february():
    assert birthday_in(2027, dt.date(2000, 2, 29)) == dt.date(2027, 2, 28)
    assert birthday_in(2028, dt.date(2000, 2, 29)) == dt.date(2028, 2, 29)
    assert in_birthday_week(dt.date(2026, 12, 30), dt.date(1990, 1, 1), 3)
    assert in_birthday_week(dt.date(2027, 1, 2), dt.date(1990, 12, 31), 3)
    assert not in_birthday_week(dt.date(2026, 6, 20), dt.date(1990, 6, 16), 3)
    assert not in_birthday_week(dt.date(2026, 6, 20), None, 3)


def test_each_birthday_has_one_week_whichever_calendar_year_its_days_fall_in():
    new_year = dt.date(1990, 1, 1)
    assert birthday_week_start(dt.date(2027, 12, 30), new_year, 3) == dt.date(2027, 12, 29)
    assert birthday_week_start(dt.date(2028, 1, 2), new_year, 3) == dt.date(2027, 12, 29)  # the same birthday
    old_year = dt.date(1990, 12, 31)
    assert birthday_week_start(dt.date(2027, 1, 2), old_year, 3) == dt.date(2026, 12, 28)
    assert birthday_week_start(dt.date(2027, 12, 30), old_year, 3) == dt.date(2027, 12, 28)  # the next birthday
    leap = dt.date(2000, 2, 29)
    assert birthday_week_start(dt.date(2027, 3, 3), leap, 3) == dt.date(2027, 2, 25)  # kept on 28 February
    assert birthday_week_start(dt.date(2027, 3, 4), leap, 3) is None
    assert birthday_week_start(dt.date(2028, 3, 3), leap, 3) == dt.date(2028, 2, 26)
    assert birthday_week_start(dt.date(2026, 6, 20), None, 3) is None


@given(
    st.datetimes(min_value=EARLIEST.replace(tzinfo=None), max_value=LATEST.replace(tzinfo=None), timezones=st.just(UTC)),
    st.integers(1, 120),
    st.sampled_from([UTC, BERLIN, ZoneInfo("Pacific/Kiritimati"), ZoneInfo("Pacific/Pago_Pago")]),
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2026, 12, 31)),
    st.integers(0, 15),
)
def test_every_date_a_till_may_send_has_an_expiry_date_and_a_birthday_week(occurred_at, months, zone, birthday, window):
    expires = expiry_for(occurred_at, months, zone)
    assert expires > occurred_at
    assert last_valid_day(expires, zone) >= occurred_at.astimezone(zone).date()
    birthday_week_start(occurred_at.astimezone(zone).date(), birthday, window)  # (no overflow at either end of a year)


_dates = st.sampled_from([None, JAN, MAR, JAN + dt.timedelta(days=400)])
_moves = st.lists(
    st.one_of(
        st.tuples(st.just("earn"), st.integers(1, 500), _dates),
        st.tuples(st.sampled_from(["redeem", "adjust", "expire", "reverse"]), st.integers(-500, -1), st.none()),
    ),
    max_size=30,
)


def _entries(moves, rnd) -> list[Entry]:
    """The ledger the moves write; half the negative ones aimed at an earlier lot."""
    entries: list[Entry] = []
    for i, (kind, points, expires) in enumerate(moves, start=1):
        earlier = [e.id for e in entries if e.points > 0]
        lot_id = rnd.choice(earlier) if points < 0 and earlier and rnd.random() < 0.5 else None
        entries.append(Entry(i, points, kind, T0, expires, lot_id))
    return entries


@given(_moves, st.randoms(use_true_random=False))
def test_replay_always_agrees_with_the_sum_and_never_holds_both_points_and_a_debt(moves, rnd):
    entries = _entries(moves, rnd)
    lots = replay(entries)
    assert lots.balance == sum_points(entries)
    assert lots.deficit >= 0 and all(lot.remaining > 0 for lot in lots.open)
    assert not (lots.deficit and lots.open)


@given(_moves, st.randoms(use_true_random=False))
def test_replay_continued_from_the_lots_an_earlier_replay_left_is_the_whole_replay(moves, rnd):
    # services.lots keeps a customer's open lots and later replays only the newer entries: at every
    # split of the history, that must give exactly the lots of one replay of everything
    entries = _entries(moves, rnd)
    whole = replay(entries)
    for cut in range(len(entries) + 1):
        before = replay(entries[:cut])
        snapshot = [(lot.entry_id, lot.remaining) for lot in before.open]
        continued = replay(entries[cut:], start=before)
        assert continued == whole, cut
        assert [(lot.entry_id, lot.remaining) for lot in before.open] == snapshot  # the kept lots are not changed
