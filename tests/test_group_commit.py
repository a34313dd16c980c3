"""SQLite commits several tills' sales as one transaction (group commit), and answers none of
them before that transaction is on disk.

A sale leaves its work open for the next writer in line when that writer is a sale too; the last
of the group commits for all. Each sale still stands or falls alone: one that fails rolls back to
its own savepoint. These tests pause one sale inside the write lock, queue others behind it, and
record the order in which the group's commit and the answers happen.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

import pytest
from sqlalchemy import create_engine, text

from pos_loyalty.api.schemas import SaleSchema
from pos_loyalty.api.till import _sale_request
from pos_loyalty.domain.errors import InsufficientPoints
from pos_loyalty.persistence import db as dbmod
from pos_loyalty.persistence.uow import DatabaseBusy
from pos_loyalty.services import transactions
from pos_loyalty.services.points import adjust_points
from tests.support.factories import enrol, line, reward, sale

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _record(shop, body: dict) -> dict:
    return transactions.record_sale(shop, _sale_request(SaleSchema().load(body)), till_id=None, till_name="till 1")


def _on_disk(database_url: str, sql: str) -> list[tuple]:
    """What another connection reads: committed work only."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


class Counter:
    """Runs sales on threads of their own; the first is held inside the write lock until released."""

    def __init__(self, app, shop, monkeypatch) -> None:
        self.shop = shop
        self.lock = app.extensions["pos_loyalty"].db.write_lock
        self.events: list[str] = []
        self.answers: dict[str, Any] = {}
        self.inside = threading.Event()
        self.release = threading.Event()
        self._threads: list[threading.Thread] = []
        visit_code = transactions._new_visit_code
        finish = dbmod.CommitGroup.finish

        def held_visit_code() -> str:  # called inside the sale's unit of work, before its writes
            if threading.current_thread().name == "held":
                self.inside.set()
                self.release.wait(timeout=30)
            return visit_code()

        def recorded_finish(group) -> None:
            finish(group)
            self.events.append(f"commit of {group.members}" if group.error is None else "commit failed")

        monkeypatch.setattr(transactions, "_new_visit_code", held_visit_code)
        monkeypatch.setattr(dbmod.CommitGroup, "MAX_AGE", 60.0)  # these threads take their time
        monkeypatch.setattr(dbmod.CommitGroup, "finish", recorded_finish)

    def start(self, name: str, work: Callable[[], Any]) -> None:
        def run() -> None:
            try:
                self.answers[name] = work()
            except Exception as e:  # noqa: BLE001 - the test looks at what each till got
                self.answers[name] = e
            self.events.append(f"{name} answered")

        thread = threading.Thread(target=run, name=name)
        self._threads.append(thread)
        thread.start()

    def hold(self, work: Callable[[], Any]) -> None:
        """Start ``work`` as the sale that holds the write lock, and wait until it does."""
        self.start("held", work)
        assert self.inside.wait(timeout=30)

    def queue(self, name: str, work: Callable[[], Any]) -> None:
        """Start ``work`` and wait until it queues for the write lock behind the others."""
        waiting = len(self._threads)
        self.start(name, work)
        assert self.lock.wait_for_waiters(waiting, timeout=30)

    def finish(self) -> None:
        self.release.set()
        for thread in self._threads:
            thread.join(timeout=60)
            assert not thread.is_alive()


@pytest.fixture
def counter(app, shop, monkeypatch) -> Counter:
    return Counter(app, shop, monkeypatch)


@pytest.fixture
def anna(api, shop) -> dict:
    customer = enrol(api)
    adjust_points(shop, customer["id"], 100, reason="opening balance", user="mia", role="manager")
    return customer


def test_sales_queued_behind_a_sale_share_its_commit_and_none_is_answered_before_it(counter, shop, anna, database_url):
    counter.hold(lambda: _record(shop, sale(line("COF", 250), card=anna["card"], id="A")))
    counter.queue("b", lambda: _record(shop, sale(line("TEA", 300), card=anna["card"], id="B")))
    counter.queue("c", lambda: _record(shop, sale(line("CAKE", 400), id="C")))  # anonymous: a sale all the same
    counter.finish()

    assert all(not isinstance(a, Exception) for a in counter.answers.values()), counter.answers
    assert counter.events[0] == "commit of 3"  # one commit for the three, before any answer
    assert sorted(counter.events[1:]) == ["b answered", "c answered", "held answered"]
    assert {r[0] for r in _on_disk(database_url, "SELECT id FROM transactions")} >= {"A", "B", "C"}
    balance = _on_disk(database_url, f"SELECT balance FROM customers WHERE id = {anna['id']}")[0][0]
    assert balance == 100 + counter.answers["held"]["points"]["earned"] + counter.answers["b"]["points"]["earned"]


def test_a_card_looked_up_while_a_group_is_open_leaves_the_group_alone(counter, shop, anna, api, database_url):
    counter.hold(lambda: _record(shop, sale(line("COF", 250), card=anna["card"], id="A")))
    counter.queue("b", lambda: _record(shop, sale(line("TEA", 300), card=anna["card"], id="B")))
    looked_up = api.get(f"/cards/{anna['card']}")  # a reader, meanwhile: sees what is on disk
    assert looked_up.status_code == 200 and looked_up.get_json()["balance"] == 100
    counter.finish()

    assert counter.events[0] == "commit of 2"
    assert {r[0] for r in _on_disk(database_url, "SELECT id FROM transactions")} >= {"A", "B"}
    assert api.get(f"/cards/{anna['card']}").get_json()["balance"] == (
        100 + counter.answers["held"]["points"]["earned"] + counter.answers["b"]["points"]["earned"]
    )


def test_a_sale_that_fails_in_a_group_undoes_only_its_own_work(counter, shop, anna, database_url):
    voucher = reward(shop, "Two euros off", kind="amount_off", amount=200, points_cost=80)
    counter.hold(lambda: _record(shop, sale(line("COF", 250), card=anna["card"], rewards=[voucher["id"]], id="A")))
    # the same customer, the same reward: the points went to the first; this one is refused
    counter.queue("b", lambda: _record(shop, sale(line("TEA", 300), card=anna["card"], rewards=[voucher["id"]], id="B")))
    counter.queue("c", lambda: _record(shop, sale(line("CAKE", 400), card=anna["card"], id="C")))
    counter.finish()

    assert isinstance(counter.answers["b"], InsufficientPoints)
    assert counter.answers["held"]["points"]["redeemed"] == 80
    assert "commit of 2" in counter.events
    assert {r[0] for r in _on_disk(database_url, "SELECT id FROM transactions")} & {"A", "B", "C"} == {"A", "C"}
    ledger_sum, balance = _on_disk(
        database_url,
        f"SELECT (SELECT SUM(points) FROM ledger_entries WHERE customer_id = {anna['id']}), balance FROM customers WHERE id = {anna['id']}",
    )[0]
    assert ledger_sum == balance == 100 - 80 + counter.answers["held"]["points"]["earned"] + counter.answers["c"]["points"]["earned"]


def test_a_retry_answered_from_a_sale_in_the_same_group_waits_for_its_commit(counter, shop, anna, database_url):
    body = sale(line("COF", 250), card=anna["card"], id="A")
    counter.hold(lambda: _record(shop, body))
    counter.queue("retry", lambda: _record(shop, body))  # the till lost the answer and sent the sale again
    counter.queue("c", lambda: _record(shop, sale(line("CAKE", 400), id="C")))
    counter.finish()

    assert counter.answers["retry"]["replayed"] is True
    assert {k: v for k, v in counter.answers["retry"].items() if k != "replayed"} == counter.answers["held"]
    assert counter.events[0] == "commit of 2"  # the sale and the other till's; the retry wrote nothing
    assert _on_disk(database_url, "SELECT COUNT(*) FROM transactions WHERE id = 'A'") == [(1,)]


def _a_change_the_commit_refuses(shop) -> None:
    """A writer in the group whose change the database can only refuse at COMMIT: a deferred
    foreign key left dangling."""
    with shop.uow(group_commit=True) as uow:
        dialect, driver = uow.driver()
        driver.execute("PRAGMA defer_foreign_keys = ON")
        driver.execute("INSERT INTO transaction_lines (transaction_id, line_no, sku, description, quantity_milli, "
                       "unit_price, line_discount, reward_discount, paid, points) VALUES ('NO-SUCH-SALE', 1, 'X', 'X', 1000, 1, 0, 0, 1, 0)")
        transactions._new_visit_code()  # (where the held thread waits)
        uow.commit()


def test_when_the_group_s_commit_fails_every_sale_in_it_is_refused_and_nothing_is_kept(counter, shop, anna, database_url, app):
    db = app.extensions["pos_loyalty"].db
    counter.hold(lambda: _a_change_the_commit_refuses(shop))
    counter.queue("b", lambda: _record(shop, sale(line("TEA", 300), card=anna["card"], id="B")))
    counter.queue("c", lambda: _record(shop, sale(line("CAKE", 400), id="C")))
    counter.finish()

    assert all(isinstance(counter.answers[k], DatabaseBusy) for k in ("held", "b", "c")), counter.answers
    assert counter.events[0] == "commit failed"
    assert _on_disk(database_url, "SELECT id FROM transactions WHERE id IN ('B', 'C')") == []
    assert _on_disk(database_url, f"SELECT balance FROM customers WHERE id = {anna['id']}") == [(100,)]
    assert db.writer.pool.checkedout() == 0  # the group's connection went back to the pool
    assert _record(shop, sale(line("TEA", 300), card=anna["card"], id="B"))["id"] == "B"  # and the till's retry is served


def test_what_a_sale_read_in_a_group_that_failed_is_not_remembered_for_the_next(counter, shop, anna, api):
    # anna's first sale earns points; a change the commit refuses joins; anna's second sale reads
    # the first one's points (in the group, not yet on disk) to work out what expires next
    counter.hold(lambda: _record(shop, sale(line("TV", 5000, category="electronics"), card=anna["card"], id="A")))
    counter.queue("broken", lambda: _a_change_the_commit_refuses(shop))
    counter.queue("c", lambda: _record(shop, sale(line("TV", 3000, category="electronics"), card=anna["card"], id="C")))
    counter.finish()
    assert all(isinstance(counter.answers[k], DatabaseBusy) for k in ("held", "broken", "c")), counter.answers

    later = _record(shop, sale(line("TEA", 300), card=anna["card"], id="D"))
    assert later["points"]["balance_after"] == 100 + later["points"]["earned"]
    assert later["next_expiry"]["points"] == later["points"]["balance_after"]  # all earned today: one date
    assert api.get(f"/cards/{anna['card']}").get_json()["next_expiry"] == later["next_expiry"]


def test_one_till_alone_commits_each_sale_at_once(counter, shop, anna):
    counter.release.set()
    for n in range(3):
        _record(shop, sale(line("COF", 250), card=anna["card"], id=f"S{n}"))
    assert counter.events == ["commit of 1"] * 3


def test_a_group_commits_once_its_first_sale_has_waited_long_enough(counter, shop, anna, monkeypatch):
    monkeypatch.setattr(dbmod.CommitGroup, "MAX_AGE", 0.0)
    counter.hold(lambda: _record(shop, sale(line("COF", 250), card=anna["card"], id="A")))
    counter.queue("b", lambda: _record(shop, sale(line("TEA", 300), card=anna["card"], id="B")))
    counter.finish()
    assert counter.events[0] == "commit of 1"
    assert counter.events.count("commit of 1") == 2


def test_a_group_holds_at_most_its_limit_of_sales(counter, shop, anna, monkeypatch):
    monkeypatch.setattr(dbmod.CommitGroup, "LIMIT", 2)
    counter.hold(lambda: _record(shop, sale(line("COF", 250), card=anna["card"], id="A")))
    for n in range(3):
        counter.queue(f"s{n}", lambda n=n: _record(shop, sale(line("TEA", 300), card=anna["card"], id=f"S{n}")))
    counter.finish()
    assert [e for e in counter.events if e.startswith("commit")] == ["commit of 2", "commit of 2"]


def test_a_group_commit_unit_of_work_refuses_the_orm_session(shop):
    with shop.uow(group_commit=True) as uow:
        with pytest.raises(RuntimeError, match="prepared statements only"):
            uow.session
