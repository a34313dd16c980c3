"""The next points to expire, on every sale's answer and every card lookup, are those of a replay
of the customer's whole ledger, though the service replays only what is new since it last read
it (``services/lots.py``), whatever wrote to the ledger in between: sales, rewards, returns,
adjustments, expiry runs, expiry policy changes."""
from __future__ import annotations

import datetime as dt
import random

from pos_loyalty.domain.ledger import replay
from pos_loyalty.services.points import adjust_points, expire_points
from tests.support.factories import enrol, line, programme, return_of, reward, sale


def _whole_replay(shop, customer_id: int) -> dict | None:
    with shop.uow(read_only=True) as uow:
        balance = uow.customers.card_holder(uow.cards.rows_of_customer(customer_id)[0].number).balance
        if balance <= 0:
            return None
        due = replay(uow.ledger.entries(customer_id)).next_expiry(shop.now())
    return None if due is None else {"points": due[0], "expires_at": due[1].isoformat()}


def _shown(next_expiry: dict | None) -> dict | None:
    return None if next_expiry is None else {"points": next_expiry["points"], "expires_at": next_expiry["expires_at"]}


def test_every_answer_and_lookup_shows_the_whole_ledger_s_next_expiry_whatever_wrote_in_between(api, shop, clock):
    rnd = random.Random(7)
    voucher = reward(shop, "Two euros off", kind="amount_off", amount=200, points_cost=30)
    anna = enrol(api)
    sales = []
    for step in range(60):
        clock.advance(days=rnd.choice((1, 3, 20, 45)))
        move = rnd.choice(("sale", "sale", "sale", "reward", "return", "adjust", "expire", "policy", "lookup"))
        if move in ("sale", "reward"):
            body = sale(line("TEA", rnd.choice((300, 1500, 4000))), card=anna["card"], at=clock.now,
                        rewards=[voucher["id"]] if move == "reward" else None)
            r = api.post("/transactions", json=body)
            if r.status_code == 409:  # not enough points for the reward: nothing written
                continue
            assert r.status_code == 201, r.get_json()
            sales.append(body)
            assert _shown(r.get_json()["next_expiry"]) == _whole_replay(shop, anna["id"]), step
            continue
        if move == "return" and sales:
            returned = sales.pop(rnd.randrange(len(sales)))
            r = api.post(f"/transactions/{returned['id']}/returns", json=return_of(("TEA", 1), at=clock.now))
            assert r.status_code == 201, r.get_json()
        elif move == "adjust":
            adjust_points(shop, anna["id"], rnd.choice((-20, 15, 40)), reason="goodwill", user="mia", role="manager")
        elif move == "expire":
            expire_points(shop)
        elif move == "policy":
            programme(shop, expiry_months=rnd.choice((1, 3, 12, None)))
        looked_up = api.get(f"/cards/{anna['card']}").get_json()
        assert _shown(looked_up["next_expiry"]) == _whole_replay(shop, anna["id"]), step
