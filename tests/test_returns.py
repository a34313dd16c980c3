"""Returns at the counter: a return gives back exactly what its lines earned, no more and no less.

Also here: the same transaction id sent by two tills at the same moment is recorded once.
"""
from __future__ import annotations

import datetime as dt
import threading

import pytest

from tests.support.factories import adjust, enrol, line, programme, return_of, reward, sale


def balance(api, card: str) -> int:
    return api.get(f"/cards/{card}").get_json()["balance"]


def ledger(api, customer_id: int) -> list[dict]:
    return api.get(f"/customers/{customer_id}/ledger").get_json()


def test_return_reverses_exactly_the_points_the_lines_earned(api):
    anna = enrol(api)
    bought = api.post("/transactions", json=sale(line("COF", 333, 3), line("TEA", 150), card=anna["card"])).get_json()
    assert bought["points"]["earned"] == 11  # 11.49 paid
    assert [ln["points"] for ln in bought["lines"]] == [10, 1]

    r = api.post(f"/transactions/{bought['id']}/returns", json=return_of(("TEA", 1)))
    assert r.status_code == 201
    returned = r.get_json()
    assert returned["kind"] == "return" and returned["original_id"] == bought["id"]
    assert returned["total"] == -150
    assert returned["points"]["reversed"] == 1
    assert returned["points"]["balance_before"] == 11 and returned["points"]["balance_after"] == 10
    assert balance(api, anna["card"]) == 10


def test_a_line_returned_one_piece_at_a_time_gives_back_exactly_its_points_in_total(api):
    anna = enrol(api)
    bought = api.post("/transactions", json=sale(line("COF", 333, 3), line("TEA", 150), card=anna["card"])).get_json()
    coffee_points = bought["lines"][0]["points"]
    reversed_each_time = []
    refunded_each_time = []
    for _ in range(3):
        returned = api.post(f"/transactions/{bought['id']}/returns", json=return_of(("COF", 1))).get_json()
        reversed_each_time.append(returned["points"]["reversed"])
        refunded_each_time.append(-returned["total"])
    assert sum(reversed_each_time) == coffee_points == 10
    assert sum(refunded_each_time) == 999
    assert balance(api, anna["card"]) == 1  # the tea's point stays

    r = api.post(f"/transactions/{bought['id']}/returns", json=return_of(("COF", 1)))
    assert r.status_code == 422
    assert r.get_json()["errors"][0]["field"] == "lines.0.quantity"


def test_returning_more_than_was_bought_is_refused_naming_the_line_and_changes_nothing(api):
    anna = enrol(api)
    bought = api.post("/transactions", json=sale(line("COF", 250, 2), line("TEA", 150), card=anna["card"])).get_json()
    body = return_of(("TEA", 1), ("COF", 3))
    r = api.post(f"/transactions/{bought['id']}/returns", json=body)
    assert r.status_code == 422
    assert r.content_type == "application/problem+json"
    assert r.get_json()["errors"][0]["field"] == "lines.1.quantity"
    assert "2 bought" in r.get_json()["detail"]
    assert api.get(f"/transactions/{body['id']}").status_code == 404
    assert balance(api, anna["card"]) == 6


def test_a_return_dated_before_its_sale_is_refused_and_changes_nothing(api):
    """A return stamped a day or more before the sale it returns comes from a till whose clock
    is wrong; a till merely running a little behind the one that sold is forgiven."""
    import datetime as dt

    anna = enrol(api)
    sold_at = dt.datetime(2026, 6, 10, 12, 0, tzinfo=dt.timezone.utc)
    bought = api.post("/transactions", json=sale(line("COF", 250, 2), card=anna["card"], at=sold_at)).get_json()
    body = return_of(("COF", 1), at=sold_at - dt.timedelta(days=2))
    r = api.post(f"/transactions/{bought['id']}/returns", json=body)
    assert r.status_code == 422
    assert r.get_json()["errors"][0]["field"] == "occurred_at"
    assert "before the sale it returns" in r.get_json()["detail"]
    assert api.get(f"/transactions/{body['id']}").status_code == 404
    assert balance(api, anna["card"]) == 5
    behind = return_of(("COF", 1), at=sold_at - dt.timedelta(minutes=20))
    assert api.post(f"/transactions/{bought['id']}/returns", json=behind).status_code == 201


def test_returning_something_that_was_not_bought_is_refused(api):
    bought = api.post("/transactions", json=sale(line("COF", 250))).get_json()
    r = api.post(f"/transactions/{bought['id']}/returns", json=return_of(("MILK", 1)))
    assert r.status_code == 422
    assert r.get_json()["errors"][0]["field"] == "lines.0.sku"


def test_a_full_return_gives_back_the_points_spent_on_the_sale(api, shop):
    coffee = reward(shop, "Free coffee", points_cost=50)
    anna = enrol(api)
    adjust(api, anna["id"], 80)
    bought = api.post("/transactions", json=sale(line("COF", 250, 2), card=anna["card"], rewards=[coffee["id"]])).get_json()
    assert bought["points"]["balance_after"] == 80 - 50 + 2

    returned = api.post(f"/transactions/{bought['id']}/returns", json=return_of(("COF", 2))).get_json()
    assert returned["total"] == -250  # what was actually paid
    assert returned["points"]["reversed"] == 2
    assert returned["points"]["given_back"] == 50
    assert balance(api, anna["card"]) == 80


def test_a_partial_return_keeps_the_points_spent_on_the_sale_spent(api, shop):
    coffee = reward(shop, "Free coffee", points_cost=50)
    anna = enrol(api)
    adjust(api, anna["id"], 80)
    bought = api.post("/transactions", json=sale(line("COF", 250, 2), line("TEA", 300), card=anna["card"], rewards=[coffee["id"]])).get_json()
    returned = api.post(f"/transactions/{bought['id']}/returns", json=return_of(("TEA", 1))).get_json()
    assert returned["points"]["given_back"] == 0
    assert returned["points"]["reversed"] == 3
    assert balance(api, anna["card"]) == 80 - 50 + 5 - 3


def test_points_already_spent_leave_a_visible_debt_and_no_reward_until_it_is_paid(api, shop):
    voucher = reward(shop, "1 euro off", kind="amount_off", amount=100, points_cost=100)
    coffee = reward(shop, "Free coffee", points_cost=1)
    anna = enrol(api)
    tv = api.post("/transactions", json=sale(line("TV", 10000, category="electronics"), card=anna["card"])).get_json()
    api.post("/transactions", json=sale(line("COF", 250), card=anna["card"], rewards=[voucher["id"]]))
    assert balance(api, anna["card"]) == 100 - 100 + 1

    returned = api.post(f"/transactions/{tv['id']}/returns", json=return_of(("TV", 1))).get_json()
    assert returned["points"]["reversed"] == 100
    assert returned["points"]["balance_after"] == -99
    assert balance(api, anna["card"]) == -99

    r = api.post("/transactions", json=sale(line("COF", 250), card=anna["card"], rewards=[coffee["id"]]))
    assert r.status_code == 409
    assert "insufficient points" in r.get_json()["detail"]
    assert r.get_json()["balance"] == -99

    adjust(api, anna["id"], 100)  # a goodwill gesture pays the debt off, and one point is left
    r = api.post("/transactions", json=sale(line("COF", 250), card=anna["card"], rewards=[coffee["id"]]))
    assert r.status_code == 201
    assert r.get_json()["points"]["balance_after"] == 0


def test_a_promotion_bonus_is_taken_back_when_the_return_drops_the_sale_below_its_minimum_spend(api, shop):
    programme(shop, promotions=[{"name": "Spend 20 get 50", "starts_on": "2026-01-01", "ends_on": "2026-12-31", "bonus_points": 50, "min_spend": 2000}])
    anna = enrol(api)
    bought = api.post("/transactions", json=sale(line("WINE", 1500), line("COF", 250, 3), card=anna["card"])).get_json()
    assert bought["points"]["earned"] == 22 + 50

    still_enough = api.post(f"/transactions/{bought['id']}/returns", json=return_of(("COF", 1))).get_json()
    assert still_enough["points"]["reversed"] == 2  # 20.00 still paid: the bonus stays
    below = api.post(f"/transactions/{bought['id']}/returns", json=return_of(("COF", 1))).get_json()
    assert below["points"]["reversed"] == 2 + 50  # 17.50 left: the bonus goes with it
    assert {"cause": "promotion", "points": -50} in [{k: e[k] for k in ("cause", "points")} for e in ledger(api, anna["id"])]
    assert balance(api, anna["card"]) == 22 - 4


def test_a_purchase_and_its_full_return_net_zero_on_the_ledger_bonuses_included(api, shop):
    programme(
        shop,
        welcome_bonus=100,
        birthday_bonus=200,
        promotions=[{"name": "Spend 20 get 50", "starts_on": "2026-01-01", "ends_on": "2026-12-31", "bonus_points": 50, "min_spend": 2000}],
    )
    anna = enrol(api, birthday="1990-06-16")
    bought = api.post("/transactions", json=sale(line("WINE", 1500), line("COF", 250, 3), card=anna["card"])).get_json()
    assert sorted(b["cause"] for b in bought["points"]["breakdown"]["bonuses"]) == ["birthday", "promotion", "welcome"]
    assert bought["points"]["earned"] == 22 + 100 + 200 + 50

    api.post(f"/transactions/{bought['id']}/returns", json=return_of(("COF", 1)))
    api.post(f"/transactions/{bought['id']}/returns", json=return_of(("WINE", 1), ("COF", 2)))
    assert balance(api, anna["card"]) == 0
    assert sum(e["points"] for e in ledger(api, anna["id"])) == 0
    taken_back = sorted(e["cause"] for e in ledger(api, anna["id"]) if e["kind"] == "reverse" and e["cause"] != "return")
    assert taken_back == ["birthday", "promotion", "welcome"]


def test_a_retried_return_gets_the_same_answer_and_writes_nothing(api):
    anna = enrol(api)
    bought = api.post("/transactions", json=sale(line("COF", 250, 4), card=anna["card"])).get_json()
    body = return_of(("COF", 1))
    first = api.post(f"/transactions/{bought['id']}/returns", json=body)
    again = api.post(f"/transactions/{bought['id']}/returns", json=body)
    assert first.status_code == again.status_code == 201
    replayed = dict(again.get_json())
    assert replayed.pop("replayed") is True
    assert replayed == first.get_json()
    assert balance(api, anna["card"]) == 10 - 2
    assert len(ledger(api, anna["id"])) == 2
    assert api.get(f"/transactions/{bought['id']}").get_json()["returns"] == [body["id"]]


def test_the_same_return_id_with_a_different_body_is_a_conflict(api):
    anna = enrol(api)
    bought = api.post("/transactions", json=sale(line("COF", 250, 4), card=anna["card"])).get_json()
    body = return_of(("COF", 1))
    api.post(f"/transactions/{bought['id']}/returns", json=body)
    r = api.post(f"/transactions/{bought['id']}/returns", json={**body, "lines": [{"sku": "COF", "quantity": 2}]})
    assert r.status_code == 409
    assert r.get_json()["errors"][0]["field"] == "id"
    other = api.post("/transactions", json=sale(line("COF", 250), card=anna["card"])).get_json()
    assert api.post(f"/transactions/{other['id']}/returns", json=body).status_code == 409
    assert balance(api, anna["card"]) == 10 - 2 + 2


def test_a_return_lowers_the_rolling_spend_and_so_the_tier(api, shop):
    programme(shop, tiers=[{"code": "member", "name": "Member", "min_spend": 0, "multiplier": "1"},
                           {"code": "gold", "name": "Gold", "min_spend": 10000, "multiplier": "1.5"}])
    anna = enrol(api)
    bought = api.post("/transactions", json=sale(line("TV", 10000, category="electronics"), line("CIG", 800, category="tobacco"), card=anna["card"])).get_json()
    assert bought["tier"]["code"] == "gold"

    returned = api.post(f"/transactions/{bought['id']}/returns", json=return_of(("TV", 1), ("CIG", 1))).get_json()
    assert returned["tier"]["code"] == "member"
    assert returned["tier"]["rolling_spend"] == 0
    later = api.post("/transactions", json=sale(line("COF", 1000), card=anna["card"])).get_json()
    assert later["points"]["breakdown"]["tier"] == 0


def test_weighed_goods_can_be_returned_by_weight(api):
    anna = enrol(api)
    bought = api.post("/transactions", json=sale(line("BAN", 199, "1.510", category="fruit"), line("COF", 250), card=anna["card"])).get_json()
    assert bought["lines"][0]["paid"] == 300  # 3.0049 rounds to 3.00
    assert bought["points"]["earned"] == 5

    first = api.post(f"/transactions/{bought['id']}/returns", json=return_of(("BAN", "0.755"))).get_json()
    assert first["lines"][0]["quantity"] == "0.755"
    assert first["total"] == -150
    rest = api.post(f"/transactions/{bought['id']}/returns", json=return_of(("BAN", "0.755"))).get_json()
    assert rest["total"] == -150
    assert first["points"]["reversed"] + rest["points"]["reversed"] == bought["lines"][0]["points"]
    assert balance(api, anna["card"]) == bought["lines"][1]["points"]


def test_an_anonymous_sale_can_be_returned(api):
    bought = api.post("/transactions", json=sale(line("COF", 250, 2))).get_json()
    r = api.post(f"/transactions/{bought['id']}/returns", json=return_of(("COF", 1)))
    assert r.status_code == 201
    returned = r.get_json()
    assert returned["total"] == -250
    assert returned["customer"] is None
    assert returned["points"]["reversed"] == 0 and returned["points"]["balance_after"] is None


def test_a_returned_product_counts_less_among_the_favourites(api):
    anna = enrol(api)
    first = api.post("/transactions", json=sale(line("COF", 250), line("TEA", 150, 2), card=anna["card"])).get_json()
    api.post("/transactions", json=sale(line("TEA", 150), card=anna["card"]))
    favourites = {f["sku"]: f["visits"] for f in api.get(f"/cards/{anna['card']}").get_json()["favourites"]}
    assert favourites == {"TEA": 2, "COF": 1}

    api.post(f"/transactions/{first['id']}/returns", json=return_of(("TEA", 1)))
    favourites = {f["sku"]: f["visits"] for f in api.get(f"/cards/{anna['card']}").get_json()["favourites"]}
    assert favourites == {"TEA": 2, "COF": 1}  # one tea of two kept: still bought on that visit

    api.post(f"/transactions/{first['id']}/returns", json=return_of(("COF", 1), ("TEA", 1)))
    favourites = {f["sku"]: f["visits"] for f in api.get(f"/cards/{anna['card']}").get_json()["favourites"]}
    assert favourites == {"TEA": 1}


def test_a_line_returned_in_two_pieces_of_one_return_counts_one_visit_less(api):
    anna = enrol(api)
    first = api.post("/transactions", json=sale(line("TEA", 150, 2), card=anna["card"])).get_json()
    api.post("/transactions", json=sale(line("TEA", 150), card=anna["card"]))
    api.post(f"/transactions/{first['id']}/returns", json=return_of(("TEA", 1), ("TEA", 1)))
    favourites = {f["sku"]: f["visits"] for f in api.get(f"/cards/{anna['card']}").get_json()["favourites"]}
    assert favourites == {"TEA": 1}


def test_a_return_cannot_be_returned(api):
    bought = api.post("/transactions", json=sale(line("COF", 250, 2))).get_json()
    returned = api.post(f"/transactions/{bought['id']}/returns", json=return_of(("COF", 1))).get_json()
    r = api.post(f"/transactions/{returned['id']}/returns", json=return_of(("COF", 1)))
    assert r.status_code == 422
    assert r.get_json()["errors"][0]["field"] == "transaction_id"


def test_returning_an_unknown_sale_is_not_found(api):
    r = api.post("/transactions/NO-SUCH-SALE/returns", json=return_of(("COF", 1)))
    assert r.status_code == 404
    assert r.content_type == "application/problem+json"


def test_a_return_quantity_must_be_a_positive_amount_of_at_most_three_decimals(api):
    bought = api.post("/transactions", json=sale(line("COF", 250))).get_json()
    for quantity in (0, "-1", "0.0001", "abc"):
        r = api.post(f"/transactions/{bought['id']}/returns", json=return_of(("COF", quantity)))
        assert r.status_code == 422, quantity
        assert r.get_json()["errors"][0]["field"] == "lines.0.quantity"
    assert api.get(f"/transactions/{bought['id']}").get_json()["returns"] == []


# -- two tills, one transaction id -------------------------------------------------------------------


def post_from_two_tills_at_once(app, token: str, path: str, body: dict) -> list:
    """Each till has its own client; a barrier lets both requests go at the same moment."""
    start = threading.Barrier(2)
    answers: list = [None, None]

    def till(i: int) -> None:
        client = app.test_client()
        start.wait()
        answers[i] = client.post("/api/v1" + path, json=body, headers={"Authorization": f"Bearer {token}"})

    threads = [threading.Thread(target=till, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def same_answer(answers) -> bool:
    bodies = [{k: v for k, v in a.get_json().items() if k != "replayed"} for a in answers]
    return bodies[0] == bodies[1]


@pytest.mark.parametrize("with_card", [True, False], ids=["card", "anonymous"])
def test_the_same_sale_sent_by_two_tills_at_once_is_recorded_once(app, api, with_card):
    anna = enrol(api)
    body = sale(line("COF", 1000), card=anna["card"] if with_card else None)
    answers = post_from_two_tills_at_once(app, api.token, "/transactions", body)
    assert [a.status_code for a in answers] == [201, 201], [a.get_json() for a in answers]
    assert same_answer(answers)
    assert [a.get_json().get("replayed", False) for a in answers].count(True) <= 1
    assert api.get(f"/transactions/{body['id']}").get_json()["visit_code"] == answers[0].get_json()["visit_code"]
    if with_card:
        assert [t["id"] for t in api.get(f"/customers/{anna['id']}/transactions").get_json()] == [body["id"]]
        assert [e["points"] for e in ledger(api, anna["id"])] == [10]
        assert balance(api, anna["card"]) == 10


@pytest.mark.parametrize("with_card", [True, False], ids=["card", "anonymous"])
def test_the_same_return_sent_by_two_tills_at_once_is_recorded_once(app, api, with_card):
    anna = enrol(api)
    bought = api.post("/transactions", json=sale(line("COF", 250, 4), card=anna["card"] if with_card else None)).get_json()
    body = return_of(("COF", 1))
    answers = post_from_two_tills_at_once(app, api.token, f"/transactions/{bought['id']}/returns", body)
    assert [a.status_code for a in answers] == [201, 201], [a.get_json() for a in answers]
    assert same_answer(answers)
    assert api.get(f"/transactions/{bought['id']}").get_json()["returns"] == [body["id"]]
    if with_card:
        assert [e["points"] for e in ledger(api, anna["id"])] == [-2, 10]
        assert balance(api, anna["card"]) == 8


def test_returning_last_year_s_birthday_purchase_in_this_year_s_week_does_not_pay_this_birthday_twice(api, shop, clock):
    """The reversal is dated when the return is made, inside this year's week; it takes back last
    year's bonus, so this year's, already paid, stays paid."""
    programme(shop, birthday_bonus=200)
    anna = enrol(api, birthday="1990-06-20")
    clock.now = dt.datetime(2026, 6, 18, 12, 0, tzinfo=dt.timezone.utc)
    last_year = api.post("/transactions", json=sale(line("COF", 1000), card=anna["card"], at=clock.now)).get_json()
    clock.now = dt.datetime(2027, 6, 18, 12, 0, tzinfo=dt.timezone.utc)
    this_year = api.post("/transactions", json=sale(line("TEA", 1000), card=anna["card"], at=clock.now)).get_json()
    assert [b["cause"] for b in this_year["points"]["breakdown"]["bonuses"]] == ["birthday"]
    clock.now = dt.datetime(2027, 6, 19, 12, 0, tzinfo=dt.timezone.utc)
    assert api.post(f"/transactions/{last_year['id']}/returns", json=return_of(("COF", 1), at=clock.now)).status_code == 201
    clock.now = dt.datetime(2027, 6, 20, 12, 0, tzinfo=dt.timezone.utc)
    again = api.post("/transactions", json=sale(line("COF", 1000), card=anna["card"], at=clock.now)).get_json()
    assert again["points"]["breakdown"]["bonuses"] == []
    # while a return of this year's purchase, in its week, does let the next one pay it again
    assert api.post(f"/transactions/{this_year['id']}/returns", json=return_of(("TEA", 1), at=clock.now)).status_code == 201
    last = api.post("/transactions", json=sale(line("COF", 1000), card=anna["card"], at=clock.now)).get_json()
    assert [b["cause"] for b in last["points"]["breakdown"]["bonuses"]] == ["birthday"]
