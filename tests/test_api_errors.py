"""Bad input gets a clear problem+json answer naming the field, and changes nothing."""
from __future__ import annotations

import pytest

from pos_loyalty.services.access import add_till, revoke_till
from tests.support.factories import enrol, line, sale


def _fields(r) -> set[str]:
    return {e["field"] for e in r.get_json().get("errors", [])}


def test_no_token_or_a_wrong_one_is_401(app):
    client = app.test_client()
    r = client.get("/api/v1/rewards")
    assert r.status_code == 401
    assert r.content_type == "application/problem+json"
    assert "Bearer" in r.headers["WWW-Authenticate"]
    assert client.get("/api/v1/rewards", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_a_revoked_till_token_is_refused_at_once(app, shop):
    _, token = add_till(shop, "till-9")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/rewards", headers=headers).status_code == 200
    revoke_till(shop, "till-9")
    assert client.get("/api/v1/rewards", headers=headers).status_code == 401


def test_health_and_the_api_document_need_no_token(app):
    client = app.test_client()
    health = client.get("/api/v1/health").get_json()
    assert health["status"] == "ok" and health["database"]["reachable"] and health["schema"]["current"]
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/transactions" in spec["paths"]
    assert "Sale" in spec["components"]["schemas"]
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and b"/api/v1/transactions" in docs.data


@pytest.mark.parametrize(
    "change, field",
    [
        ({"lines": [line(price=-1)]}, "lines.0.unit_price"),
        ({"lines": [line(qty=-2)]}, "lines.0.quantity"),
        ({"lines": [line(qty="0.0005")]}, "lines.0.quantity"),
        ({"lines": [line(price=2.5)]}, "lines.0.unit_price"),
        ({"lines": [line(price=10**30)]}, "lines.0.unit_price"),
        ({"lines": []}, "lines"),
        ({"occurred_at": "2026-06-15T12:00:00"}, "occurred_at"),
        ({"currency": "euro"}, "currency"),
        ({"id": "has spaces"}, "id"),
        ({"id": "s-1\n"}, "id"),  # ("$" would match before the newline)
        ({"currency": "EUR\n"}, "currency"),
        ({"surprise": 1}, "surprise"),
        ({"lines": [{**line(), "colour": "red"}]}, "lines.0.colour"),
        ({"lines": [line(discount=999)]}, "lines.0.line_discount"),
        ({"currency": "USD"}, "currency"),
        ({"rewards": [999]}, "rewards"),
    ],
)
def test_an_invalid_sale_is_refused_naming_the_field_and_nothing_is_written(api, change, field):
    body = {**sale(line()), **change}
    r = api.post("/transactions", json=body)
    assert r.status_code == 422, r.get_json()
    assert r.content_type == "application/problem+json"
    assert any(f == field or f.startswith(field) for f in _fields(r)), r.get_json()
    if isinstance(body.get("id"), str) and body["id"].isprintable() and " " not in body["id"]:
        assert api.get(f"/transactions/{body['id']}").status_code == 404


def test_a_reward_without_a_card_is_refused(api):
    r = api.post("/transactions", json=sale(line(), rewards=[1]))
    assert r.status_code == 422 and "rewards" in _fields(r)


def test_not_json_malformed_json_deep_nesting_and_oversized_bodies_get_a_clear_4xx(api):
    r = api.post("/transactions", data="id=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 422 and r.content_type == "application/problem+json"
    r = api.post("/transactions", data=b'{"id": "x",', headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422) and r.content_type == "application/problem+json"
    r = api.post("/transactions", data=b"[" * 100_000 + b"]" * 100_000, headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 413, 422) and r.content_type == "application/problem+json"
    r = api.post("/transactions", data=b'{"id": "' + b"x" * 600_000 + b'"}', headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.content_type == "application/problem+json"
    r = api.post("/transactions", data=b'{"id": "\xff\xfe"}', headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422) and r.content_type == "application/problem+json"


def test_unknown_things_are_404_problems(api):
    for path in ("/customers/999", "/cards/2700000000007", "/transactions/nope", "/no-such-route"):
        r = api.get(path)
        assert r.status_code == 404, path
        assert r.content_type == "application/problem+json"


def test_an_invalid_customer_names_the_field(api):
    r = api.post("/customers", json={"name": "Anna", "email": "not-an-email"})
    assert r.status_code == 422 and "email" in _fields(r)
    r = api.post("/customers", json={"email": "a@example.com"})
    assert r.status_code == 422 and "name" in _fields(r)
    assert api.get("/customers?q=a@example.com").get_json() == []


def test_a_duplicate_email_is_a_409_naming_the_field(api):
    enrol(api, email="anna@example.com")
    r = api.post("/customers", json={"name": "Other Anna", "email": "ANNA@example.com"})
    assert r.status_code == 409 and "email" in _fields(r)
