"""The till API's fast paths change nothing a client sees.

The checkout, the card lookup and the other transaction views send the services' answers without
marshmallow's dump when ``schemas.dumped_as_is`` says the dump would give them back unchanged.
Here, on real answers (a card sale with bonuses, a reward, an anonymous sale, a retry, a return,
a claim, stored transactions, card lookups with several cards, favourites and a follow-up, on
SQLite and PostgreSQL): the dump is the identity on each, the fast path is taken, and the bytes
sent are those ``jsonify`` of the dump gave. An answer the dump would change is still dumped.

Loading a sale checks NUL characters once for the whole body (its lines no longer check
themselves): a NUL anywhere is still refused with its full path.
"""
from __future__ import annotations

import copy
import datetime as dt
import decimal

import flask
import pytest
from hypothesis import given, settings, strategies as st
from marshmallow import Schema, fields, post_dump

from pos_loyalty.api import counter
from pos_loyalty.api import schemas as S
from pos_loyalty.api import till
from pos_loyalty.services import transactions as tx_svc
from tests.support.factories import enrol, line, programme, return_of, reward, sale

NUL = "Text may not contain NUL characters."


def same(a, b) -> bool:
    """Equal, and of the same types at every level (``1 == True`` and ``1 == 1.0`` are not enough:
    JSON tells them apart)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture
def answers(monkeypatch):
    """What the services handed the views, as they handed it: (schema, answer), oldest first."""
    seen: list[tuple[type[Schema], dict]] = []

    def spy(use_case, schema):
        def wrapper(*args, **kwargs):
            answer = use_case(*args, **kwargs)
            seen.append((schema, copy.deepcopy(answer)))
            return answer

        return wrapper

    for name in ("record_sale", "record_return", "claim_transaction", "get_transaction"):
        monkeypatch.setattr(tx_svc, name, spy(getattr(tx_svc, name), S.TransactionOut))
    monkeypatch.setattr(till, "card_summary", spy(till.card_summary, S.CardSummaryOut))
    monkeypatch.setattr(counter, "card_summary", spy(counter.card_summary, S.CardSummaryOut))  # (the lookup off Flask's path)
    return seen


@pytest.fixture
def sent(app, answers):
    """Checks one answer: the dump changes nothing, the fast path took it, and the client got the
    bytes, status and content type that ``jsonify`` of the dump gave."""

    def check(r, status: int) -> dict:
        assert r.status_code == status, r.get_json()
        schema, answer = answers.pop()
        dumped = schema().dump(answer)
        assert same(dumped, answer), (dumped, answer)
        as_is = till._CARD_SUMMARY_AS_IS if schema is S.CardSummaryOut else till._TRANSACTION_AS_IS
        assert as_is(answer)
        with app.app_context():
            expected = flask.jsonify(dumped)
        assert r.content_type == expected.content_type == "application/json"
        assert r.get_data() == expected.get_data()
        return r.get_json()

    return check


def test_every_kind_of_answer_is_sent_exactly_as_its_dump_was(api, shop, sent, answers):
    programme(shop, welcome_bonus=50, birthday_bonus=100)
    coffee = reward(shop, "Free coffee", points_cost=50)
    reward(shop, "Hamper", kind="amount_off", amount=2000, points_cost=5000)
    anna = enrol(
        api, birthday="1990-06-16", email="anna@example.org", preferred_name="Annie",
        preferences={"dietary": ["vegan"], "sizes": {"shirt": "M"}, "packaging": "paper"},
    )
    ben = enrol(api, "Ben Müller")

    body = sale(line("COF", 250, 2), line("BAN", 199, "0.755", category="fruit"), line("CIG", 800, category="tobacco"), card=anna["card"])
    first = sent(api.post("/transactions", json=body), 201)
    assert first["points"]["breakdown"]["bonuses"] and first["birthday_week"] is True
    assert first["next_expiry"] is not None and first["next_reward"] is not None
    again = sent(api.post("/transactions", json=body), 201)
    assert again["replayed"] is True

    with_reward = sent(api.post("/transactions", json=sale(line("COF", 250, 2), card=anna["card"], rewards=[coffee["id"]])), 201)
    assert with_reward["rewards"][0]["reward_id"] == coffee["id"]
    anonymous = sent(api.post("/transactions", json=sale(line("TEA", 150), line("COF", 300), cashier=None)), 201)
    assert anonymous["customer"] is None and anonymous["cashier"] is None

    returned = sent(api.post(f"/transactions/{first['id']}/returns", json=return_of(("BAN", "0.755"))), 201)
    assert returned["kind"] == "return" and returned["points"]["reversed"] > 0
    claimed = sent(api.post(f"/transactions/{anonymous['id']}/claim", json={"card_number": ben["card"]}), 200)
    assert claimed["customer"]["id"] == ben["id"]
    for transaction_id in (first["id"], returned["id"], anonymous["id"], with_reward["id"]):
        stored = sent(api.get(f"/transactions/{transaction_id}"), 200)
        assert "replayed" not in stored
    assert stored["returns"] == []
    assert sent(api.get(f"/transactions/{first['id']}"), 200)["returns"] == [returned["id"]]

    assert api.post("/feedback", json={"transaction_id": first["id"], "satisfaction": 1, "comment": "cold"}).status_code == 201
    assert api.post(f"/cards/{anna['card']}/block", json={"user": "maria"}).status_code == 200
    new = api.post(f"/customers/{anna['id']}/cards", json={}).get_json()["number"]
    summary = sent(api.get(f"/cards/{new}"), 200)
    assert len(summary["customer"]["cards"]) == 2 and summary["favourites"] and summary["open_follow_ups"]
    assert summary["rewards_redeemable"] and summary["last_visit"] and summary["customer"]["preferences"]["sizes"] == {"shirt": "M"}
    assert sent(api.get(f"/cards/{ben['card']}"), 200)["greeting_name"] == "Ben"
    fresh = enrol(api, "Carla")
    assert sent(api.get(f"/cards/{fresh['card']}"), 200)["next_expiry"] is None

    assert api.get(f"/cards/{anna['card']}").status_code == 409  # a blocked card: a problem, as before
    assert answers == []  # every answer was checked


def test_an_answer_the_dump_would_change_is_still_dumped(api, monkeypatch):
    real = tx_svc.record_sale

    def reshaped(*args, **kwargs):
        answer = real(*args, **kwargs)
        return {**answer, "internal": "not for the till", "total": decimal.Decimal(answer["total"])}

    monkeypatch.setattr(tx_svc, "record_sale", reshaped)
    r = api.post("/transactions", json=sale(line("COF", 250, 2)))
    assert r.status_code == 201 and r.content_type == "application/json"
    body = r.get_json()
    assert "internal" not in body
    assert body["total"] == 500 and type(body["total"]) is int  # an Integer, as the dump made it


# -- the test itself ---------------------------------------------------------------------------------


def test_dumped_as_is_refuses_whatever_the_dump_would_change():
    as_is = S.dumped_as_is(S.TransactionOut())
    ln = {"line_no": 1, "sku": "COF", "description": "Coffee", "category": None, "quantity": "1", "unit_price": 250,
          "line_discount": 0, "reward_discount": 0, "paid": 250, "points": 2}
    answer = {"id": "S-1", "kind": "sale", "lines": [ln], "subtotal": 250, "customer": None, "points": {"earned": 2},
              "rewards": [], "birthday_week": False, "returns": ["R-1"]}
    assert as_is(answer)
    assert as_is({}) and as_is({**answer, "lines": None, "tier": None})
    refused = [
        {**answer, "surprise": 1},  # the dump leaves out what the schema does not name
        {**answer, "subtotal": True},  # an Integer dumps True as 1
        {**answer, "subtotal": 250.0},  # and 250.0 as 250
        {**answer, "subtotal": decimal.Decimal(250)},
        {**answer, "birthday_week": 0},
        {**answer, "occurred_at": dt.datetime(2026, 6, 15, tzinfo=dt.timezone.utc)},  # a String dumps str(value)
        {**answer, "returns": ["R-1", 2]},
        {**answer, "returns": ("R-1",)},
        {**answer, "lines": [{**ln, "surprise": 1}]},
        {**answer, "lines": [{**ln, "paid": 2.5}]},
        {**answer, "lines": ln},
        {**answer, "points": [("earned", 2)]},
        [answer],
        None,
    ]
    for value in refused:
        assert not as_is(value), value


def test_dumped_as_is_refuses_every_value_of_a_schema_that_reshapes():
    class Hooked(Schema):
        a = fields.String()

        @post_dump
        def _more(self, data, **kw):
            return {**data, "b": 1}

    class Renamed(Schema):
        a = fields.String(data_key="A")

    class Computed(Schema):
        a = fields.Method("_a")

        def _a(self, obj):
            return 1

    class Defaulted(Schema):
        a = fields.String(dump_default="x")

    class Dated(Schema):
        a = fields.Date()

    for schema in (Hooked(), Renamed(), Computed(), Defaulted(), Dated(), S.TransactionOut(many=True)):
        assert not S.dumped_as_is(schema)({"a": "x"}) and not S.dumped_as_is(schema)({})


# -- NUL characters, checked once per body -----------------------------------------------------------


def _nul_errors(r) -> list[dict]:
    assert r.status_code == 422 and r.content_type == "application/problem+json", r.get_json()
    return r.get_json()["errors"]


def test_a_nul_in_any_part_of_a_body_is_refused_with_its_full_path(api):
    anna = enrol(api)
    bought = api.post("/transactions", json=sale(line("COF", 250), card=anna["card"])).get_json()
    r = api.post("/transactions", json=sale(line("COF"), line("TE\x00A", description="Tea"), card=anna["card"]))
    assert _nul_errors(r) == [{"field": "lines.1.sku", "message": NUL}]
    r = api.post("/transactions", json=sale({**line(), "colour\x00": "red"}))
    assert _nul_errors(r) == [{"field": "lines.0.colour\x00", "message": NUL}]
    r = api.post(f"/transactions/{bought['id']}/returns", json=return_of(("CO\x00F", 1)))
    assert _nul_errors(r) == [{"field": "lines.0.sku", "message": NUL}]
    r = api.patch(f"/customers/{anna['id']}", json={"preferences": {"dietary": ["vegan", "no\x00nuts"]}})
    assert _nul_errors(r) == [{"field": "preferences.dietary.1", "message": NUL}]
    r = api.post("/customers", json={"name": "Ben", "preferences": {"service_notes": "\x00"}})
    assert _nul_errors(r) == [{"field": "preferences.service_notes", "message": NUL}]
    assert api.get(f"/customers/{anna['id']}").get_json()["preferences"] == {}
    assert len(api.get(f"/customers/{anna['id']}/transactions").get_json()) == 1


_TEXT = st.text(alphabet="ab\x00é", max_size=4)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_the_quick_nul_scan_finds_a_nul_exactly_when_the_full_walk_does(value):
    errors: dict[str, list[str]] = {}
    S._nul_errors(value, "", errors)
    assert S._has_nul(value) == bool(errors)
