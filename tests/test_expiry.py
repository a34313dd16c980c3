"""Points expire: on a date fixed when they were earned, oldest spent first, shown before they go."""
from __future__ import annotations

import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from pos_loyalty.cli import main as cli
from pos_loyalty.jobs import DailyJobs
from pos_loyalty.services.points import expire_points
from tests.support.factories import adjust, enrol, line, programme, return_of, reward, sale

BERLIN = ZoneInfo("Europe/Berlin")


def buy(api, clock, card: str, price: int, **kw) -> dict:
    r = api.post("/transactions", json=sale(line("TV", price, category="electronics"), card=card, at=clock.now, **kw))
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def card(api, number: str) -> dict:
    r = api.get(f"/cards/{number}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def ledger(api, customer_id: int) -> list[dict]:
    return list(reversed(api.get(f"/customers/{customer_id}/ledger", query_string={"limit": 500}).get_json()))


def test_points_expire_a_year_later_and_the_date_is_on_the_sale_answer_and_the_card(api, shop, clock):
    anna = enrol(api)
    answer = buy(api, clock, anna["card"], 12000)  # 15 June 2026
    assert answer["next_expiry"]["points"] == 120
    assert answer["next_expiry"]["date"] == "2027-06-15"  # the last day they can be spent
    assert card(api, anna["card"])["next_expiry"] == answer["next_expiry"]

    clock.now = dt.datetime(2027, 6, 15, 23, 59, tzinfo=BERLIN)
    assert expire_points(shop) == {"customers": 0, "points": 0}
    assert card(api, anna["card"])["balance"] == 120

    clock.now = dt.datetime(2027, 6, 16, 0, 0, tzinfo=BERLIN)
    assert expire_points(shop) == {"customers": 1, "points": 120}
    after = card(api, anna["card"])
    assert after["balance"] == 0 and after["next_expiry"] is None
    last = ledger(api, anna["id"])[-1]
    assert (last["kind"], last["cause"], last["points"]) == ("expire", "expiry", -120)
    assert last["reason"] == "points valid through 2027-06-15"


def test_changing_the_expiry_policy_never_moves_the_date_of_points_already_earned(api, shop, clock):
    anna = enrol(api)
    buy(api, clock, anna["card"], 5000)  # 50 points, good through 15 June 2027
    programme(shop, expiry_months=3)
    clock.advance(days=1)
    buy(api, clock, anna["card"], 2000)  # 20 points, good through 16 September 2026
    programme(shop, expiry_months=None)
    clock.advance(days=1)
    buy(api, clock, anna["card"], 1000)  # 10 points that never expire

    entries = ledger(api, anna["id"])
    assert [e["expires_at"] is not None for e in entries] == [True, True, False]
    assert card(api, anna["card"])["next_expiry"]["date"] == "2026-09-16"

    clock.now = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
    assert expire_points(shop)["points"] == 20
    position = card(api, anna["card"])
    assert position["balance"] == 60
    assert position["next_expiry"] == {"points": 50, "date": "2027-06-15", "expires_at": entries[0]["expires_at"]}

    clock.now = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    assert expire_points(shop)["points"] == 50
    assert card(api, anna["card"])["balance"] == 10  # the points earned under "never" stay


def test_a_redemption_spends_the_points_that_expire_soonest(api, shop, clock):
    voucher = reward(shop, "5 euro off", kind="amount_off", amount=500, points_cost=100)
    anna = enrol(api)
    buy(api, clock, anna["card"], 10000)  # June: 100 points
    clock.advance(days=60)
    buy(api, clock, anna["card"], 8000)  # August: 80 points
    clock.advance(days=1)
    spent = api.post("/transactions", json=sale(line("BRD", 500, category="bakery"), card=anna["card"], rewards=[voucher["id"]], at=clock.now))
    assert spent.get_json()["points"]["balance_after"] == 80
    assert spent.get_json()["next_expiry"]["date"] == "2027-08-14"  # June's points are the ones spent

    clock.now = dt.datetime(2027, 7, 1, tzinfo=dt.timezone.utc)  # past June's date
    assert expire_points(shop) == {"customers": 0, "points": 0}
    assert card(api, anna["card"])["balance"] == 80


def test_the_expiry_run_is_idempotent_and_never_expires_points_already_spent(api, shop, clock):
    coffee = reward(shop, "Free coffee", points_cost=60)
    anna = enrol(api)
    buy(api, clock, anna["card"], 10000)
    api.post("/transactions", json=sale(line("COF", 250), card=anna["card"], rewards=[coffee["id"]], at=clock.now))
    clock.advance(days=400)
    assert expire_points(shop) == {"customers": 1, "points": 40}
    entries = ledger(api, anna["id"])
    assert expire_points(shop) == {"customers": 0, "points": 0}
    assert ledger(api, anna["id"]) == entries
    assert card(api, anna["card"])["balance"] == 0


def test_a_debt_from_returning_spent_points_expires_nothing_and_is_paid_off_first(api, shop, clock):
    voucher = reward(shop, "10 euro off", kind="amount_off", amount=1000, points_cost=100)
    anna = enrol(api)
    buy(api, clock, anna["card"], 10000, id="S-TV")  # 100 points
    api.post("/transactions", json=sale(line("BRD", 1000, category="bakery"), card=anna["card"], rewards=[voucher["id"]], at=clock.now))
    r = api.post("/transactions/S-TV/returns", json=return_of(("TV", 1), at=clock.now))
    assert r.get_json()["points"]["balance_after"] == -100  # the points were spent on the voucher
    assert card(api, anna["card"])["next_expiry"] is None

    clock.advance(days=400)
    assert expire_points(shop) == {"customers": 0, "points": 0}
    assert card(api, anna["card"])["balance"] == -100

    bought = buy(api, clock, anna["card"], 15000)  # 150 points: 100 pay the debt
    assert bought["points"]["balance_after"] == 50
    assert bought["next_expiry"]["points"] == 50
    clock.advance(days=400)
    assert expire_points(shop) == {"customers": 1, "points": 50}
    assert card(api, anna["card"])["balance"] == 0


def test_returning_a_purchase_whose_points_already_expired_takes_nothing_more(api, shop, clock):
    programme(shop, expiry_months=1)
    anna = enrol(api)
    buy(api, clock, anna["card"], 10000, id="S-TV")
    clock.advance(days=40)
    assert expire_points(shop)["points"] == 100
    r = api.post("/transactions/S-TV/returns", json=return_of(("TV", 1), at=clock.now))
    assert r.status_code == 201
    assert card(api, anna["card"])["balance"] == 0


def test_the_expire_command_expires_what_is_due_and_says_how_much(api, shop, clock, database_url, tmp_path):
    anna = enrol(api)
    clock.now = dt.datetime(2024, 1, 10, 12, 0, tzinfo=dt.timezone.utc)  # long ago: due whenever this runs
    adjust(api, anna["id"], 30)
    env = {"POS_LOYALTY_DATABASE_URL": database_url, "POS_LOYALTY_DATA_DIR": str(tmp_path / "cli"), "POS_LOYALTY_CONFIG": ""}
    first = CliRunner().invoke(cli, ["expire"], env=env)
    assert first.exit_code == 0, first.output
    assert "30 points expired for 1 customers" in first.output
    again = CliRunner().invoke(cli, ["expire"], env=env)
    assert "0 points expired for 0 customers" in again.output
    assert card(api, anna["card"])["balance"] == 0


def test_the_server_runs_the_expiry_when_it_starts(app, api, clock):
    anna = enrol(api)
    adjust(api, anna["id"], 30)
    clock.advance(days=400)
    done = threading.Event()
    results = []

    def ran(result):
        results.append(result)
        done.set()

    jobs = DailyJobs(app.extensions["pos_loyalty"], on_run=ran)
    jobs.start()
    try:
        assert done.wait(timeout=60)
    finally:
        jobs.stop()
    assert results[0] == {"customers": 1, "points": 30}
    assert card(api, anna["card"])["balance"] == 0
