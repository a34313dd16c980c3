"""The points ledger: every movement is an entry naming its cause; the balance is their sum; the
database itself keeps the entries from being changed or removed."""
from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from pos_loyalty.persistence import repositories
from pos_loyalty.services.points import adjust_points, expire_points
from tests.support.factories import adjust, enrol, line, programme, return_of, reward, sale


def ledger(api, customer_id: int) -> list[dict]:
    r = api.get(f"/customers/{customer_id}/ledger", query_string={"limit": 500})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def balance(api, card: str) -> int:
    return api.get(f"/cards/{card}").get_json()["balance"]


def test_every_entry_names_its_cause_and_the_balance_is_their_sum(api, shop, clock):
    programme(shop, welcome_bonus=20)
    coffee = reward(shop, "Free coffee", points_cost=30)
    anna = enrol(api)
    adjust(api, anna["id"], 40, reason="waited too long at the counter")
    bought = api.post("/transactions", json=sale(line("COF", 250, 2), line("CAKE", 1000, category="bakery"), card=anna["card"], rewards=[coffee["id"]], id="S-1"))
    assert bought.status_code == 201, bought.get_json()
    returned = api.post("/transactions/S-1/returns", json=return_of(("CAKE", 1), id="R-1"))
    assert returned.status_code == 201, returned.get_json()
    clock.advance(days=800)
    expire_points(shop)

    entries = list(reversed(ledger(api, anna["id"])))
    described = [(e["kind"], e["cause"], e["points"], e["transaction_id"]) for e in entries]
    assert described[:5] == [
        ("adjust", "adjustment", 40, None),
        ("redeem", "sale", -30, "S-1"),
        ("earn", "sale", 12, "S-1"),  # 2.50 for the coffee not given free, 10.00 for the cake
        ("bonus", "welcome", 20, "S-1"),
        ("reverse", "return", -10, "R-1"),
    ]
    assert entries[0]["user"] == "anna" and entries[0]["reason"] == "waited too long at the counter"
    assert entries[1]["reason"] == "Free coffee"
    expiries = entries[5:]
    assert expiries and {(e["kind"], e["cause"]) for e in expiries} == {("expire", "expiry")}
    assert sum(e["points"] for e in expiries) == -(40 - 30 + 12 + 20 - 10)
    assert balance(api, anna["card"]) == sum(e["points"] for e in entries) == 0


def test_the_stored_balance_and_the_entry_are_written_together_or_not_at_all(api, shop, monkeypatch):
    anna = enrol(api)
    adjust(api, anna["id"], 25)

    def audit_fails(*args, **kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(repositories.Audit, "record", audit_fails)
    with pytest.raises(RuntimeError):
        adjust_points(shop, anna["id"], 50, reason="broken cup", user="maria", role="manager")
    monkeypatch.undo()
    assert balance(api, anna["card"]) == 25
    assert [e["points"] for e in ledger(api, anna["id"])] == [25]


def test_the_ledger_of_an_unknown_customer_is_404(api):
    r = api.get("/customers/999999/ledger")
    assert r.status_code == 404
    assert r.get_json()["errors"][0]["field"] == "customer_id"


def _one_entry(app, api) -> tuple[int, int]:
    anna = enrol(api)
    entry_id = adjust(api, anna["id"], 30)["entry_id"]
    return anna["id"], entry_id


def _stored(engine, entry_id: int):
    with engine.connect() as conn:
        return conn.execute(text("SELECT points, kind, reason FROM ledger_entries WHERE id = :id"), {"id": entry_id}).one()


def test_the_database_refuses_to_change_a_ledger_entry(app, api):
    engine = app.extensions["pos_loyalty"].db.writer
    _, entry_id = _one_entry(app, api)
    before = _stored(engine, entry_id)
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text("UPDATE ledger_entries SET points = 1000000 WHERE id = :id"), {"id": entry_id})
    assert _stored(engine, entry_id) == before == (30, "adjust", "goodwill")


def test_the_one_change_the_database_lets_through_is_erasure_blanking_a_reason(app, api):
    """A privacy erasure blanks what staff wrote about the customer (migration 0010); the points,
    their kind and dates never change, and the reason cannot be rewritten to anything else."""
    engine = app.extensions["pos_loyalty"].db.writer
    _, entry_id = _one_entry(app, api)
    for change in ("reason = 'goodwill, doubled'", "reason = '[erased]', points = 60", "reason = '[erased]', \"user\" = 'someone else'",
                   "reason = '[erased]', expires_at = NULL", "reason = '[erased]', kind = 'earn'"):
        with pytest.raises(DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text(f"UPDATE ledger_entries SET {change} WHERE id = :id"), {"id": entry_id})
        assert _stored(engine, entry_id) == (30, "adjust", "goodwill"), change
    with engine.begin() as conn:
        conn.execute(text("UPDATE ledger_entries SET reason = '[erased]' WHERE id = :id"), {"id": entry_id})
    assert _stored(engine, entry_id) == (30, "adjust", "[erased]")


def test_the_database_refuses_to_remove_a_ledger_entry(app, api):
    db = app.extensions["pos_loyalty"].db
    customer_id, entry_id = _one_entry(app, api)
    with pytest.raises(DBAPIError, match="append-only"):
        with db.writer.begin() as conn:
            conn.execute(text("DELETE FROM ledger_entries WHERE customer_id = :c"), {"c": customer_id})
    if not db.is_sqlite:  # SQLite has no TRUNCATE
        with pytest.raises(DBAPIError, match="append-only"):
            with db.writer.begin() as conn:
                conn.execute(text("TRUNCATE ledger_entries CASCADE"))
    assert _stored(db.writer, entry_id) == (30, "adjust", "goodwill")
    assert [e["id"] for e in ledger(api, customer_id)] == [entry_id]
