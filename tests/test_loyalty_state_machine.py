"""Random days at the counter, checked after every step.

Customers enrol, buy (with and without a reward), the till retries requests, goods come back
(partly and fully), cashiers grant goodwill points and time passes so points expire. After every
step: each stored balance is the sum of that customer's ledger entries; a retry adds nothing; a
return never takes back more than the sale earned nor gives back more than it spent, and a purchase
fully returned nets to zero (unless some of its points expired in between: test_expiry covers that);
only a return of points already spent takes a balance below zero.

One app per database serves every example; each example brings its own customers. Set
POS_LOYALTY_SOAK_EXAMPLES to run more examples than the 15 the suite runs.
"""
from __future__ import annotations

import itertools
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from pos_loyalty.domain.ledger import replay
from pos_loyalty.services.points import expire_points
from tests.support.factories import line, programme, reward, sale

PRODUCTS = {"COF": (250, "drinks"), "CAKE": (1200, "bakery"), "TV": (8999, "electronics"), "CIG": (800, "tobacco")}
_ids = itertools.count(1)

basket = st.lists(
    st.tuples(st.sampled_from(sorted(PRODUCTS)), st.integers(1, 3)), min_size=1, max_size=3, unique_by=lambda item: item[0]
)


class CounterDays(RuleBasedStateMachine):
    customers = Bundle("customers")

    def __init__(self, api, shop, clock, rewards: dict[str, dict]):
        super().__init__()
        self.api, self.shop, self.clock, self.rewards = api, shop, clock, rewards
        self.mine: list[dict] = []
        self.requests: list[tuple[str, dict, dict]] = []  # (path, body, first answer) of every success
        self.sales: dict[str, dict] = {}  # sale id -> customer, quantities bought and returned
        self.balances: dict[int, int] = {}  # after the previous step
        self.step_was_return = False

    # -- reading what the shop stored -------------------------------------------------------------

    def stored(self) -> dict[int, tuple[int, list]]:
        """Each of this day's customers: the stored balance and the ledger entries, read at once."""
        with self.shop.uow(read_only=True) as uow:
            return {c["id"]: (uow.customers.get(c["id"]).balance, uow.ledger.entries(c["id"])) for c in self.mine}

    def written_by(self, transaction_ids: set[str]) -> list[tuple[int, str, int]]:
        """(id, kind, points) of the entries these transactions wrote."""
        with self.shop.uow(read_only=True) as uow:
            return [(e.id, e.kind, e.points) for t in transaction_ids for e in uow.ledger.of_transaction(t)]

    def post(self, path: str, body: dict):
        r = self.api.post(path, json=body)
        assert r.status_code < 500, r.get_json()
        return r

    # -- the steps ------------------------------------------------------------------------------

    @precondition(lambda self: len(self.mine) < 3)
    @rule(target=customers)
    def enrol(self):
        self.step_was_return = False
        r = self.post("/customers", {"name": f"Customer {next(_ids)}"})
        assert r.status_code == 201, r.get_json()
        customer = {"id": r.get_json()["id"], "card": r.get_json()["cards"][0]["number"]}
        self.mine.append(customer)
        return customer

    @rule(customer=customers, items=basket, reward_name=st.sampled_from([None, None, "coffee", "voucher"]))
    def buy(self, customer, items, reward_name):
        self.step_was_return = False
        if reward_name == "coffee" and "COF" not in {sku for sku, _ in items}:
            items = [*items, ("COF", 1)] if len(items) < 3 else [("COF", 1), *items[1:]]
        lines = [line(sku, PRODUCTS[sku][0], qty, category=PRODUCTS[sku][1]) for sku, qty in items]
        chosen = self.rewards.get(reward_name)
        body = sale(*lines, card=customer["card"], at=self.clock.now, id=f"SM-S-{next(_ids)}",
                    rewards=[chosen["id"]] if chosen else None)
        books = self.stored()
        before = books[customer["id"]][0]
        r = self.post("/transactions", body)
        if chosen and before < chosen["points_cost"]:
            assert r.status_code == 409, r.get_json()
            assert self.stored() == books  # nothing written
            return
        if chosen and all(PRODUCTS[sku][1] == "tobacco" for sku, _ in items):
            assert r.status_code == 422, r.get_json()  # a voucher on tobacco alone would buy nothing
            assert self.stored() == books  # nothing written
            return
        assert r.status_code == 201, r.get_json()
        answer = r.get_json()
        assert answer["points"]["balance_before"] == before
        assert answer["points"]["balance_after"] == self.stored()[customer["id"]][0]
        self.requests.append(("/transactions", body, answer))
        self.sales[body["id"]] = {"customer": customer, "bought": dict(items), "returned": {}, "returns": set()}

    @precondition(lambda self: self.requests)
    @rule(data=st.data())
    def retry(self, data):
        self.step_was_return = False
        path, body, first = data.draw(st.sampled_from(self.requests))
        books = self.stored()
        r = self.post(path, body)
        assert r.status_code == 201, r.get_json()
        assert r.get_json()["replayed"] is True
        assert {k: v for k, v in r.get_json().items() if k != "replayed"} == first
        assert self.stored() == books  # no entry written, no balance changed

    @precondition(lambda self: any(s["bought"] != s["returned"] for s in self.sales.values()))
    @rule(data=st.data(), full=st.booleans())
    def give_back(self, data, full):
        self.step_was_return = True
        open_sales = sorted(i for i, s in self.sales.items() if s["bought"] != s["returned"])
        sale_id = data.draw(st.sampled_from(open_sales))
        record = self.sales[sale_id]
        left = {sku: qty - record["returned"].get(sku, 0) for sku, qty in record["bought"].items()}
        left = {sku: qty for sku, qty in left.items() if qty}
        if full:
            items = left
        else:
            sku = data.draw(st.sampled_from(sorted(left)))
            items = {sku: data.draw(st.integers(1, left[sku]))}
        body = {"id": f"SM-R-{next(_ids)}", "occurred_at": self.clock.now.isoformat(),
                "lines": [{"sku": sku, "quantity": qty} for sku, qty in sorted(items.items())]}
        path = f"/transactions/{sale_id}/returns"
        r = self.post(path, body)
        assert r.status_code == 201, r.get_json()
        self.requests.append((path, body, r.get_json()))
        record["returns"].add(body["id"])
        for sku, qty in items.items():
            record["returned"][sku] = record["returned"].get(sku, 0) + qty
        # returns never take back more than the sale earned, nor give back more than it spent
        of_sale, of_returns = self.written_by({sale_id}), self.written_by(record["returns"])
        earned = sum(p for _, kind, p in of_sale if kind in ("earn", "bonus"))
        spent = -sum(p for _, kind, p in of_sale if kind == "redeem")
        taken_back = -sum(p for _, _, p in of_returns if p < 0)
        given_back = sum(p for _, _, p in of_returns if p > 0)
        assert 0 <= taken_back <= earned and 0 <= given_back <= spent
        if record["bought"] == record["returned"]:
            _, entries = self.stored()[record["customer"]["id"]]
            sale_lots = {entry_id for entry_id, _, _ in of_sale}
            touched_by_expiry = any(e.kind == "expire" and e.lot_id in sale_lots for e in entries)
            if not touched_by_expiry:  # see test_expiry: points that expired first are a separate rule
                net = sum(p for _, _, p in of_sale + of_returns)
                assert net == 0, f"{sale_id} and its returns net {net} points"
                assert given_back == spent

    @rule(customer=customers, points=st.integers(1, 100))
    def goodwill(self, customer, points):
        self.step_was_return = False
        r = self.post(f"/customers/{customer['id']}/adjustments", {"points": points, "reason": "sorry for the wait", "user": "anna"})
        assert r.status_code == 201, r.get_json()
        assert r.get_json()["balance_after"] == r.get_json()["balance_before"] + points

    @precondition(lambda self: self.mine)
    @rule(days=st.integers(1, 200))
    def time_passes(self, days):
        self.step_was_return = False
        self.clock.advance(days=days)
        expire_points(self.shop)
        assert expire_points(self.shop) == {"customers": 0, "points": 0}  # a second run finds nothing
        books = self.stored()
        for customer in self.mine:
            balance, entries = books[customer["id"]]
            assert replay(entries).expired(self.clock.now) == []
            screen = self.api.get(f"/cards/{customer['card']}").get_json()
            assert screen["balance"] == balance
            if screen["next_expiry"]:  # what the cashier is told expires next is still ahead
                assert screen["next_expiry"]["expires_at"] > self.clock.now.isoformat()

    # -- after every step -----------------------------------------------------------------------

    @invariant()
    def balances_are_the_sum_of_the_ledger(self):
        now = {}
        for customer_id, (balance, entries) in self.stored().items():
            assert balance == sum(e.points for e in entries) == replay(entries).balance
            now[customer_id] = balance
        for customer_id, balance in now.items():
            if balance < 0 and not self.step_was_return:
                before = self.balances.get(customer_id, 0)
                assert before < 0 and balance >= before, f"only a return takes a balance below zero ({before} -> {balance})"
        self.balances = now


SETTINGS = settings(
    max_examples=int(os.environ.get("POS_LOYALTY_SOAK_EXAMPLES", "15")),  # raise it for a longer soak
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def test_random_days_at_the_counter_keep_the_books_straight(api, shop, clock):
    programme(
        shop,
        expiry_months=3,
        welcome_bonus=10,
        promotions=[{"name": "Spend 20 get 15", "starts_on": "2026-01-01", "ends_on": "2099-12-31", "bonus_points": 15, "min_spend": 2000}],
    )
    rewards = {
        "coffee": reward(shop, "Free coffee", points_cost=20),
        "voucher": reward(shop, "3 euro off", kind="amount_off", amount=300, points_cost=50),
    }
    run_state_machine_as_test(lambda: CounterDays(api, shop, clock, rewards), settings=SETTINGS)
