"""Two writers on one SQLite file queue for it instead of failing.

Within one process the FairLock (persistence/db.py) already queues the writers, so the tests of
concurrent checkouts never reach SQLite's own locking. Here the writers are separate processes,
as two tills pointed at one file would be: only SQLite's lock queues them, and it does so only
because a writer's transaction takes the write lock when it begins (``BEGIN IMMEDIATE``) and
waits for it up to the busy timeout. A deferred transaction would take it at its first write
instead, and one that had read before another till committed would then fail at once with
"database is locked" (its snapshot is stale: waiting cannot help it).

SQLite's queue is not fair: a waiting writer polls, and a till committing without pause nearly
always takes the lock again first. So the test asserts that both tills wrote at once and lost
nothing, not that they took turns (here one usually finishes before the other writes at all).
"""
from __future__ import annotations

import datetime as dt
import multiprocessing
import queue
import sqlite3
import time
import traceback
from pathlib import Path

import pytest

from pos_loyalty.app import build_services
from pos_loyalty.config import load_settings
from pos_loyalty.services.customers import enrol_customer, get_customer
from pos_loyalty.services.points import adjust_points
from pos_loyalty.services.transactions import LineInput, SaleRequest, record_sale

SALES_PER_TILL = 60  # and as many goodwill adjustments, each its own transaction
PROCESS_TIMEOUT = 120  # generous: a busy CI machine; a healthy run takes a few seconds
HELD_FOR = 0.5  # seconds another till holds the write lock while a sale waits for it


@pytest.fixture
def database_url(tmp_path, sqlite_template):
    """SQLite only (the conftest's fixture runs each test on PostgreSQL too): a migrated copy."""
    target = tmp_path / "loyalty.db"
    target.write_bytes(Path(sqlite_template).read_bytes())
    return f"sqlite:///{target}"


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def till_services(url: str, data_dir: str):
    """A till's own services on the shared file: in a process of its own, nothing in Python
    queues it behind another till."""
    return build_services(load_settings({"data_dir": data_dir, "database_url": url, "testing": True, "run_daily_expiry": False}))


def sell_a_coffee(services, sale_id: str, card: str, cashier: str) -> dict:
    return record_sale(services.shop, SaleRequest(
        id=sale_id,
        occurred_at=dt.datetime.now(dt.timezone.utc),
        currency="EUR",
        card_number=card,
        cashier=cashier,
        lines=(LineInput(sku="COF", description="Coffee", category="drinks", quantity_milli=1000, unit_price=250),),
    ), till_id=None, till_name=cashier)


def a_till_selling(url: str, data_dir: str, name: str, card: str, customer_id: int, both_ready, results) -> None:
    """One till selling to and granting goodwill points to the same customer, alternately, as
    fast as it can. It reports how much its transactions changed the balance, what failed, and
    when it started and finished (on the machine's monotonic clock, the same for both processes)."""
    changed, failures = 0, []
    started = finished = None
    services = till_services(url, data_dir)
    try:
        get_customer(services.shop, customer_id)  # connections open and modules loaded before the start
        both_ready.wait(timeout=PROCESS_TIMEOUT)
        started = time.monotonic()
        for i in range(SALES_PER_TILL):
            try:
                sale = sell_a_coffee(services, f"{name}-{i:03d}", card, name)
                changed += sale["points"]["balance_after"] - sale["points"]["balance_before"]
                adjust_points(services.shop, customer_id, 3, reason="sorry for the wait", user=name, role="cashier")
                changed += 3
            except Exception:  # noqa: BLE001 - every failure is reported, not just the first
                failures.append(traceback.format_exc())
        finished = time.monotonic()
    finally:
        services.db.dispose()
        results.put((name, changed, failures, started, finished))


def a_till_selling_once(url: str, data_dir: str, card: str, selling, results) -> None:
    services = till_services(url, data_dir)
    try:
        selling.set()
        results.put(sell_a_coffee(services, "till-b-001", card, "till-b"))
    except Exception:  # noqa: BLE001
        results.put(traceback.format_exc())
    finally:
        services.db.dispose()


def finish(processes) -> list[int]:
    """Their exit codes, once they have ended (killed if they hang)."""
    for process in processes:
        process.join(timeout=PROCESS_TIMEOUT)
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()
    return [process.exitcode for process in processes]


SPAWN = multiprocessing.get_context("spawn")  # fresh interpreters: no engine, connection or lock inherited


def test_two_tills_in_separate_processes_writing_to_one_sqlite_file_wait_for_each_other_and_lose_nothing(
    shop, database_url, tmp_path
):
    customer = enrol_customer(shop, {"name": "Anna Schmidt"})
    card, balance_before = customer["cards"][0]["number"], customer["balance"]

    both_ready, results = SPAWN.Barrier(2), SPAWN.Queue()
    tills = [
        SPAWN.Process(
            target=a_till_selling,
            args=(database_url, str(tmp_path / f"data-{name}"), name, card, customer["id"], both_ready, results),
        )
        for name in ("till-a", "till-b")
    ]
    for till in tills:
        till.start()
    try:
        reports = {}
        for _ in tills:
            name, *report = results.get(timeout=PROCESS_TIMEOUT)
            reports[name] = report
    finally:
        exit_codes = finish(tills)

    assert exit_codes == [0, 0]
    assert {name: failures for name, (_, failures, *_) in reports.items()} == {"till-a": [], "till-b": []}
    starts, ends = [r[2] for r in reports.values()], [r[3] for r in reports.values()]
    assert max(starts) < min(ends), "one till finished before the other began: nothing was written at once"
    final = get_customer(shop, customer["id"])["balance"]
    assert final == balance_before + sum(changed for changed, *_ in reports.values())

    db = sqlite3.connect(sqlite_path(database_url))
    try:
        (ledger_total,) = db.execute("SELECT sum(points) FROM ledger_entries WHERE customer_id = ?", (customer["id"],)).fetchone()
        writers = [who for (who,) in db.execute(
            "SELECT coalesce(l.user, t.cashier) FROM ledger_entries l LEFT JOIN transactions t ON t.id = l.transaction_id "
            "WHERE l.customer_id = ?", (customer["id"],)
        )]
    finally:
        db.close()
    assert ledger_total == final
    assert writers.count("till-a") == writers.count("till-b") == 2 * SALES_PER_TILL


def test_a_sale_waits_while_another_till_holds_the_write_lock_and_is_recorded_when_it_lets_go(shop, database_url, tmp_path):
    card = enrol_customer(shop, {"name": "Anna Schmidt"})["cards"][0]["number"]
    other_till = sqlite3.connect(sqlite_path(database_url), isolation_level=None)
    other_till.execute("BEGIN IMMEDIATE")
    selling, results = SPAWN.Event(), SPAWN.Queue()
    till = SPAWN.Process(target=a_till_selling_once, args=(database_url, str(tmp_path / "data-b"), card, selling, results))
    till.start()
    try:
        assert selling.wait(timeout=PROCESS_TIMEOUT)
        with pytest.raises(queue.Empty):  # the sale waits for the lock
            print("recorded while another till held the write lock:", results.get(timeout=HELD_FOR))
        other_till.execute("ROLLBACK")
        answer = results.get(timeout=PROCESS_TIMEOUT)
    finally:
        other_till.close()
        exit_code, = finish([till])
    assert isinstance(answer, dict), answer  # not "database is locked"
    assert answer["id"] == "till-b-001" and answer["points"]["balance_after"] > 0
    assert exit_code == 0


def locked_for_another_writer(url: str) -> bool:
    """Whether a second connection, not willing to wait, is refused SQLite's write lock."""
    other = sqlite3.connect(sqlite_path(url), timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        assert "database is locked" in str(exc)
        return True
    else:
        other.execute("ROLLBACK")
        return False
    finally:
        other.close()


def test_a_writer_holds_the_write_lock_from_the_moment_it_begins_before_it_writes_anything(shop, database_url):
    assert not locked_for_another_writer(database_url)
    with shop.uow():
        assert locked_for_another_writer(database_url)
    assert not locked_for_another_writer(database_url)


def test_a_writer_that_reads_first_holds_the_write_lock_while_it_reads(shop, database_url):
    customer = enrol_customer(shop, {"name": "Ben Okafor"})
    with shop.uow() as uow:
        assert uow.customers.get(customer["id"]).name == "Ben Okafor"
        assert locked_for_another_writer(database_url)


def test_a_card_lookup_never_holds_the_write_lock(shop, database_url):
    customer = enrol_customer(shop, {"name": "Chloé Martin"})
    with shop.uow(read_only=True) as uow:
        assert uow.customers.get(customer["id"]).name == "Chloé Martin"
        assert not locked_for_another_writer(database_url)


def test_a_till_waiting_past_the_busy_timeout_is_told_the_database_is_busy_and_nothing_is_written(
        shop, database_url, tmp_path, monkeypatch):
    """Another process holding SQLite's write lock for longer than the busy timeout (a backup
    tool, a second till misconfigured onto the same file) makes a sale answer 503 "busy; try
    again", which the till retries, not a fault, and the sale is not half-written."""
    from pos_loyalty.persistence import db as db_module
    from pos_loyalty.persistence.uow import DatabaseBusy

    card = enrol_customer(shop, {"name": "Dana Weiss"})["cards"][0]["number"]
    monkeypatch.setattr(db_module, "BUSY_TIMEOUT_MS", 50)  # (ten seconds in service)
    impatient = till_services(database_url, str(tmp_path / "data-c"))
    other_process = sqlite3.connect(sqlite_path(database_url), isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseBusy) as refused:
            sell_a_coffee(impatient, "till-c-001", card, "till-c")
        assert refused.value.status == 503
    finally:
        other_process.execute("ROLLBACK")
        other_process.close()
    answer = sell_a_coffee(impatient, "till-c-001", card, "till-c")  # the till's retry goes through
    assert answer["id"] == "till-c-001" and not answer.get("replayed")
    impatient.db.dispose()
