"""Checkout as the till sees it: points earned, rewards redeemed, retries, the answer's contents."""
from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from pos_loyalty.domain.errors import LoyaltyError

from tests.support.factories import adjust, enrol, line, programme, reward, sale


def test_a_card_sale_earns_a_point_per_euro_paid_floored_once(api):
    anna = enrol(api)
    r = api.post("/transactions", json=sale(line("COF", 250, 2), line("BAN", 199, "0.755", category="fruit"), card=anna["card"]))
    assert r.status_code == 201
    body = r.get_json()
    assert body["subtotal"] == 500 + 150
    assert body["points"]["earned"] == 6  # 6.50 paid: one floor for the whole sale
    assert [ln["points"] for ln in body["lines"]] == [5, 1]
    assert body["points"]["balance_before"] == 0 and body["points"]["balance_after"] == 6
    assert body["points"]["breakdown"] == {"base": 6, "promotion": 0, "tier": 0, "bonuses": []}


def test_excluded_categories_earn_nothing(api):
    anna = enrol(api)
    body = api.post("/transactions", json=sale(line("CIG", 800, category="tobacco"), line("COF", 300), card=anna["card"])).get_json()
    assert body["points"]["earned"] == 3
    assert body["lines"][0]["points"] == 0


def test_an_anonymous_sale_is_recorded_but_earns_nothing(api):
    r = api.post("/transactions", json=sale(line("COF", 900)))
    assert r.status_code == 201
    assert r.get_json()["points"]["earned"] == 0
    assert api.get(f"/transactions/{r.get_json()['id']}").status_code == 200


def test_a_retry_with_the_same_body_returns_the_same_answer_and_writes_nothing(api):
    anna = enrol(api)
    body = sale(line("COF", 1000), card=anna["card"])
    first = api.post("/transactions", json=body).get_json()
    again = api.post("/transactions", json=body)
    assert again.status_code == 201
    assert {k: v for k, v in again.get_json().items() if k != "replayed"} == first
    assert api.get(f"/cards/{anna['card']}").get_json()["balance"] == 10
    assert len(api.get(f"/customers/{anna['id']}/ledger").get_json()) == 1


def test_the_same_id_with_a_different_body_is_a_conflict(api):
    anna = enrol(api)
    body = sale(line("COF", 1000), card=anna["card"])
    api.post("/transactions", json=body)
    r = api.post("/transactions", json={**body, "lines": [line("COF", 2000)]})
    assert r.status_code == 409
    assert r.content_type == "application/problem+json"
    assert r.get_json()["errors"][0]["field"] == "id"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_same_sale_waiting_on_the_customers_row_lock_gets_the_first_copys_answer(app, api, shop, database_url):
    """A till retries a sale on a second till while the first copy is still being written: on
    PostgreSQL the second waits on the customer's row lock, and then finds the reward's points
    already spent by the first. It must answer as a retry (the first copy's answer), not refuse
    the sale for want of points; a different body under the id is still a 409 naming ``id``."""
    coffee = reward(shop, "Free coffee", points_cost=30)
    for n, other_body in enumerate((False, True)):
        customer = enrol(api, f"Anna {n}")
        adjust(api, customer["id"], 30)  # exactly the reward: a second copy would find nothing left
        body = sale(line("COF", 250), card=customer["card"], rewards=[coffee["id"]], id=f"RETRIED-{n}")
        other = {**body, "lines": [line("COF", 250, 2)]} if other_body else body  # (as good a sale on its own)
        first, second = _race_on_the_row_lock(shop, database_url, customer["id"], body, other)
        if not other_body:
            assert first["id"] == second["id"] == f"RETRIED-{n}"
            assert sorted([first.get("replayed", False), second.get("replayed", False)]) == [False, True]
            assert {**first, "replayed": None} == {**second, "replayed": None}  # the first copy's answer
            assert api.get(f"/cards/{customer['card']}").get_json()["balance"] == first["points"]["balance_after"]
        else:
            answered, refused = sorted([first, second], key=lambda a: "status" in a)
            assert answered["id"] == f"RETRIED-{n}" and refused == {"status": 409, "field": "id"}


def _race_on_the_row_lock(shop, database_url: str, customer_id: int, *bodies) -> list:
    """Each body from its own thread, both queued behind a row lock on the customer held here,
    then let go together: what each till was answered (or the status and field it was refused with)."""
    from pos_loyalty.api.schemas import SaleSchema
    from pos_loyalty.api.till import _sale_request
    from pos_loyalty.services.transactions import record_sale

    outcomes: list = [None] * len(bodies)

    def till(i: int, body: dict) -> None:
        try:
            outcomes[i] = record_sale(shop, _sale_request(SaleSchema().load(body)), till_id=None)
        except LoyaltyError as refused:
            outcomes[i] = {"status": refused.status, "field": refused.field}

    holder = create_engine(database_url)
    watcher = create_engine(database_url, isolation_level="AUTOCOMMIT")  # (each look a fresh view of the activity)
    waiting = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
    try:
        with holder.connect() as conn, watcher.connect() as watch:
            conn.execute(text("SELECT id FROM customers WHERE id = :id FOR UPDATE"), {"id": customer_id})
            threads = [threading.Thread(target=till, args=(i, body)) for i, body in enumerate(bodies)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 30
            while watch.execute(waiting).scalar() < len(bodies):  # (asked of the server, not slept on)
                assert time.monotonic() < deadline, "the copies never queued on the customer's row"
            conn.commit()
            for thread in threads:
                thread.join(timeout=30)
    finally:
        holder.dispose()
        watcher.dispose()
    return outcomes


def test_redeeming_a_reward_discounts_the_basket_and_spends_the_points(api, shop):
    coffee = reward(shop, "Free coffee", points_cost=50)
    anna = enrol(api)
    adjust(api, anna["id"], 80)
    body = api.post("/transactions", json=sale(line("COF", 250, 2), card=anna["card"], rewards=[coffee["id"]])).get_json()
    assert body["rewards"] == [{"reward_id": coffee["id"], "name": "Free coffee", "points": 50, "discount": 250}]
    assert body["total"] == 250
    assert body["points"]["redeemed"] == 50
    assert body["points"]["earned"] == 2  # on the 2.50 actually paid
    assert body["points"]["balance_after"] == 80 - 50 + 2


def test_redeeming_more_than_the_balance_is_refused_and_writes_nothing(api, shop):
    voucher = reward(shop, "5 euro off", kind="amount_off", amount=500, points_cost=500)
    anna = enrol(api)
    adjust(api, anna["id"], 100)
    body = sale(line("COF", 1000), card=anna["card"], rewards=[voucher["id"]])
    r = api.post("/transactions", json=body)
    assert r.status_code == 409
    problem = r.get_json()
    assert "insufficient points" in problem["detail"]
    assert problem["balance"] == 100 and problem["cost"] == 500
    assert api.get(f"/transactions/{body['id']}").status_code == 404
    assert api.get(f"/cards/{anna['card']}").get_json()["balance"] == 100


def test_a_reward_never_makes_the_total_negative(api, shop):
    voucher = reward(shop, "20 euro off", kind="amount_off", amount=2000, points_cost=10)
    anna = enrol(api)
    adjust(api, anna["id"], 10)
    body = api.post("/transactions", json=sale(line("COF", 300), card=anna["card"], rewards=[voucher["id"]])).get_json()
    assert body["total"] == 0
    assert body["rewards"][0]["discount"] == 300


def test_percent_off_is_capped(api, shop):
    pct = reward(shop, "10 percent off", kind="percent_off", percent=10, cap=150, points_cost=10)
    anna = enrol(api)
    adjust(api, anna["id"], 10)
    body = api.post("/transactions", json=sale(line("TV", 50000, category="electronics"), card=anna["card"], rewards=[pct["id"]])).get_json()
    assert body["discount"] == 150


def test_category_and_sku_multipliers_and_a_dated_promotion(api, shop):
    programme(
        shop,
        category_multipliers={"fruit": "2"},
        sku_multipliers={"COF": "3"},
        promotions=[{"name": "Double Monday", "starts_on": "2026-06-01", "ends_on": "2026-06-30", "weekdays": [0], "multiplier": "2"}],
    )
    anna = enrol(api)
    monday = dt.datetime(2026, 6, 15, 9, 0, tzinfo=dt.timezone.utc)  # a Monday in Berlin too
    body = api.post("/transactions", json=sale(line("COF", 100), line("APL", 100, category="fruit"), line("BRD", 100, category="bakery"), card=anna["card"], at=monday)).get_json()
    # base: 3 + 2 + 1 = 6; the Monday promotion doubles it
    assert body["points"]["breakdown"]["base"] == 6
    assert body["points"]["breakdown"]["promotion"] == 6
    assert body["points"]["earned"] == 12
    tuesday = monday + dt.timedelta(days=1)
    body = api.post("/transactions", json=sale(line("BRD", 100, category="bakery"), card=anna["card"], at=tuesday)).get_json()
    assert body["points"]["earned"] == 1


def test_a_promotion_bonus_needs_its_minimum_spend(api, shop):
    programme(shop, promotions=[{"name": "Spend 20 get 50", "starts_on": "2026-01-01", "ends_on": "2026-12-31", "bonus_points": 50, "min_spend": 2000}])
    anna = enrol(api)
    small = api.post("/transactions", json=sale(line("COF", 1999), card=anna["card"])).get_json()
    assert small["points"]["breakdown"]["bonuses"] == []
    big = api.post("/transactions", json=sale(line("COF", 2000), card=anna["card"])).get_json()
    assert big["points"]["breakdown"]["bonuses"] == [{"cause": "promotion", "points": 50, "reason": "Spend 20 get 50"}]
    assert big["points"]["earned"] == 70


def test_welcome_bonus_once_and_birthday_bonus_once_a_birthday(api, shop, clock):
    programme(shop, welcome_bonus=100, birthday_bonus=200)
    anna = enrol(api, birthday="1990-06-16")
    first = api.post("/transactions", json=sale(line("COF", 100), card=anna["card"])).get_json()
    causes = sorted(b["cause"] for b in first["points"]["breakdown"]["bonuses"])
    assert causes == ["birthday", "welcome"]
    assert first["birthday_week"] is True
    second = api.post("/transactions", json=sale(line("COF", 100), card=anna["card"])).get_json()
    assert second["points"]["breakdown"]["bonuses"] == []


def birthday_bonus_paid(api, clock, card: str, year: int, month: int, day: int) -> bool:
    """A purchase at noon on that day: whether it paid the birthday bonus."""
    clock.now = dt.datetime(year, month, day, 12, 0, tzinfo=dt.timezone.utc)
    answer = api.post("/transactions", json=sale(line("COF", 100), card=card, at=clock.now)).get_json()
    return [b["cause"] for b in answer["points"]["breakdown"]["bonuses"]] == ["birthday"]


def test_a_new_year_s_day_birthday_pays_once_though_its_week_spans_two_years(api, shop, clock):
    programme(shop, birthday_bonus=200, birthday_window_days=3)
    anna = enrol(api, birthday="1990-01-01")
    assert birthday_bonus_paid(api, clock, anna["card"], 2027, 12, 30)
    assert not birthday_bonus_paid(api, clock, anna["card"], 2028, 1, 2)  # the same birthday, in the new year
    assert birthday_bonus_paid(api, clock, anna["card"], 2028, 12, 29)  # the next one
    assert sum(e["points"] for e in api.get(f"/customers/{anna['id']}/ledger").get_json() if e["cause"] == "birthday") == 400


def test_a_new_year_s_eve_birthday_pays_each_year_though_both_fall_in_one_calendar_year(api, shop, clock):
    programme(shop, birthday_bonus=200, birthday_window_days=3)
    anna = enrol(api, birthday="1990-12-31")
    assert birthday_bonus_paid(api, clock, anna["card"], 2027, 1, 2)  # the birthday of 31 December 2026
    assert birthday_bonus_paid(api, clock, anna["card"], 2027, 12, 30)  # the birthday of 31 December 2027
    assert not birthday_bonus_paid(api, clock, anna["card"], 2028, 1, 3)


def test_a_29_february_birthday_pays_once_around_28_february_and_once_on_the_day_in_a_leap_year(api, shop, clock):
    programme(shop, birthday_bonus=200, birthday_window_days=3)
    anna = enrol(api, birthday="2000-02-29")
    assert birthday_bonus_paid(api, clock, anna["card"], 2027, 2, 26)
    assert not birthday_bonus_paid(api, clock, anna["card"], 2027, 3, 3)  # the week's last day: paid already
    assert not birthday_bonus_paid(api, clock, anna["card"], 2027, 3, 4)  # past the week
    assert birthday_bonus_paid(api, clock, anna["card"], 2028, 2, 29)
    assert not birthday_bonus_paid(api, clock, anna["card"], 2028, 3, 2)


def test_tier_multiplier_applies_once_the_rolling_spend_reaches_the_tier(api, shop):
    programme(shop, tiers=[{"code": "member", "name": "Member", "min_spend": 0, "multiplier": "1"},
                           {"code": "gold", "name": "Gold", "min_spend": 10000, "multiplier": "1.5"}])
    anna = enrol(api)
    first = api.post("/transactions", json=sale(line("TV", 10000, category="electronics"), card=anna["card"])).get_json()
    assert first["points"]["earned"] == 100  # tier before the sale: Member
    assert first["tier"]["code"] == "gold"
    second = api.post("/transactions", json=sale(line("COF", 1000), card=anna["card"])).get_json()
    assert second["points"]["breakdown"] == {"base": 10, "promotion": 0, "tier": 5, "bonuses": []}


def test_unknown_and_blocked_cards(api):
    r = api.post("/transactions", json=sale(line(), card="2700000000007"))
    assert r.status_code == 404
    anna = enrol(api)
    assert api.post(f"/cards/{anna['card']}/block", json={"user": "anna"}).status_code == 200
    r = api.post("/transactions", json=sale(line(), card=anna["card"]))
    assert r.status_code == 409
    assert "blocked" in r.get_json()["detail"]


def test_the_rewards_catalogue_lists_the_active_rewards(api, shop):
    coffee = reward(shop, "Free coffee", points_cost=50)
    reward(shop, "Old voucher", kind="amount_off", amount=100, points_cost=10, active=False)
    r = api.get("/rewards")
    assert r.status_code == 200
    assert [x["name"] for x in r.get_json()] == ["Free coffee"]
    assert r.get_json()[0]["id"] == coffee["id"]


def test_the_answer_shows_the_customer_as_the_card_lookup_sees_them_straight_after(api, shop, clock):
    """The checkout works out the customer's new standing before writing (it is the stored answer
    a retry gets back); it must be exactly what a fresh read finds once the sale is written: balance,
    tier and the spend to the next, next reward, next points to expire, birthday week."""
    programme(shop, welcome_bonus=25, birthday_bonus=40, birthday_window_days=3, expiry_months=12,
              tiers=[{"code": "bronze", "name": "Bronze", "min_spend": 0, "multiplier": "1"},
                     {"code": "silver", "name": "Silver", "min_spend": 20000, "multiplier": "1.5"}])
    coffee = reward(shop, "Free coffee", points_cost=50)
    reward(shop, "Cake", kind="amount_off", amount=400, points_cost=300)
    today = clock.now.date()
    anna = enrol(api, birthday=today.replace(year=1990).isoformat())
    last_year = clock.now - dt.timedelta(days=300)  # earned nearly a year ago: the next to expire
    api.post("/transactions", json=sale(line("COF", 4000), card=anna["card"], at=last_year))

    def check(answer):
        seen = api.get(f"/cards/{anna['card']}").get_json()
        assert answer["points"]["balance_after"] == seen["balance"]
        for key in ("tier", "next_expiry", "next_reward", "birthday_week"):
            assert answer[key] == seen[key], key
        assert api.get(f"/transactions/{answer['id']}").get_json() == {**answer, "returns": []}

    for basket, rewards in (([line("COF", 250, 2)], [coffee["id"]]), ([line("WINE", 17000, category="wine")], None), ([line("BAN", 199, "0.5")], None)):
        answer = api.post("/transactions", json=sale(*basket, card=anna["card"], at=clock.now, rewards=rewards)).get_json()
        check(answer)
        assert answer["birthday_week"] is True
    assert answer["tier"]["code"] == "silver"


def test_the_same_percent_off_twice_is_refused_rather_than_charging_points_for_nothing(api, shop):
    everything = reward(shop, "All free", kind="percent_off", percent=100, points_cost=30)
    anna = enrol(api)
    adjust(api, anna["id"], 100)
    body = sale(line("COF", 300), card=anna["card"], rewards=[everything["id"], everything["id"]])
    r = api.post("/transactions", json=body)
    assert r.status_code == 422
    assert r.content_type == "application/problem+json"
    assert r.get_json()["errors"] == [{
        "field": "rewards.1",
        "message": "the reward 'All free' would take nothing off this basket (nothing it applies to is left to pay), "
                   "so it would cost 30 points for nothing",
    }]
    assert api.get(f"/transactions/{body['id']}").status_code == 404
    assert api.get(f"/cards/{anna['card']}").get_json()["balance"] == 100
    once = api.post("/transactions", json=sale(line("COF", 300), card=anna["card"], rewards=[everything["id"]])).get_json()
    assert once["discount"] == 300 and once["points"]["redeemed"] == 30


def test_goods_the_programme_excludes_earn_nothing_whatever_case_the_till_sends(api, shop):
    programme(shop, category_multipliers={"Organic": "2"})
    anna = enrol(api)
    body = api.post("/transactions", json=sale(
        line("CIG", 800, category="Tobacco"), line("CIG", 800, category=" tobacco"), line("APL", 100, category="organic "),
        line("COF", 300), card=anna["card"],
    )).get_json()
    assert [ln["points"] for ln in body["lines"]] == [0, 0, 2, 3]
    assert body["points"]["earned"] == 5
    assert [ln["category"] for ln in api.get(f"/transactions/{body['id']}").get_json()["lines"]] == ["Tobacco", " tobacco", "organic ", "drinks"]


def test_a_reward_outside_its_dates_cannot_be_redeemed_and_costs_nothing(api, shop):
    summer = reward(shop, "Summer coffee", points_cost=50, valid_from=dt.date(2026, 7, 1), valid_to=dt.date(2026, 8, 31))
    spring = reward(shop, "Spring coffee", points_cost=50, valid_from=dt.date(2026, 3, 1), valid_to=dt.date(2026, 6, 14))
    anna = enrol(api)
    adjust(api, anna["id"], 100)
    for offer in (summer, spring):  # on 15 June: not yet, and no longer
        body = sale(line("COF", 250), card=anna["card"], rewards=[offer["id"]])
        r = api.post("/transactions", json=body)
        assert r.status_code == 422 and r.content_type == "application/problem+json"
        assert r.get_json()["errors"] == [{"field": "rewards.0", "message": f"the reward {offer['name']!r} cannot be redeemed today in tier Member"}]
        assert api.get(f"/transactions/{body['id']}").status_code == 404
    assert api.get(f"/cards/{anna['card']}").get_json()["balance"] == 100


def test_a_reward_offered_to_another_tier_cannot_be_redeemed_until_the_customer_reaches_it(api, shop):
    programme(shop, tiers=[{"code": "member", "name": "Member", "min_spend": 0, "multiplier": "1"},
                           {"code": "gold", "name": "Gold", "min_spend": 10000, "multiplier": "1"}])
    gold_coffee = reward(shop, "Gold coffee", points_cost=50, tiers=["gold"])
    anna = enrol(api)
    adjust(api, anna["id"], 100)
    body = sale(line("COF", 250), card=anna["card"], rewards=[gold_coffee["id"]])
    r = api.post("/transactions", json=body)
    assert r.status_code == 422
    assert r.get_json()["errors"] == [{"field": "rewards.0", "message": "the reward 'Gold coffee' cannot be redeemed today in tier Member"}]
    assert api.get(f"/transactions/{body['id']}").status_code == 404
    assert api.get(f"/cards/{anna['card']}").get_json()["balance"] == 100
    api.post("/transactions", json=sale(line("TV", 10000, category="electronics"), card=anna["card"]))  # now gold
    redeemed = api.post("/transactions", json=sale(line("COF", 250), card=anna["card"], rewards=[gold_coffee["id"]]))
    assert redeemed.status_code == 201 and redeemed.get_json()["rewards"][0]["discount"] == 250


def test_a_sale_records_the_till_it_was_rung_up_on_and_the_cashier(api):
    anna = enrol(api)
    answer = api.post("/transactions", json=sale(line("COF", 250), card=anna["card"], cashier="jonas")).get_json()
    assert (answer["till"], answer["cashier"]) == ("till-1", "jonas")
    stored = api.get(f"/transactions/{answer['id']}").get_json()
    assert (stored["till"], stored["cashier"]) == ("till-1", "jonas")
    anonymous = api.post("/transactions", json=sale(line("COF", 250), cashier="mia")).get_json()
    assert api.get(f"/transactions/{anonymous['id']}").get_json()["cashier"] == "mia"
