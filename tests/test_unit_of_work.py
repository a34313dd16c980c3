"""A unit of work is one transaction, however its statements reach the database.

The counter's statements run on the driver's connection and never build a session; the ORM's
session, when a use case needs it, joins the same transaction. On both databases: what is not
committed is gone, what is committed stays, a statement after a commit is in a new transaction,
each half sees the other's writes, and every connection goes back to the pool.
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
    db = app.extensions["pos_loyalty"].db
    return db.writer.pool.checkedout() == 0 and db.reader.pool.checkedout() == 0


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
