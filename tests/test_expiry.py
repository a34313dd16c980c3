"""Points expire: on a date fixed when they were earned, oldest spent first, shown before they go."""
from __future__ import annotations

import datetime as dt
import random
import threading
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from pos_loyalty.cli import main as cli
from pos_loyalty.domain.ledger import replay
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


def due_customers(shop) -> list[int]:
    """Whom the expiry run will look at now (the read before any lock is taken)."""
    with shop.uow(read_only=True) as uow:
        return uow.ledger.customers_with_lots_expiring_by(shop.now())


def test_a_customer_whose_old_points_were_all_spent_is_left_alone_and_one_with_points_due_expires(api, shop, clock):
    voucher = reward(shop, "5 euro off", kind="amount_off", amount=500, points_cost=100)
    anna, ben = enrol(api, "Anna Schmidt"), enrol(api, "Ben Okafor")
    buy(api, clock, anna["card"], 10000)  # 100 points, all spent on the voucher the same day
    api.post("/transactions", json=sale(line("BRD", 500, category="bakery"), card=anna["card"], rewards=[voucher["id"]], at=clock.now))
    buy(api, clock, ben["card"], 5000)  # 50 points, never spent
    clock.advance(days=300)
    buy(api, clock, anna["card"], 3000)  # 30 points anna still has to spend: not due for a year
    anna_before = ledger(api, anna["id"])

    clock.advance(days=100)  # past the date of both June lots
    assert due_customers(shop) == [ben["id"]]  # anna's June lot holds nothing: she is not even looked at
    assert expire_points(shop) == {"customers": 1, "points": 50}
    assert ledger(api, anna["id"]) == anna_before
    assert card(api, anna["card"])["balance"] == 30
    assert card(api, ben["card"])["balance"] == 0
    assert due_customers(shop) == []


def test_points_earned_later_under_a_shorter_expiry_are_expired_even_when_older_points_were_spent(api, shop, clock):
    coffee = reward(shop, "Free coffee", points_cost=60)
    anna = enrol(api)
    buy(api, clock, anna["card"], 10000)  # 100 points, good for a year
    api.post("/transactions", json=sale(line("COF", 250), card=anna["card"], rewards=[coffee["id"]], at=clock.now))  # 60 of them spent
    programme(shop, expiry_months=1)
    clock.advance(days=1)
    buy(api, clock, anna["card"], 2000)  # 20 points, good for a month: due before the 40 left of June's
    clock.advance(days=60)
    assert expire_points(shop) == {"customers": 1, "points": 20}
    assert card(api, anna["card"])["balance"] == 40


def test_points_due_are_expired_when_a_later_purchase_was_returned(api, shop, clock):
    anna = enrol(api)
    buy(api, clock, anna["card"], 2000)  # 20 points in June
    clock.advance(days=330)
    buy(api, clock, anna["card"], 10000, id="S-TV")  # 100 points in May, good for another year
    r = api.post("/transactions/S-TV/returns", json=return_of(("TV", 1), at=clock.now))  # and taken back
    assert r.get_json()["points"]["balance_after"] == 20
    clock.advance(days=40)
    assert expire_points(shop) == {"customers": 1, "points": 20}
    assert card(api, anna["card"])["balance"] == 0


def test_the_run_finds_every_customer_a_full_replay_would_on_any_history(api, shop, clock):
    """Random ledgers (earning under changing expiry, spending into debt, returns aimed at their lot,
    earlier expiry runs): the run's first read never misses a customer the replay says has points
    due, and after the run nobody has."""
    rng = random.Random(20260615)
    customers = [enrol(api, f"Customer {i}")["id"] for i in range(30)]
    start = clock.now
    events = sorted((rng.randrange(0, 900), rng.random(), c) for c in customers for _ in range(rng.randrange(1, 12)))
    checkpoints = iter(range(120, 1200, 120))
    checkpoint = next(checkpoints)

    def check(day: int) -> None:
        clock.now = start + dt.timedelta(days=day, hours=12)
        now = clock.now
        with shop.uow(read_only=True) as uow:
            truth = {c for c in customers if replay(uow.ledger.entries(c)).expired(now)}
        assert truth <= set(due_customers(shop))
        result = expire_points(shop)
        assert result["customers"] == len(truth)
        with shop.uow(read_only=True) as uow:
            assert not [c for c in customers if replay(uow.ledger.entries(c)).expired(now)]

    for day, roll, customer_id in events:
        while day >= checkpoint:
            check(checkpoint)
            checkpoint = next(checkpoints)
        clock.now = start + dt.timedelta(days=day, hours=9)
        with shop.uow() as uow:
            customer = uow.customers.get_for_update(customer_id)
            positive = [e for e in uow.ledger.entries(customer_id) if e.points > 0]
            if roll < 0.55 or not positive:
                months = rng.choice([1, 3, 12, 12, None])
                expires = None if months is None else clock.now + dt.timedelta(days=30 * months)
                points = rng.randrange(1, 120)
                uow.ledger.add(customer_id=customer_id, kind="earn", cause="sale", points=points, created_at=clock.now, expires_at=expires)
            elif roll < 0.85:
                points = -rng.randrange(1, 150)  # may leave a debt
                uow.ledger.add(customer_id=customer_id, kind="redeem", cause="sale", points=points, created_at=clock.now)
            else:
                lot = rng.choice(positive)
                points = -rng.randrange(1, lot.points + 1)
                uow.ledger.add(customer_id=customer_id, kind="reverse", cause="return", points=points, created_at=clock.now, lot_id=lot.id)
            uow.customers.add_to_balance(customer, points)
            uow.commit()
    for day in (checkpoint, checkpoint + 400, checkpoint + 800):
        check(day)


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


def test_the_server_runs_the_expiry_again_after_its_interval_not_only_when_it_starts(app, api, clock):
    """The job waits its interval between runs (a day in service; a moment here). The test holds
    the job after its first run, lets a second batch of points fall due, and waits on the second
    run: no sleeping."""
    anna = enrol(api)
    adjust(api, anna["id"], 30)
    clock.advance(days=400)
    first_done, go_on, second_done = threading.Event(), threading.Event(), threading.Event()
    results = []

    def ran(result):
        results.append(result)
        if len(results) == 1:
            first_done.set()
            go_on.wait(timeout=60)  # (the job's own thread waits here while the test adds points)
        else:
            second_done.set()

    jobs = DailyJobs(app.extensions["pos_loyalty"], interval=0.01, on_run=ran)
    jobs.start()
    try:
        assert first_done.wait(timeout=60)
        assert card(api, anna["card"])["balance"] == 0
        adjust(api, anna["id"], 20)
        clock.advance(days=400)
        go_on.set()
        assert second_done.wait(timeout=60)
    finally:
        go_on.set()
        jobs.stop()
    assert results[:2] == [{"customers": 1, "points": 30}, {"customers": 1, "points": 20}]
    assert card(api, anna["card"])["balance"] == 0
