"""The manager's reports and action lists, told as a few months in the life of the shop.

The shop is in Berlin. Each sale is made "now" on the shop's clock, so the sale's time (from the
till) and the ledger's time (from the clock) agree, as they do at a real counter.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event

from pos_loyalty.domain.errors import InvalidInput
from pos_loyalty.services.feedback import record_feedback, resolve_follow_up
from pos_loyalty.services.points import adjust_points, expire_points
from pos_loyalty.services.reports import (
    LAPSING_COLUMNS,
    birthdays_coming,
    customer_activity,
    earned_versus_spent,
    count_lapsing,
    lapsing_customers,
    lapsing_page,
    one_decimal,
    percent,
    points_expiring,
    points_outstanding,
    redemption_rate,
    refresh_summaries,
    to_csv,
    top_rewards,
    visit_ratings,
)
from tests.support.factories import adjust, enrol, line, programme, return_of, reward, sale

BERLIN = ZoneInfo("Europe/Berlin")


def at(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def buy(api, clock, customer: dict | None, price: int = 1000, *, when: dt.datetime | None = None, sku: str = "TV",
        rewards: list[int] | None = None) -> dict:
    """A sale at the counter, now (or first moving the clock to ``when``)."""
    if when is not None:
        clock.now = when
    category = "electronics" if sku == "TV" else "food"
    body = sale(line(sku, price, category=category), card=customer["card"] if customer else None, at=clock.now, rewards=rewards)
    r = api.post("/transactions", json=body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def rows_by(report: dict, key: str) -> dict:
    return {row[key]: row for row in report["rows"]}


# -- formatting ------------------------------------------------------------------------------------


def test_shares_are_exact_percentages_with_one_decimal_rounded_half_up():
    assert percent(1, 3) == "33.3"
    assert percent(2, 3) == "66.7"
    assert percent(1, 8) == "12.5"
    assert percent(1, 16) == "6.3"  # 6.25 rounds up
    assert percent(3, 3) == "100.0"
    assert percent(0, 5) == "0.0"
    assert percent(1, 0) is None  # nothing to divide by: no figure, not zero
    assert one_decimal(Fraction(11, 3)) == "3.7"
    assert one_decimal(Fraction(-1, 4)) == "-0.3"


# -- points ----------------------------------------------------------------------------------------


def test_points_outstanding_are_what_customers_hold_and_what_that_is_worth(api, shop, clock):
    coffee = reward(shop, "Free coffee", points_cost=20)
    programme(shop, point_value_minor="0.5", expiry_months=1)
    clock.now = at(2026, 5, 20)
    ben = enrol(api, "Ben Braun")
    buy(api, clock, ben, 3500)  # 35 points, good through 20 June
    programme(shop, point_value_minor="0.5", expiry_months=12)
    anna = enrol(api, "Anna Schmidt", email="anna@example.com", marketing_consent=True)
    buy(api, clock, anna, 12000, when=at(2026, 6, 15))  # 120 points, good through 15 June 2027
    adjust(api, ben["id"], 10)  # goodwill, good for a year
    buy(api, clock, ben, 250, sku="COF", rewards=[coffee["id"]])  # spends 20 of the 35 that expire soonest

    report = points_outstanding(shop)
    assert report["points"] == 120 + 35 + 10 - 20
    assert report["value_minor"] == 72  # 145 points at half a cent: 72.5, floored
    assert report["point_value_minor"] == "0.5"
    assert report["customers_holding_points"] == 2 and report["deficit"] == 0
    assert report["expiring"] == {"within_days": 30, "points": 15, "value_minor": 7, "customers": 1}
    assert [row["points"] for row in report["rows"]] == [145, 15]

    assert points_expiring(shop) == [{
        "customer_id": ben["id"], "name": "Ben Braun", "card_number": ben["card"], "balance": 25,
        "marketing_consent": False, "email": None, "phone": None,
        "points_expiring": 15, "expires_after": "2026-06-20",
    }]
    assert points_expiring(shop, days=3) == []  # 20 June is five days away

    clock.now = at(2026, 6, 21, 0, 30)  # past the date, before the nightly expiry run
    assert points_outstanding(shop)["expiring"]["points"] == 0
    assert points_expiring(shop) == []


def test_earned_versus_spent_month_by_month_in_the_shops_time_zone(api, shop, clock):
    coffee = reward(shop, "Free coffee", points_cost=50)
    clock.now = at(2026, 1, 5)
    anna, ben = enrol(api, "Anna Schmidt"), enrol(api, "Ben Braun")
    buy(api, clock, anna, 10000, when=at(2026, 1, 10))  # January: 100 earned
    programme(shop, expiry_months=1)
    buy(api, clock, ben, 3000, when=at(2026, 1, 15))  # January: 30 earned, good through 15 February
    programme(shop, expiry_months=12)
    late = buy(api, clock, anna, 2000, when=dt.datetime(2026, 1, 31, 23, 30, tzinfo=dt.timezone.utc))  # 00:30 on 1 Feb in Berlin
    buy(api, clock, anna, 250, sku="COF", rewards=[coffee["id"]], when=at(2026, 2, 10))  # February: 50 spent

    clock.now = at(2026, 3, 1, 3)
    assert expire_points(shop) == {"customers": 1, "points": 30}  # March: Ben's 30 expired
    clock.now = at(2026, 3, 5)
    adjust(api, anna["id"], 10)  # March: 10 goodwill points
    r = api.post(f"/transactions/{late['id']}/returns", json=return_of(("TV", 1), at=clock.now))
    assert r.status_code == 201  # March: the 20 points of the returned TV reversed
    adjust_points(shop, anna["id"], -5, reason="double-counted goodwill", user="maria", role="manager")

    report = earned_versus_spent(shop, "2026-01-01", "2026-05-01")
    assert [c["key"] for c in report["columns"]] == ["month", "earned", "spent", "expired", "reversed", "given_back", "corrected", "net"]
    zero = {"earned": 0, "spent": 0, "expired": 0, "reversed": 0, "given_back": 0, "corrected": 0}
    assert report["rows"] == [
        {"month": "2026-01", **zero, "earned": 130, "net": 130},
        {"month": "2026-02", **zero, "earned": 20, "spent": 50, "net": -30},
        {"month": "2026-03", **zero, "earned": 10, "expired": 30, "reversed": 20, "corrected": 5, "net": -45},
        {"month": "2026-04", **zero, "net": 0},
    ]
    assert report["totals"]["net"] == points_outstanding(shop)["points"] == 55
    assert report["timezone"] == "Europe/Berlin"

    february = earned_versus_spent(shop, dt.date(2026, 2, 1), dt.date(2026, 2, 11))
    assert february["rows"] == [{"month": "2026-02", **zero, "earned": 20, "spent": 50, "net": -30}]


def test_a_report_range_is_checked_and_named_in_the_error(shop):
    for start, end, field in [
        ("2026-03-01", "2026-03-01", "end"),
        ("2026-03-01", "2026-02-01", "end"),
        ("2026-02-30", "2026-03-01", "start"),
        ("1 March", "2026-04-01", "start"),
        ("2026-03-01", None, "end"),
        (dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc), "2026-04-01", "start"),
        ("2000-01-01", "2026-01-01", "end"),  # beyond ten years
    ]:
        with pytest.raises(InvalidInput) as caught:
            earned_versus_spent(shop, start, end)
        assert caught.value.field == field, (start, end)
    with pytest.raises(InvalidInput) as caught:
        customer_activity(shop, "2026-01-01", "2026-02-01", lapsing_days=0)
    assert caught.value.field == "lapsing_days"


def test_redemption_rate_in_points_and_in_sales(api, shop, clock):
    coffee = reward(shop, "Free coffee", points_cost=60)
    anna = enrol(api)
    adjust(api, anna["id"], 100)
    buy(api, clock, anna, 5000)  # 50 earned
    buy(api, clock, anna, 250, sku="COF", rewards=[coffee["id"]])  # 60 redeemed
    buy(api, clock, None, 900)  # an anonymous sale
    clock.advance(days=30)
    buy(api, clock, anna, 250, sku="COF", rewards=[coffee["id"]])  # in July: outside the range

    report = redemption_rate(shop, "2026-06-01", "2026-07-01")
    assert (report["points_earned"], report["points_redeemed"], report["redemption_rate_percent"]) == (150, 60, "40.0")
    assert (report["sales"], report["card_sales"], report["sales_with_redemption"]) == (3, 2, 1)
    assert report["sales_with_redemption_percent"] == "33.3"
    assert report["card_sales_with_redemption_percent"] == "50.0"
    assert [row["percent"] for row in report["rows"]] == ["40.0", "33.3", "50.0"]

    quiet = redemption_rate(shop, "2025-06-01", "2025-07-01")
    assert quiet["redemption_rate_percent"] is None and quiet["sales_with_redemption_percent"] is None


# -- customers -------------------------------------------------------------------------------------


def a_year_of_customers(api, clock) -> dict[str, dict]:
    """Who bought when, from November 2025 to May 2026."""
    clock.now = at(2024, 12, 1)
    people = {
        "anna": enrol(api, "Anna Schmidt"),
        "ben": enrol(api, "Ben Braun"),
        "cleo": enrol(api, "Cleo Cramer", email="cleo@example.com", marketing_consent=True),
        "dora": enrol(api, "Dora Dietz"),
        "emil": enrol(api, "Emil Engel", phone="+49 30 555 0101"),
        "finn": enrol(api, "Finn Fuchs"),
        "gus": enrol(api, "Gus Graf"),
    }
    visits = [
        ("dora", at(2025, 1, 10)),  # long gone: more than a year before the range
        ("gus", at(2025, 6, 1)),
        ("anna", at(2025, 11, 10)),
        ("cleo", at(2025, 12, 1)),  # not seen since
        ("gus", at(2026, 3, 5)),
        ("anna", at(2026, 3, 10)),
        ("ben", at(2026, 3, 15)),  # first visit in March
        ("emil", at(2026, 3, 20)),  # first (and only) visit in March
        ("finn", at(2026, 4, 5)),  # first visit in April
        ("ben", at(2026, 4, 12)),
        ("finn", at(2026, 5, 6)),
        ("anna", at(2026, 5, 20)),
    ]
    for who, when in visits:
        buy(api, clock, people[who], 1000, when=when)
    buy(api, clock, None, 500, when=at(2026, 4, 1))  # anonymous: nobody to count
    clock.now = at(2026, 6, 15)
    return people


def test_active_new_returning_and_lapsing_customers_with_retention_by_first_month(api, shop, clock):
    a_year_of_customers(api, clock)
    report = customer_activity(shop, "2026-03-01", "2026-06-01")
    # active: Anna, Ben, Emil, Finn, Gus; new: Ben, Emil, Finn; returning: Anna, Gus;
    # lapsing: Cleo and Gus bought in the year before March, and neither since 2 April
    assert (report["active"], report["new"], report["returning"], report["lapsing"]) == (5, 3, 2, 2)
    assert report["lapsing_days"] == 60
    assert rows_by(report, "measure")["new"]["customers"] == 3

    retention = report["retention"]
    assert [c["key"] for c in retention["columns"]] == ["cohort", "customers", "month_0", "month_1", "month_2"]
    march, april = retention["rows"]  # nobody's first visit was in May
    assert {k: march[k] for k in ("cohort", "customers", "month_0", "month_1", "month_2")} == {
        "cohort": "2026-03", "customers": 2, "month_0": 2, "month_1": 1, "month_2": 0,
    }
    assert march["percent"] == {"month_0": "100.0", "month_1": "50.0", "month_2": "0.0"}
    assert {k: april[k] for k in ("cohort", "customers", "month_0", "month_1", "month_2")} == {
        "cohort": "2026-04", "customers": 1, "month_0": 1, "month_1": 1, "month_2": None,
    }

    stricter = customer_activity(shop, "2026-03-01", "2026-06-01", lapsing_days=90)
    assert stricter["lapsing"] == 1  # Gus was in on 5 March, within 90 days of the end


def test_the_lapsing_list_shows_whom_to_win_back_and_whom_we_may_contact(api, shop, clock):
    people = a_year_of_customers(api, clock)
    rows = lapsing_customers(shop)  # on 15 June: not seen for 60 days, seen within the year
    assert [r["name"] for r in rows] == ["Cleo Cramer", "Gus Graf", "Emil Engel", "Ben Braun"]  # longest away first
    cleo, gus, emil, ben = rows
    assert cleo == {
        "customer_id": people["cleo"]["id"], "name": "Cleo Cramer", "card_number": people["cleo"]["card"],
        "last_visit": "2025-12-01", "days_away": 196, "balance": 10,
        "marketing_consent": True, "email": "cleo@example.com", "phone": None,
    }
    assert emil["marketing_consent"] is False and emil["phone"] is None  # no consent: no contact details
    assert ben["last_visit"] == "2026-04-12" and ben["days_away"] == 64

    text = to_csv(rows, LAPSING_COLUMNS)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert list(parsed[0]) == list(LAPSING_COLUMNS)
    assert parsed[0]["email"] == "cleo@example.com" and parsed[0]["marketing_consent"] == "true"
    assert parsed[2]["email"] == "" and parsed[2]["marketing_consent"] == "false"
    assert [p["card_number"] for p in parsed] == [r["card_number"] for r in rows]


def test_csv_cells_never_run_as_spreadsheet_formulas():
    rows = [{"name": '=HYPERLINK("http://x")', "phone": "+493012345", "balance": -20, "note": "@home", "consent": True, "gone": None}]
    text = to_csv(rows, ["name", "phone", "balance", "note", "consent", "gone"])
    assert text.splitlines()[1] == "\"'=HYPERLINK(\"\"http://x\"\")\",+493012345,-20,'@home,true,"


# -- ratings and rewards ---------------------------------------------------------------------------


def test_visit_ratings_give_satisfaction_nps_and_the_open_follow_ups(api, shop, clock):
    anna = enrol(api, "Anna Schmidt")
    first, second, third = buy(api, clock, anna), buy(api, clock, anna), buy(api, clock, anna)
    anonymous = buy(api, clock, None)
    record_feedback(shop, transaction_id=first["id"], satisfaction=5, recommend=10)
    record_feedback(shop, transaction_id=second["id"], satisfaction=4, recommend=9)
    poor = record_feedback(shop, transaction_id=third["id"], satisfaction=2, recommend=3, comment="cold coffee")
    record_feedback(shop, transaction_id=anonymous["id"], recommend=7)
    clock.advance(days=20)
    record_feedback(shop, transaction_id=buy(api, clock, anna)["id"], satisfaction=1)  # in July: another report's

    report = visit_ratings(shop, "2026-06-01", "2026-07-01")
    assert report["ratings"] == 4
    assert report["satisfaction"] == {"average": "3.7", "count": 3}  # 11 / 3
    assert report["nps"] == {"score": 25, "responses": 4, "promoters": 2, "passives": 1, "detractors": 1}
    assert [row["ratings"] for row in report["rows"]] == [0, 1, 0, 1, 1]
    follow_ups = report["open_follow_ups"]
    assert follow_ups["count"] == 2  # the July one is open too: follow-ups are as of today
    oldest = follow_ups["rows"][0]
    assert oldest["id"] == poor["follow_up_id"]
    assert (oldest["customer_name"], oldest["card_number"], oldest["opened_on"]) == ("Anna Schmidt", anna["card"], "2026-06-15")
    assert oldest["reason"] == "satisfaction 2/5, would recommend 3/10: cold coffee"

    resolve_follow_up(shop, poor["follow_up_id"], user="maria", resolution="called her back")
    assert visit_ratings(shop, "2026-06-01", "2026-07-01")["open_follow_ups"]["count"] == 1

    nothing = visit_ratings(shop, "2025-06-01", "2025-07-01")
    assert nothing["satisfaction"]["average"] is None and nothing["nps"]["score"] is None


def test_top_rewards_by_times_redeemed_and_points_spent(api, shop, clock):
    coffee = reward(shop, "Free coffee", points_cost=20)
    cake = reward(shop, "Free cake", points_cost=50, sku="CAKE")
    reward(shop, "Five euro off", kind="amount_off", amount=500, points_cost=300)
    anna = enrol(api)
    adjust(api, anna["id"], 100)
    buy(api, clock, anna, 250, sku="COF", rewards=[coffee["id"]])
    buy(api, clock, anna, 400, sku="CAKE", rewards=[cake["id"]])
    buy(api, clock, anna, 250, sku="COF", rewards=[coffee["id"]])

    report = top_rewards(shop, "2026-06-01", "2026-07-01")
    assert report["rows"] == [
        {"reward_id": coffee["id"], "name": "Free coffee", "times_redeemed": 2, "points_spent": 40, "discount_given": 500},
        {"reward_id": cake["id"], "name": "Free cake", "times_redeemed": 1, "points_spent": 50, "discount_given": 400},
    ]
    assert top_rewards(shop, "2026-06-01", "2026-07-01", limit=1)["rows"][0]["name"] == "Free coffee"
    assert top_rewards(shop, "2026-07-01", "2026-08-01")["rows"] == []


# -- birthdays -------------------------------------------------------------------------------------


def test_birthdays_in_the_coming_week_across_the_new_year_and_on_29_february(api, shop, clock):
    clock.now = at(2026, 12, 28, 9)
    today = enrol(api, "Tom Heute", birthday="1970-12-28")
    enrol(api, "Yvonne Gestern", birthday="1980-12-27")  # yesterday: missed
    silvester = enrol(api, "Silvia Silvester", birthday="1985-12-31", preferred_name="Silvi", marketing_consent=True,
                      email="silvi@example.com")
    january = enrol(api, "Jan Neujahr", birthday="1990-01-03")
    enrol(api, "Lena Spaet", birthday="1990-01-04")  # a week and a day away
    enrol(api, "Nora Ohne")  # no birthday given

    coming = birthdays_coming(shop)  # 28 December to 3 January
    assert [(r["name"], r["birthday_on"], r["turns"]) for r in coming] == [
        ("Tom Heute", "2026-12-28", 56),
        ("Silvia Silvester", "2026-12-31", 41),
        ("Jan Neujahr", "2027-01-03", 37),
    ]
    assert coming[1]["preferred_name"] == "Silvi" and coming[1]["email"] == "silvi@example.com"
    assert coming[0]["customer_id"] == today["id"] and coming[2]["card_number"] == january["card"]
    assert silvester["id"] == coming[1]["customer_id"]

    clock.now = at(2027, 2, 25)
    leap = enrol(api, "Leo Schalt", birthday="2000-02-29")
    enrol(api, "Mara Maerz", birthday="1999-03-01")
    assert [(r["name"], r["birthday_on"]) for r in birthdays_coming(shop)] == [
        ("Leo Schalt", "2027-02-28"),  # no 29 February this year: kept on the 28th
        ("Mara Maerz", "2027-03-01"),
    ]
    clock.now = at(2028, 2, 25)
    assert [(r["name"], r["birthday_on"]) for r in birthdays_coming(shop)] == [
        ("Leo Schalt", "2028-02-29"), ("Mara Maerz", "2028-03-01"),
    ]
    clock.now = at(2028, 2, 22)  # the window ends on 28 February in a leap year: not Leo's day
    assert birthdays_coming(shop) == []
    assert [r["customer_id"] for r in birthdays_coming(shop, days=8)] == [leap["id"]]


# -- staying fast ----------------------------------------------------------------------------------


def count_statements(app, work) -> int:
    db = app.extensions["pos_loyalty"].db
    seen: list[str] = []

    def note(conn, cursor, statement, *args):
        seen.append(statement)

    engines = {db.writer, db.reader}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", note)
    try:
        work()
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", note)
    return len(seen)


def test_reports_take_the_same_few_queries_for_five_customers_as_for_one(app, api, shop, clock):
    coffee = reward(shop, "Free coffee", points_cost=10)
    programme(shop, expiry_months=1)

    def one_more_customer(n: int) -> None:
        clock.now = at(2026, 4, 1 + n)
        customer = enrol(api, f"Customer {n}", birthday=f"1990-04-{20 + n % 5:02d}")
        tx = buy(api, clock, customer, 2000)
        buy(api, clock, customer, 250, sku="COF", rewards=[coffee["id"]])
        record_feedback(shop, transaction_id=tx["id"], satisfaction=2, comment="slow")

    def all_reports() -> None:
        clock.now = at(2026, 4, 18)
        points_outstanding(shop)
        earned_versus_spent(shop, "2026-01-01", "2026-07-01")
        redemption_rate(shop, "2026-01-01", "2026-07-01")
        customer_activity(shop, "2026-01-01", "2026-07-01")
        visit_ratings(shop, "2026-01-01", "2026-07-01")
        top_rewards(shop, "2026-01-01", "2026-07-01")
        assert points_expiring(shop)
        assert birthdays_coming(shop)
        clock.now = at(2026, 7, 1)
        assert lapsing_customers(shop, days=30)

    one_more_customer(0)
    all_reports()  # connections opened, summaries built, nothing left to warm up
    # Both counts include folding what was written since the last report into the summaries:
    # one customer's sales, then four customers' sales.
    one_more_customer(1)
    with_one = count_statements(app, all_reports)
    for n in range(2, 6):
        one_more_customer(n)
    assert count_statements(app, all_reports) == with_one


# -- summaries -------------------------------------------------------------------------------------


def every_summarised_report(shop) -> dict:
    """Each report that reads the summaries, over ranges that use them and ranges that cannot."""
    return {
        "outstanding": points_outstanding(shop),
        "outstanding_90": points_outstanding(shop, within_days=90),
        "expiring": points_expiring(shop, days=60),
        "earn_all": earned_versus_spent(shop, "2025-10-01", "2026-09-01"),
        "earn_mid": earned_versus_spent(shop, "2026-02-14", "2026-05-03"),
        "activity_all": customer_activity(shop, "2025-10-01", "2026-09-01"),
        "activity_mid_month": customer_activity(shop, "2026-03-10", "2026-09-01", lapsing_days=30),
        "activity_past": customer_activity(shop, "2026-02-01", "2026-04-01"),
        "activity_short": customer_activity(shop, "2026-05-01", "2026-09-01", lapsing_days=200),
        "lapsing": lapsing_customers(shop, days=20),
        "lapsing_long": lapsing_customers(shop, days=200),
    }


def from_scratch(shop) -> dict:
    return {
        "outstanding": points_outstanding(shop, summaries=False),
        "outstanding_90": points_outstanding(shop, within_days=90, summaries=False),
        "expiring": points_expiring(shop, days=60, summaries=False),
        "earn_all": earned_versus_spent(shop, "2025-10-01", "2026-09-01", summaries=False),
        "earn_mid": earned_versus_spent(shop, "2026-02-14", "2026-05-03", summaries=False),
        "activity_all": customer_activity(shop, "2025-10-01", "2026-09-01", summaries=False),
        "activity_mid_month": customer_activity(shop, "2026-03-10", "2026-09-01", lapsing_days=30, summaries=False),
        "activity_past": customer_activity(shop, "2026-02-01", "2026-04-01", summaries=False),
        "activity_short": customer_activity(shop, "2026-05-01", "2026-09-01", lapsing_days=200, summaries=False),
        "lapsing": lapsing_customers(shop, days=20, summaries=False),
        "lapsing_long": lapsing_customers(shop, days=200, summaries=False),
    }


def test_the_summarised_reports_equal_the_reports_from_the_whole_history_as_the_shop_goes_on(api, shop, clock):
    coffee = reward(shop, "Free coffee", points_cost=30)
    programme(shop, expiry_months=2)
    people = a_year_of_customers(api, clock)  # seven customers, a year of visits; the clock on 15 June
    clock.now = at(2026, 6, 15)
    assert refresh_summaries(shop, rebuild=True)["rebuilt"] == 1  # built from the whole history
    assert every_summarised_report(shop) == from_scratch(shop)

    # more sales, a reward, a return, goodwill and a correction, a claimed anonymous sale
    buy(api, clock, people["dora"], 4000, when=at(2026, 6, 16))  # back after a long time
    buy(api, clock, people["anna"], 250, sku="COF", rewards=[coffee["id"]], when=at(2026, 6, 17))
    big = buy(api, clock, people["ben"], 9000, when=at(2026, 6, 20))
    adjust(api, people["emil"]["id"], 25)
    clock.now = at(2026, 6, 25)
    assert api.post(f"/transactions/{big['id']}/returns", json=return_of(("TV", 1), at=clock.now)).status_code == 201
    adjust_points(shop, people["emil"]["id"], -5, reason="double-counted goodwill", user="maria", role="manager")
    anonymous = buy(api, clock, None, 3000, when=at(2026, 7, 1))
    r = api.post(f"/transactions/{anonymous['id']}/claim", json={"card_number": people["gus"]["card"]})
    assert r.status_code == 200, r.get_json()
    newcomer = enrol(api, "Nina Neu")
    buy(api, clock, newcomer, 1500, when=at(2026, 7, 2))
    clock.now = at(2026, 7, 3)
    assert every_summarised_report(shop) == from_scratch(shop)

    # the nightly expiry run takes what fell due; sales dated ahead of a range's end
    clock.now = at(2026, 9, 1, 3)
    assert expire_points(shop)["points"] > 0
    buy(api, clock, people["finn"], 2000, when=at(2026, 9, 2))
    clock.now = at(2026, 9, 3)
    assert every_summarised_report(shop) == from_scratch(shop)
    assert refresh_summaries(shop) == {"current": True, "rebuilt": 0, "ledger_entries": 0, "sales": 0}  # nothing left to fold


def test_the_summaries_are_built_again_for_another_time_zone(api, shop, clock):
    a_year_of_customers(api, clock)
    first = refresh_summaries(shop, rebuild=True)
    assert first["rebuilt"] == 1 and refresh_summaries(shop)["rebuilt"] == 0
    # a sale at 23:30 UTC on 31 March is April in Berlin and March in New York
    anna = enrol(api, "Late Lena")
    buy(api, clock, anna, 1000, when=dt.datetime(2026, 3, 31, 23, 30, tzinfo=dt.timezone.utc))
    clock.now = at(2026, 6, 15)
    berlin = every_summarised_report(shop)
    assert berlin == from_scratch(shop)
    new_york = dataclasses.replace(shop, timezone=ZoneInfo("America/New_York"))
    assert refresh_summaries(new_york) == {"current": False, "rebuilt": 0, "ledger_entries": 0, "sales": 0}
    assert every_summarised_report(new_york) == from_scratch(new_york)  # from the base tables meanwhile
    assert refresh_summaries(new_york, rebuild=True)["rebuilt"] == 1
    assert every_summarised_report(new_york) == from_scratch(new_york)
    assert every_summarised_report(new_york)["earn_all"] != berlin["earn_all"]  # the late sale moved month
    assert refresh_summaries(shop, rebuild=True)["rebuilt"] == 1
    assert every_summarised_report(shop) == berlin


def test_many_writes_are_folded_in_batches(api, shop, clock, monkeypatch):
    import pos_loyalty.services.reports as reports

    refresh_summaries(shop, rebuild=True)
    monkeypatch.setattr(reports, "REFRESH_BATCH", 3)
    people = a_year_of_customers(api, clock)
    adjust(api, people["anna"]["id"], 40)
    done = refresh_summaries(shop)
    assert done["rebuilt"] == 0 and done["sales"] == 12 and done["ledger_entries"] > 12
    assert every_summarised_report(shop) == from_scratch(shop)


def test_before_the_summaries_are_built_the_reports_answer_from_the_whole_history_and_build_nothing(api, shop, clock):
    """Building the summaries reads everything in one transaction: never in the middle of trading,
    where a manager opening a report would hold up every till's checkout. A report answers from
    the base tables until ``pos-loyalty init`` or the nightly job has built them."""
    a_year_of_customers(api, clock)
    clock.now = at(2026, 6, 15)
    assert every_summarised_report(shop) == from_scratch(shop)
    assert refresh_summaries(shop)["current"] is False  # still not built: no report built them
    assert refresh_summaries(shop, rebuild=True)["rebuilt"] == 1
    assert refresh_summaries(shop)["current"] is True
    assert every_summarised_report(shop) == from_scratch(shop)


def test_the_lapsing_list_comes_a_page_at_a_time_with_its_count(api, shop, clock):
    """A chain's lapsing list runs to hundreds of thousands: the page asks the database for the
    count and the first rows, the same rows as the whole list starts with, summaries built or not."""
    from pos_loyalty.services.privacy import erase_customer

    a_year_of_customers(api, clock)
    clock.now = at(2026, 6, 15)
    for built in (False, True):
        if built:
            refresh_summaries(shop, rebuild=True)
        everyone = lapsing_customers(shop, days=20)
        assert len(everyone) >= 4
        assert count_lapsing(shop, days=20) == len(everyone)
        assert lapsing_page(shop, days=20, limit=2) == (everyone[:2], len(everyone))
        assert lapsing_page(shop, days=20, limit=len(everyone) + 5) == (everyone, len(everyone))
    erase_customer(shop, everyone[0]["customer_id"], actor="maria", reason="asked to be forgotten")
    for summaries in (True, False):  # an erased account is nobody to contact: not listed, not counted
        assert lapsing_customers(shop, days=20, summaries=summaries) == everyone[1:]
    assert count_lapsing(shop, days=20) == len(everyone) - 1
