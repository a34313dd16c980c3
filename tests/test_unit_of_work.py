"""A unit of work is one transaction, however its statements reach the database.

The counter's statements run on the driver's connection and never build a session; the ORM's
session, when a use case needs it, joins the same transaction. On both databases: what is not
committed is gone, what is committed stays, a statement after a commit is in a new transaction,
each half sees the other's writes, and every connection goes back to the pool (on SQLite, to
the parking of connections kept for the next unit of work, rolled back as the pool would).
"""
from __future__ import annotations

import pytest

from pos_loyalty.persistence import models as m
from pos_loyalty.services.access import hash_token


def _till(uow, name: str):
    return uow.tills.active_by_token_hash(hash_token(name))  # a prepared statement


def _add_till(uow, name: str) -> None:
    uow.tills.add(name, hash_token(name))  # through the ORM session


def _pools_idle(app) -> bool:
    """Every connection is back in its pool, or parked for the next unit of work."""
    db = app.extensions["pos_loyalty"].db
    if not db.is_sqlite:  # (one engine, one parking)
        return db.writer.pool.checkedout() == len(db.parked_writer)
    return db.writer.pool.checkedout() == len(db.parked_writer) and db.reader.pool.checkedout() == len(db.parked_readers)


def _driver_insert_till(uow, name: str) -> None:
    """A write on the driver's connection, as the counter's statements make them (no session)."""
    _, conn = uow.driver()
    cursor = conn.cursor()
    cursor.execute(f"INSERT INTO tills (name, token_hash, created_at) VALUES ('{name}', '{hash_token(name)}', CURRENT_TIMESTAMP)")
    cursor.close()


def test_a_till_token_check_builds_no_session_and_returns_its_connection(app, shop):
    with shop.uow(read_only=True) as uow:
        assert _till(uow, "nobody") is None
        assert "session" not in uow.__dict__
    assert _pools_idle(app)


def test_what_is_not_committed_is_gone_and_what_is_committed_stays(app, shop):
    with shop.uow() as uow:
        _add_till(uow, "till-a")
        assert _till(uow, "till-a") is not None  # the prepared read sees the session's write
    with shop.uow() as uow:
        assert _till(uow, "till-a") is None
        _add_till(uow, "till-b")
        uow.commit()
    with shop.uow(read_only=True) as uow:
        assert _till(uow, "till-b").name == "till-b"
    assert _pools_idle(app)


def test_a_statement_after_a_commit_is_in_a_transaction_of_its_own(app, shop):
    with shop.uow() as uow:
        assert _till(uow, "till-c") is None  # driver only, so far
        uow.commit()
        _add_till(uow, "till-c")  # the session begins the next transaction
        assert _till(uow, "till-c") is not None
        # not committed: rolled back at the end
    with shop.uow() as uow:
        _add_till(uow, "till-d")
        uow.commit()
        _add_till(uow, "till-e")
        uow.commit()
    with shop.uow(read_only=True) as uow:
        assert _till(uow, "till-c") is None
        assert _till(uow, "till-d") is not None and _till(uow, "till-e") is not None
    assert _pools_idle(app)


def test_the_session_joins_the_transaction_the_driver_began(app, shop, api):
    with shop.uow() as uow:
        assert _till(uow, "till-f") is None  # begins on the driver (BEGIN IMMEDIATE on SQLite)
        _add_till(uow, "till-f")  # the session wraps the same connection and transaction
        assert uow.session.get(m.Till, _till(uow, "till-f").id).name == "till-f"
        uow.commit()
    with shop.uow(read_only=True) as uow:
        assert _till(uow, "till-f") is not None


def test_an_error_inside_rolls_back_both_halves(app, shop):
    with pytest.raises(KeyError):
        with shop.uow() as uow:
            _add_till(uow, "till-g")
            uow.flush()
            raise KeyError("the use case failed")
    with shop.uow(read_only=True) as uow:
        assert _till(uow, "till-g") is None
    assert _pools_idle(app)


def test_the_counter_s_checkout_and_card_lookup_run_without_a_session(api, shop, monkeypatch):
    """The counter's use cases stay on the driver (the reason this design exists): a checkout
    with a card and a reward, and the cashier screen's card lookup, open no ORM session."""
    from pos_loyalty.persistence.uow import SqlUnitOfWork
    from tests.support.factories import adjust, enrol, line, reward, sale

    coffee = reward(shop, "Free coffee", points_cost=50)
    anna = enrol(api)
    adjust(api, anna["id"], 80)
    api.post("/transactions", json=sale(line("COF", 250, 2), card=anna["card"]))  # the first sale: the programme's cache is filled
    opened = []
    real = SqlUnitOfWork._open_session
    monkeypatch.setattr(SqlUnitOfWork, "_open_session", lambda self: opened.append(1) or real(self))
    answer = api.post("/transactions", json=sale(line("COF", 250, 2), line("BAN", 199, "0.755"), card=anna["card"], rewards=[coffee["id"]]))
    assert answer.status_code == 201, answer.get_json()
    card = api.get(f"/cards/{anna['card']}")
    assert card.status_code == 200
    assert opened == []


def test_the_counter_checks_the_till_token_in_the_use_case_s_own_unit_of_work(app, api, shop, monkeypatch):
    """One unit of work a checkout and one a card lookup: the till's token is their first read
    (on SQLite a second connection would re-read its cached pages after every sale). A token no
    active till holds is refused there, before anything is written or any stored answer used."""
    from pos_loyalty.api.schemas import SaleSchema
    from pos_loyalty.api.till import _sale_request
    from pos_loyalty.persistence.uow import SqlUnitOfWork
    from pos_loyalty.services.access import TokenRefused, add_till, revoke_till
    from pos_loyalty.services.summary import card_summary
    from pos_loyalty.services.transactions import record_sale
    from tests.support.factories import enrol, line, sale

    anna = enrol(api)
    api.post("/transactions", json=sale(line("COF", 250), card=anna["card"]))
    opened = []
    real = SqlUnitOfWork.__enter__
    monkeypatch.setattr(SqlUnitOfWork, "__enter__", lambda self: opened.append(self.read_only) or real(self))
    first = sale(line("COF", 250, 2), card=anna["card"])
    assert api.post("/transactions", json=first).status_code == 201
    assert opened == [False]
    assert api.get(f"/cards/{anna['card']}").status_code == 200
    assert opened == [False, True]
    monkeypatch.undo()

    _, gone = add_till(shop, "till-gone")
    revoke_till(shop, "till-gone")
    stored_before = api.get(f"/transactions/{first['id']}").get_json()
    balance_before = api.get(f"/cards/{anna['card']}").get_json()["balance"]
    for token in ("nope", gone):
        with pytest.raises(TokenRefused):
            record_sale(shop, _sale_request(SaleSchema().load(first)), till_token=token)  # a retry's body: no stored answer for it
        with pytest.raises(TokenRefused):
            record_sale(shop, _sale_request(SaleSchema().load(sale(line("TEA", 300), card=anna["card"]))), till_token=token)
        with pytest.raises(TokenRefused):
            card_summary(shop, anna["card"], till_token=token)
    assert api.get(f"/transactions/{first['id']}").get_json() == stored_before
    assert api.get(f"/cards/{anna['card']}").get_json()["balance"] == balance_before
    with pytest.raises(ValueError):
        record_sale(shop, _sale_request(SaleSchema().load(first)), till_id=1, till_token="nope")


def test_writers_get_the_write_lock_in_the_order_they_asked():
    """Sixteen tills queueing for SQLite's one writer are served first come, first served: with a
    plain lock some sales waited several turns."""
    import threading

    from pos_loyalty.persistence.db import FairLock

    lock = FairLock()
    served: list[int] = []
    lock.acquire()
    writers = []
    for n in range(6):
        writer = threading.Thread(target=lambda n=n: (lock.acquire(), served.append(n), lock.release()))
        writer.start()
        assert lock.wait_for_waiters(n + 1, timeout=10)  # queued behind the ones before it
        writers.append(writer)
    lock.release()
    for writer in writers:
        writer.join(timeout=10)
    assert served == list(range(6))
    assert lock.acquire() and (lock.release() is None)  # free again


def test_a_single_read_needs_no_transaction_and_leaves_none_behind(app, shop):
    """The till-token check is one statement: on PostgreSQL it runs without BEGIN and ROLLBACK
    (two of its four round trips), and the connection goes back to the pool as it came."""
    with shop.uow() as uow:
        _add_till(uow, "till-h")
        uow.commit()
    with shop.uow(read_only=True, one_read=True) as uow:
        assert _till(uow, "till-h").name == "till-h"
        assert "session" not in uow.__dict__
        used = uow.driver()[1]
        if not app.extensions["pos_loyalty"].db.is_sqlite:
            assert used.autocommit is True and used.info.transaction_status == 0  # idle: no BEGIN was sent
    with pytest.raises(ValueError):
        shop.uow(one_read=True)
    if not app.extensions["pos_loyalty"].db.is_sqlite:
        assert used.autocommit is False  # as every other pooled connection
    assert _pools_idle(app)


def test_units_of_work_reuse_parked_connections_and_a_failed_one_leaves_nothing_behind(app, shop):
    """A unit of work takes the connection the last one left (no pool checkout and checkin for
    every sale and lookup; on SQLite the writers take turns on one). What a writer did not
    commit (a use case that failed half-way) is rolled back before the next one gets it, and a
    reader's snapshot ends with its unit of work."""
    db = app.extensions["pos_loyalty"].db
    with pytest.raises(KeyError):
        with shop.uow() as uow:
            _driver_insert_till(uow, "till-i")
            first = uow.driver()[1]
            raise KeyError("the use case failed")
    with shop.uow(read_only=True) as uow:
        assert _till(uow, "till-i") is None
        reader = uow.driver()[1]
    with shop.uow() as uow:
        assert _till(uow, "till-i") is None
        assert uow.driver()[1] is first  # the same connection, and nothing of the failed writer's on it
        _driver_insert_till(uow, "till-j")
        uow.commit()
    with shop.uow() as uow:  # committed, then left open: gone at the end
        _driver_insert_till(uow, "till-k")
        uow.commit()
        _driver_insert_till(uow, "till-l")
    with shop.uow(read_only=True) as uow:
        assert uow.driver()[1] is reader  # a new snapshot on the parked reader: it sees till-k
        assert _till(uow, "till-i") is None and _till(uow, "till-l") is None
        assert _till(uow, "till-j").name == "till-j" and _till(uow, "till-k").name == "till-k"
    assert _pools_idle(app)
    assert (len(db.parked_writer), len(db.parked_readers)) == (1, 1)  # (on PostgreSQL one parking for both)
    db.dispose()  # the parked connections go back to their pools first
    assert (len(db.parked_writer), len(db.parked_readers)) == (0, 0)
    assert db.writer.pool.checkedout() == 0 and db.reader.pool.checkedout() == 0


def test_parking_keeps_no_more_connections_than_its_limit():
    from pos_loyalty.persistence.db import Parking

    class Fairy:
        closed = False

        def close(self):
            self.closed = True

    parking = Parking(2)
    fairies = [Fairy() for _ in range(3)]
    assert [parking.leave(f) for f in fairies] == [True, True, False]  # the third goes back to the pool
    assert parking.take() is fairies[1] and len(parking) == 1
    parking.empty()
    assert parking.take() is None and fairies[0].closed and not fairies[2].closed


def test_reads_that_need_no_common_snapshot_run_without_a_transaction_on_postgresql(app, shop):
    """The cashier screen's card lookup is six reads. On PostgreSQL (READ COMMITTED: each
    statement has a snapshot of its own in any case) they run in autocommit, without the BEGIN and
    ROLLBACK round trips; on SQLite they keep their one snapshot, which costs no round trip."""
    with shop.uow() as uow:
        _add_till(uow, "till-m")
        uow.commit()
    db = app.extensions["pos_loyalty"].db
    with shop.uow(read_only=True, one_snapshot=False) as uow:
        assert _till(uow, "till-m").name == "till-m"
        assert _till(uow, "till-n") is None
        used = uow.driver()[1]
        if db.is_sqlite:
            assert used.in_transaction  # one snapshot for all its reads
        else:
            assert used.autocommit is True and used.info.transaction_status == 0  # idle: no BEGIN was sent
    if not db.is_sqlite:
        assert used.autocommit is False  # back as every other pooled connection
    with pytest.raises(ValueError):
        shop.uow(one_snapshot=False)  # a writer's reads and writes are one transaction
    assert _pools_idle(app)


def test_writes_sent_in_one_trip_keep_their_order_and_a_duplicate_is_a_409_that_keeps_nothing(app, api, shop):
    """``in_one_trip`` (one round trip on PostgreSQL): a unique key refused anywhere in the
    block is the shop's ``DuplicateKey`` at its end, as it would be at the statement, and the unit
    of work keeps none of the block's writes."""
    from pos_loyalty.domain.errors import DuplicateKey
    from pos_loyalty.persistence import models as m
    from pos_loyalty.persistence.repositories import _INSERT_TRANSACTION
    from tests.support.factories import line, sale

    first = api.post("/transactions", json=sale(line("COF", 900))).get_json()
    with shop.uow(read_only=True) as uow:
        row = uow.session.get(m.Transaction, first["id"])
        copy = {c.key: getattr(row, c.key) for c in m.Transaction.__table__.columns}
    fresh = {**copy, "id": "FRESH", "visit_code": "ZZZZZZZZ"}
    with shop.uow() as uow:
        with pytest.raises(DuplicateKey):
            with uow.in_one_trip():
                uow.transactions._core(_INSERT_TRANSACTION, [fresh])  # (sent, then refused with the rest)
                uow.transactions.insert(copy, [])
    assert api.get("/transactions/FRESH").status_code == 404
    with shop.uow() as uow:  # refused while the block is still sending: a read waited for answers meanwhile
        with pytest.raises(DuplicateKey):
            with uow.in_one_trip():
                uow.transactions._core(_INSERT_TRANSACTION, [copy])
                uow.transactions.answer_of_later("FRESH").get()
                uow.transactions._core(_INSERT_TRANSACTION, [fresh])
    assert api.get("/transactions/FRESH").status_code == 404
    with shop.uow() as uow:  # and the connection is fine for the next unit of work
        with uow.in_one_trip():
            uow.transactions.insert(fresh, [])
        uow.commit()
    assert api.get("/transactions/FRESH").status_code == 200


def test_a_copy_of_a_sale_stored_meanwhile_is_answered_as_a_retry(app, api, shop, monkeypatch):
    """Two copies of an anonymous sale (no customer row to lock) both find no sale under their id;
    the second's insert is refused (on PostgreSQL when its writes' round trip comes back) and it
    answers with the first's stored answer."""
    from pos_loyalty.persistence import repositories as repos
    from tests.support.factories import line, sale

    body = sale(line("COF", 900), line("TEA", 300))
    first = api.post("/transactions", json=body)
    from pos_loyalty.later import Later

    real = repos.Transactions.answer_of_later
    missed = []

    def not_yet_the_first_time(self, transaction_id):
        if not missed:
            missed.append(transaction_id)
            return Later.done(None)  # as if the other copy had not committed yet
        return real(self, transaction_id)

    monkeypatch.setattr(repos.Transactions, "answer_of_later", not_yet_the_first_time)
    second = api.post("/transactions", json=body)
    assert missed == [body["id"]]
    assert second.status_code == 201 and second.get_json()["replayed"] is True
    assert {k: v for k, v in second.get_json().items() if k != "replayed"} == {k: v for k, v in first.get_json().items() if k != "replayed"}


def test_a_refused_token_gets_no_stored_answer_even_when_the_database_fails_first(app, api, shop, monkeypatch):
    """The sale's unit of work fails before its token is read (SQLite busy past its timeout,
    PostgreSQL gone): the retry path looks for what is stored under the id, and answers only a
    till whose token it checks there. A refused one gets the failure, and through HTTP the 401."""
    from pos_loyalty.api.schemas import SaleSchema
    from pos_loyalty.api.till import _sale_request
    from pos_loyalty.persistence.uow import DatabaseBusy, SqlUnitOfWork
    from pos_loyalty.services.transactions import record_sale
    from tests.support.factories import line, sale

    known = sale(line("COF", 900))
    assert api.post("/transactions", json=known).status_code == 201
    real = SqlUnitOfWork._begin_on_driver

    def writers_are_busy(self):
        if not self.read_only:
            raise DatabaseBusy("the database is busy; try again")
        return real(self)

    monkeypatch.setattr(SqlUnitOfWork, "_begin_on_driver", writers_are_busy)
    with pytest.raises(DatabaseBusy):
        record_sale(shop, _sale_request(SaleSchema().load(known)), till_token="nope")
    answer = api.post("/transactions", json=known, headers={"Authorization": "Bearer nope"})
    assert answer.status_code == 401 and known["id"] not in answer.get_data(as_text=True)
    retried = api.post("/transactions", json=known)  # the till that holds its token: its stored answer, as before
    assert retried.status_code == 201 and retried.get_json()["replayed"] is True
