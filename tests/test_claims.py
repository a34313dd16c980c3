"""A customer who forgot their card: shown later with the receipt, it collects the sale's points."""
from __future__ import annotations

import datetime as dt
import threading

from tests.support.factories import enrol, line, programme, return_of, sale


def claim(api, transaction_id: str, card: str):
    return api.post(f"/transactions/{transaction_id}/claim", json={"card_number": card})


def balance(api, card: str) -> int:
    return api.get(f"/cards/{card}").get_json()["balance"]


def test_a_card_shown_after_the_sale_collects_the_points_it_would_have_earned(api):
    bought = api.post("/transactions", json=sale(line("COF", 250, 2), line("BAN", 199, "0.755", category="fruit"))).get_json()
    assert bought["points"]["earned"] == 0
    anna = enrol(api)

    r = claim(api, bought["id"], anna["card"])
    assert r.status_code == 200
    claimed = r.get_json()
    assert claimed["points"]["earned"] == 6
    assert [ln["points"] for ln in claimed["lines"]] == [5, 1]
    assert claimed["points"]["balance_before"] == 0 and claimed["points"]["balance_after"] == 6
    assert claimed["customer"]["id"] == anna["id"]
    assert balance(api, anna["card"]) == 6

    stored = api.get(f"/transactions/{bought['id']}").get_json()
    assert stored["customer"]["id"] == anna["id"] and stored["points"]["earned"] == 6
    assert [t["id"] for t in api.get(f"/customers/{anna['id']}/transactions").get_json()] == [bought["id"]]
    assert {f["sku"] for f in api.get(f"/cards/{anna['card']}").get_json()["favourites"]} == {"COF", "BAN"}


def test_claimed_points_expire_as_if_earned_on_the_day_of_the_sale(api, clock):
    bought = api.post("/transactions", json=sale(line("COF", 1000))).get_json()  # 15 June 2026
    anna = enrol(api)
    clock.advance(days=10)
    claimed = claim(api, bought["id"], anna["card"]).get_json()
    assert claimed["next_expiry"]["date"] == "2027-06-15"
    assert claimed["next_expiry"]["points"] == 10


def test_the_points_are_those_of_the_programme_in_force_at_the_sale(api, shop):
    programme(shop, promotions=[{"name": "Spend 5 get 20", "starts_on": "2026-06-01", "ends_on": "2026-06-30", "bonus_points": 20, "min_spend": 500}])
    bought = api.post("/transactions", json=sale(line("COF", 1000))).get_json()
    programme(shop, points_per_unit=5)
    anna = enrol(api)
    claimed = claim(api, bought["id"], anna["card"]).get_json()
    assert claimed["points"]["breakdown"] == {
        "base": 10, "promotion": 0, "tier": 0, "bonuses": [{"cause": "promotion", "points": 20, "reason": "Spend 5 get 20"}],
    }
    assert balance(api, anna["card"]) == 30


def test_the_tier_is_the_one_the_customer_had_at_the_sale(api, shop, clock):
    programme(shop, tiers=[{"code": "member", "name": "Member", "min_spend": 0, "multiplier": "1"},
                           {"code": "gold", "name": "Gold", "min_spend": 10000, "multiplier": "2"}])
    anna = enrol(api)
    forgotten = api.post("/transactions", json=sale(line("COF", 1000))).get_json()
    clock.advance(days=1)
    api.post("/transactions", json=sale(line("TV", 10000, category="electronics"), card=anna["card"], at=clock.now))
    claimed = claim(api, forgotten["id"], anna["card"]).get_json()
    assert claimed["points"]["breakdown"]["tier"] == 0  # a member when she bought the coffee
    assert claimed["points"]["earned"] == 10
    assert claimed["tier"]["code"] == "gold"


def test_a_sale_can_be_claimed_only_once(api):
    bought = api.post("/transactions", json=sale(line("COF", 1000))).get_json()
    anna, ben = enrol(api), enrol(api, "Ben Braun")
    assert claim(api, bought["id"], anna["card"]).status_code == 200
    for card in (anna["card"], ben["card"]):
        r = claim(api, bought["id"], card)
        assert r.status_code == 409
        assert r.get_json()["errors"][0]["field"] == "transaction_id"
    assert balance(api, anna["card"]) == 10 and balance(api, ben["card"]) == 0


def test_a_sale_made_with_a_card_cannot_be_claimed(api):
    anna, ben = enrol(api), enrol(api, "Ben Braun")
    bought = api.post("/transactions", json=sale(line("COF", 1000), card=anna["card"])).get_json()
    assert claim(api, bought["id"], ben["card"]).status_code == 409
    assert balance(api, ben["card"]) == 0


def test_a_sale_older_than_the_claim_window_cannot_be_claimed(api, clock):
    bought = api.post("/transactions", json=sale(line("COF", 1000))).get_json()
    anna = enrol(api)
    clock.advance(days=14, seconds=1)
    r = claim(api, bought["id"], anna["card"])
    assert r.status_code == 409
    assert "14 days" in r.get_json()["detail"]
    assert balance(api, anna["card"]) == 0


def test_a_sale_fourteen_days_old_can_still_be_claimed(api, clock):
    bought = api.post("/transactions", json=sale(line("COF", 1000))).get_json()
    anna = enrol(api)
    clock.advance(days=14)
    assert claim(api, bought["id"], anna["card"]).status_code == 200


def test_the_manager_sets_how_long_a_sale_can_be_claimed(api, shop, clock):
    programme(shop, claim_window_days=30)
    bought = api.post("/transactions", json=sale(line("COF", 1000))).get_json()
    anna = enrol(api)
    clock.advance(days=20)
    assert claim(api, bought["id"], anna["card"]).status_code == 200
    assert balance(api, anna["card"]) == 10


def test_a_returned_sale_cannot_be_claimed(api):
    bought = api.post("/transactions", json=sale(line("COF", 500, 2))).get_json()
    api.post(f"/transactions/{bought['id']}/returns", json=return_of(("COF", 1)))
    anna = enrol(api)
    r = claim(api, bought["id"], anna["card"])
    assert r.status_code == 409
    assert "returned" in r.get_json()["detail"]
    assert balance(api, anna["card"]) == 0


def test_an_unknown_card_or_sale_is_not_found_and_the_sale_stays_claimable(api):
    bought = api.post("/transactions", json=sale(line("COF", 1000))).get_json()
    r = claim(api, bought["id"], "2700000000007")
    assert r.status_code == 404
    assert r.get_json()["errors"][0]["field"] == "card_number"
    anna = enrol(api)
    assert claim(api, "NO-SUCH-SALE", anna["card"]).status_code == 404
    assert claim(api, bought["id"], anna["card"]).status_code == 200


def test_a_return_cannot_be_claimed(api):
    bought = api.post("/transactions", json=sale(line("COF", 500, 2))).get_json()
    returned = api.post(f"/transactions/{bought['id']}/returns", json=return_of(("COF", 1))).get_json()
    anna = enrol(api)
    assert claim(api, returned["id"], anna["card"]).status_code == 422


def test_returning_a_claimed_sale_takes_the_claimed_points_back(api):
    bought = api.post("/transactions", json=sale(line("COF", 250, 4))).get_json()
    anna = enrol(api)
    claim(api, bought["id"], anna["card"])
    returned = api.post(f"/transactions/{bought['id']}/returns", json=return_of(("COF", 4))).get_json()
    assert returned["points"]["reversed"] == 10
    assert balance(api, anna["card"]) == 0


def claim_from_two_tills_at_once(app, token: str, transaction_id: str, cards: list[str]) -> list:
    start = threading.Barrier(len(cards))
    answers: list = [None] * len(cards)

    def till(i: int) -> None:
        client = app.test_client()
        start.wait()
        answers[i] = client.post(
            f"/api/v1/transactions/{transaction_id}/claim", json={"card_number": cards[i]}, headers={"Authorization": f"Bearer {token}"}
        )

    threads = [threading.Thread(target=till, args=(i,)) for i in range(len(cards))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_the_same_card_claiming_at_two_tills_at_once_collects_the_points_once(app, api):
    bought = api.post("/transactions", json=sale(line("COF", 1000))).get_json()
    anna = enrol(api)
    answers = claim_from_two_tills_at_once(app, api.token, bought["id"], [anna["card"], anna["card"]])
    assert sorted(a.status_code for a in answers) == [200, 409]
    assert balance(api, anna["card"]) == 10


def test_two_cards_claiming_one_sale_at_once_only_one_collects(app, api):
    bought = api.post("/transactions", json=sale(line("COF", 1000))).get_json()
    anna, ben = enrol(api), enrol(api, "Ben Braun")
    answers = claim_from_two_tills_at_once(app, api.token, bought["id"], [anna["card"], ben["card"]])
    assert sorted(a.status_code for a in answers) == [200, 409]
    assert balance(api, anna["card"]) + balance(api, ben["card"]) == 10


def bonuses(answer: dict) -> list[str]:
    return sorted(b["cause"] for b in answer["points"]["breakdown"]["bonuses"])


def test_a_customer_who_joins_after_paying_gets_the_welcome_bonus_with_the_claim_and_not_again(api, shop):
    programme(shop, welcome_bonus=50)
    bought = api.post("/transactions", json=sale(line("COF", 1000))).get_json()
    anna = enrol(api)  # "would you like to join?", asked once the sale is rung up
    claimed = claim(api, bought["id"], anna["card"]).get_json()
    assert bonuses(claimed) == ["welcome"] and claimed["points"]["earned"] == 10 + 50
    assert api.get(f"/transactions/{bought['id']}").get_json()["points"]["earned"] == 60  # what a reprint shows
    later = api.post("/transactions", json=sale(line("COF", 1000), card=anna["card"])).get_json()
    assert bonuses(later) == [] and balance(api, anna["card"]) == 70


def test_a_claimed_sale_in_the_birthday_week_pays_the_birthday_bonus_once_a_birthday(api, shop):
    programme(shop, birthday_bonus=200)  # the shop's clock: 15 June 2026
    anna = enrol(api, birthday="1990-06-16")
    claimed = claim(api, api.post("/transactions", json=sale(line("COF", 1000))).get_json()["id"], anna["card"]).get_json()
    assert bonuses(claimed) == ["birthday"]
    assert bonuses(api.post("/transactions", json=sale(line("COF", 1000), card=anna["card"])).get_json()) == []
    again = claim(api, api.post("/transactions", json=sale(line("TEA", 1000))).get_json()["id"], anna["card"]).get_json()
    assert bonuses(again) == []  # this birthday has paid
    assert balance(api, anna["card"]) == 10 + 200 + 10 + 10


def test_a_claim_made_once_the_next_birthday_s_week_has_begun_pays_nothing_for_the_old_birthday(api, shop, clock):
    """Otherwise its bonus, entered now, would count as the new birthday's and the customer would
    lose that one."""
    programme(shop, birthday_bonus=200, birthday_window_days=3, claim_window_days=365)
    anna = enrol(api, birthday="1990-06-20")
    clock.now = dt.datetime(2026, 6, 18, 12, 0, tzinfo=dt.timezone.utc)  # in the week of 17-23 June 2026
    bought = api.post("/transactions", json=sale(line("COF", 1000), at=clock.now)).get_json()
    clock.now = dt.datetime(2027, 6, 17, 12, 0, tzinfo=dt.timezone.utc)  # the next week has begun; still within a year
    claimed = claim(api, bought["id"], anna["card"]).get_json()
    assert claimed["points"]["earned"] == 10 and bonuses(claimed) == []
    assert bonuses(api.post("/transactions", json=sale(line("COF", 1000), card=anna["card"], at=clock.now)).get_json()) == ["birthday"]


def test_a_full_return_of_a_claimed_sale_takes_its_bonuses_back(api, shop):
    programme(shop, welcome_bonus=50, birthday_bonus=200)
    anna = enrol(api, birthday="1990-06-16")
    bought = api.post("/transactions", json=sale(line("COF", 1000))).get_json()
    assert bonuses(claim(api, bought["id"], anna["card"]).get_json()) == ["birthday", "welcome"]
    api.post(f"/transactions/{bought['id']}/returns", json=return_of(("COF", 1)))
    assert balance(api, anna["card"]) == 0
    # and the next purchase in the week pays them, as after any sale taken back whole
    assert bonuses(api.post("/transactions", json=sale(line("COF", 1000), card=anna["card"])).get_json()) == ["birthday", "welcome"]


def test_a_card_sale_before_the_claim_has_had_the_welcome_and_the_claim_pays_it_no_second_time(api, shop):
    programme(shop, welcome_bonus=50)
    anna = enrol(api)
    bought = api.post("/transactions", json=sale(line("COF", 1000))).get_json()
    assert bonuses(api.post("/transactions", json=sale(line("TEA", 1000), card=anna["card"])).get_json()) == ["welcome"]
    claimed = claim(api, bought["id"], anna["card"]).get_json()
    assert bonuses(claimed) == [] and claimed["points"]["earned"] == 10
    assert balance(api, anna["card"]) == 10 + 50 + 10


def test_the_birthday_bonus_needs_the_sale_and_the_claim_in_the_birthday_week(api, shop, clock):
    """The card shown in the week collects what a card sale in it would; a sale from before the
    week, or a claim made once the week is over, earns the sale's points only."""
    programme(shop, birthday_bonus=200, birthday_window_days=3)
    anna = enrol(api, birthday="1990-06-20")  # the week: 17-23 June
    clock.now = dt.datetime(2026, 6, 14, 12, 0, tzinfo=dt.timezone.utc)
    before_the_week = api.post("/transactions", json=sale(line("COF", 1000), at=clock.now)).get_json()
    clock.now = dt.datetime(2026, 6, 22, 12, 0, tzinfo=dt.timezone.utc)
    in_the_week = api.post("/transactions", json=sale(line("TEA", 1000), at=clock.now)).get_json()
    assert bonuses(claim(api, before_the_week["id"], anna["card"]).get_json()) == []  # shown in the week, bought before it
    clock.now = dt.datetime(2026, 6, 24, 12, 0, tzinfo=dt.timezone.utc)
    assert bonuses(claim(api, in_the_week["id"], anna["card"]).get_json()) == []  # bought in the week, shown after it
    assert balance(api, anna["card"]) == 20


def test_a_welcome_bonus_paid_with_a_late_claim_runs_from_the_claim_not_the_sale(api, shop, clock):
    """Dated from the sale, it would be born expired and spend the customer's one welcome for nothing."""
    from pos_loyalty.services.points import expire_points

    programme(shop, welcome_bonus=50, expiry_months=1, claim_window_days=365)
    bought = api.post("/transactions", json=sale(line("COF", 1000))).get_json()  # 15 June 2026
    clock.advance(days=90)
    anna = enrol(api)
    claimed = claim(api, bought["id"], anna["card"]).get_json()
    assert bonuses(claimed) == ["welcome"]
    expire_points(shop)  # the sale's own points expired in July, as if earned at the sale
    assert balance(api, anna["card"]) == 50
    welcome = [e for e in api.get(f"/customers/{anna['id']}/ledger").get_json() if e["cause"] == "welcome"]
    assert [e["expires_at"][:10] for e in welcome] == ["2026-10-13"]  # a month from the claim (13 September)
