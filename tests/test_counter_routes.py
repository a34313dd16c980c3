"""The checkout and the card lookup are answered in front of Flask (``api/counter.py``), and a
till cannot tell: the same bytes, status and headers as Flask's own view gives, and every request
that is not the usual well-formed one (an error, a bad token, a body the schema refuses) answered
by Flask exactly as before, with nothing written."""
from __future__ import annotations

import json
import threading
from contextlib import contextmanager

import pytest

from pos_loyalty.services.access import add_till, revoke_till
from tests.support.factories import adjust, enrol, line, reward, sale


@contextmanager
def through_flask(app):
    """Requests in this block skip the counter routes and go straight to Flask's views."""
    routes = app.wsgi_app
    app.wsgi_app = routes.flask
    try:
        yield
    finally:
        app.wsgi_app = routes


def _answered_here(app) -> int:
    return app.wsgi_app.answered


def _same_response(a, b) -> None:
    assert (a.status_code, a.get_data()) == (b.status_code, b.get_data())
    assert sorted(a.headers.items()) == sorted(b.headers.items())


def _count(app, table: str) -> int:
    from sqlalchemy import text

    with app.extensions["pos_loyalty"].db.reader.connect() as conn:
        return conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def test_a_card_lookup_off_flask_is_byte_for_byte_flask_s(app, api):
    anna = enrol(api, preferred_name="Annie")
    adjust(api, anna["id"], 80)
    before = _answered_here(app)
    ours = api.get(f"/cards/{anna['card']}")
    assert _answered_here(app) == before + 1
    with through_flask(app):
        theirs = api.get(f"/cards/{anna['card']}")
    _same_response(ours, theirs)
    assert ours.get_json()["balance"] == 80


def test_a_sale_off_flask_answers_what_flask_stores_and_a_retry_is_the_same_either_way(app, api, shop):
    coffee = reward(shop, "Free coffee", points_cost=50)
    anna = enrol(api)
    adjust(api, anna["id"], 80)
    body = sale(line("COF", 250, 2), line("BAN", 199, "0.755", category="fruit"), card=anna["card"], rewards=[coffee["id"]])
    before = _answered_here(app)
    fresh = api.post("/transactions", json=body)
    assert fresh.status_code == 201 and _answered_here(app) == before + 1
    with through_flask(app):
        stored = api.get(f"/transactions/{body['id']}")
        retry_via_flask = api.post("/transactions", json=body)
    kept = stored.get_json()
    assert kept.pop("returns") == []
    assert fresh.get_json() == kept  # the answer the till got is the one kept
    assert fresh.headers["Content-Type"] == stored.headers["Content-Type"] == "application/json"
    retry_here = api.post("/transactions", json=body)
    _same_response(retry_here, retry_via_flask)
    assert retry_here.get_json()["replayed"] is True
    assert _count(app, "transactions") == 1


@pytest.mark.parametrize(
    "case",
    [
        "unknown token", "no token", "not json", "malformed json", "a list", "bad field", "unknown field",
        "unknown card", "too few points", "same id other body", "query string",
        "a retry with an unknown token", "a retry with a revoked token",
    ],
)
def test_whatever_is_not_the_usual_sale_is_answered_by_flask_as_before_and_writes_nothing(app, api, shop, case):
    coffee = reward(shop, "Free coffee", points_cost=500)
    anna = enrol(api)
    known = sale(line("COF", 250), card=anna["card"], id="KNOWN")
    api.post("/transactions", json=known)
    _, revoked = add_till(shop, "till-gone")
    revoke_till(shop, "till-gone")
    written = _count(app, "transactions"), _count(app, "ledger_entries")
    good = sale(line("TEA", 300), card=anna["card"], id="NEW")
    requests = {
        "unknown token": dict(json=good, headers={"Authorization": "Bearer nope"}),
        "no token": dict(json=good, headers={"Authorization": ""}),
        "not json": dict(data=json.dumps(good), headers={"Content-Type": "text/plain"}),
        "malformed json": dict(data=b'{"id": "NEW", ', headers={"Content-Type": "application/json"}),
        "a list": dict(json=[good]),
        "bad field": dict(json={**good, "lines": [{**good["lines"][0], "unit_price": -5}]}),
        "unknown field": dict(json={**good, "colour": "blue"}),
        "unknown card": dict(json={**good, "card_number": "2799999999994"}),
        "too few points": dict(json={**good, "rewards": [coffee["id"]]}),
        "same id other body": dict(json={**good, "id": "KNOWN"}),
        "query string": dict(json=good, query_string={"x": "1"}),
        # the token is checked in the sale's own transaction: a refused one never gets the stored answer
        "a retry with an unknown token": dict(json=known, headers={"Authorization": "Bearer nope"}),
        "a retry with a revoked token": dict(json=known, headers={"Authorization": f"Bearer {revoked}"}),
    }
    kwargs = requests[case]
    before = _answered_here(app)
    ours = api.post("/transactions", **{k: v for k, v in kwargs.items()})
    assert _answered_here(app) == before  # Flask answered it
    if case == "query string":  # a sale all the same: Flask records it
        assert ours.status_code == 201
        return
    assert 400 <= ours.status_code < 500
    assert ours.headers["Content-Type"] == "application/problem+json"
    if "token" in case:
        assert ours.status_code == 401 and "KNOWN" not in ours.get_data(as_text=True)
    assert (_count(app, "transactions"), _count(app, "ledger_entries")) == written
    with through_flask(app):
        theirs = api.post("/transactions", **{k: v for k, v in kwargs.items()})
    _same_response(ours, theirs)


@pytest.mark.parametrize("case", ["unknown token", "revoked token", "no token"])
def test_a_card_lookup_with_a_refused_token_is_flask_s_401(app, api, shop, case):
    anna = enrol(api)
    _, revoked = add_till(shop, "till-gone")
    revoke_till(shop, "till-gone")
    header = {"unknown token": "Bearer nope", "revoked token": f"Bearer {revoked}", "no token": ""}[case]
    before = _answered_here(app)
    ours = api.get(f"/cards/{anna['card']}", headers={"Authorization": header})
    assert _answered_here(app) == before
    assert ours.status_code == 401 and anna["card"] not in ours.get_data(as_text=True)
    with through_flask(app):
        theirs = api.get(f"/cards/{anna['card']}", headers={"Authorization": header})
    _same_response(ours, theirs)


@contextmanager
def the_writers_held(app, customer_id: int):
    """What a sale for this customer waits for while another till's sale writes: SQLite's write
    lock (the service's own queue for it), or on PostgreSQL the customer's row."""
    db = app.extensions["pos_loyalty"].db
    if db.is_sqlite:
        with db.write_lock:
            yield
        return
    from sqlalchemy import text

    with db.writer.connect() as conn, conn.begin():
        conn.execute(text("SELECT id FROM customers WHERE id = :id FOR UPDATE"), {"id": customer_id})
        yield


def _post_meanwhile(app, body, token: str) -> tuple[threading.Event, dict]:
    """The sale sent from another thread; the event is set once it is answered."""
    done, out = threading.Event(), {}

    def send():
        try:
            out["response"] = app.test_client().post("/api/v1/transactions", json=body, headers={"Authorization": f"Bearer {token}"})
        finally:
            done.set()

    threading.Thread(target=send, daemon=True).start()
    return done, out


def test_a_sale_with_a_token_no_till_holds_is_refused_without_waiting_for_the_tills_writing(app, api):
    """A wrongly set-up till (or a stranger) sending well-formed sales must not take the write
    lock, or the customer's row, from the tills that are selling: its token is checked on a read
    of its own before the sale's transaction begins."""
    anna = enrol(api)
    body = sale(line("COF", 250), card=anna["card"])
    written = _count(app, "transactions")
    with the_writers_held(app, anna["id"]):
        done, out = _post_meanwhile(app, body, "nope")
        assert done.wait(timeout=30), "the refused sale waited for the writers"
    assert out["response"].status_code == 401
    assert _count(app, "transactions") == written


def test_a_till_s_token_revoked_between_sales_is_refused_at_once_and_then_without_waiting(app, api, shop):
    anna = enrol(api)
    _, token = add_till(shop, "till-7")
    first = app.test_client().post("/api/v1/transactions", json=sale(line("COF", 250), card=anna["card"]),
                                   headers={"Authorization": f"Bearer {token}"})
    assert first.status_code == 201
    revoke_till(shop, "till-7")
    # its very next sale is refused (checked in the sale's own transaction) ...
    done, out = _post_meanwhile(app, sale(line("TEA", 300), card=anna["card"]), token)
    assert done.wait(timeout=30) and out["response"].status_code == 401
    # ... and from then on before any writer is waited for
    with the_writers_held(app, anna["id"]):
        done, out = _post_meanwhile(app, sale(line("TEA", 300), card=anna["card"]), token)
        assert done.wait(timeout=30), "the revoked till's sale waited for the writers"
    assert out["response"].status_code == 401
    assert _count(app, "transactions") == 1


def test_a_fault_while_checking_a_new_token_is_flask_s_to_answer(app, api, monkeypatch):
    """The database says "try again" while the counter checks a token it has not seen: Flask
    answers (its own check, the 503 "try again" or the sale), never a bare 500 from the server."""
    from pos_loyalty.api import counter
    from pos_loyalty.persistence.uow import DatabaseUnreachable

    anna = enrol(api)

    def unreachable(shop, token):
        raise DatabaseUnreachable(DatabaseUnreachable.LOST)

    monkeypatch.setattr(counter, "authenticate_till", unreachable)
    before = _answered_here(app)
    r = api.post("/transactions", json=sale(line("COF", 250), card=anna["card"]))
    assert r.status_code == 201 and _answered_here(app) == before  # Flask checked the token itself
