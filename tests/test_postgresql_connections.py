"""Several tills share one PostgreSQL database, over a network that can fail and a server that can
restart. A unit of work keeps its connection parked for the next one: used again at once without
the pool's ping (a round trip), but pinged once it has sat unused for a moment. A connection the
server dropped costs the till one "try again", never a sale: the checkout goes through on a fresh
connection, and nothing is recorded twice.
"""
from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine, text

from pos_loyalty.persistence.db import PG_PARKED_FRESH_FOR
from pos_loyalty.persistence.uow import DatabaseUnreachable
from tests.support.factories import enrol, line, sale

ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _db(app):
    return app.extensions["pos_loyalty"].db


def _count_pings(monkeypatch, db) -> list:
    pings: list = []
    ping = db.writer.dialect.do_ping

    def counted(dbapi_connection):
        pings.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(db.writer.dialect, "do_ping", counted)
    return pings


def _drop_connections(database_url: str) -> int:
    """What a PostgreSQL restart (or a dropped network) does to the service's connections."""
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return len(conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).all())
    finally:
        admin.dispose()


@ON_POSTGRESQL
def test_a_parked_connection_is_used_again_without_a_ping_only_for_a_moment(app, shop, monkeypatch):
    db = _db(app)
    now = [1000.0]
    monkeypatch.setattr(db.parked_writer, "clock", lambda: now[0])
    with shop.uow(read_only=True, one_read=True) as uow:  # a till-token check: from the pool, pinged
        first = uow.driver()[1]
    pings = _count_pings(monkeypatch, db)
    now[0] += PG_PARKED_FRESH_FOR - 0.1
    with shop.uow() as uow:  # the sale, straight after: the same connection, no round trip to ask
        assert uow.driver()[1] is first
    assert pings == []
    now[0] += PG_PARKED_FRESH_FOR + 0.1
    with shop.uow(read_only=True) as uow:  # the next customer, a while later: back through the pool's ping
        assert uow.driver()[1] is first
    assert pings == [first]
    assert db.writer.pool.checkedout() == len(db.parked_writer) == 1


@ON_POSTGRESQL
def test_a_unit_of_work_on_a_dropped_connection_says_try_again_and_the_next_one_works(app, shop, database_url):
    db = _db(app)
    with shop.uow() as uow:
        uow.tills.add("till-x", "hash-x")  # (through the session: its connection goes back to the pool)
        uow.commit()
    with shop.uow(read_only=True) as uow:  # (a prepared read: its connection is parked)
        uow.tills.active_by_token_hash("hash-x")
    assert len(db.parked_writer) == 1
    assert _drop_connections(database_url) >= 1
    with pytest.raises(DatabaseUnreachable) as refused:
        with shop.uow(read_only=True) as uow:
            uow.tills.active_by_token_hash("hash-x")
    assert refused.value.status == 503 and "try again" in refused.value.message
    assert len(db.parked_writer) == 0  # none of the dropped connections is handed out again unpinged
    with shop.uow(read_only=True) as uow:
        assert uow.tills.active_by_token_hash("hash-x").name == "till-x"
    assert db.writer.pool.checkedout() == len(db.parked_writer) == 1

    assert _drop_connections(database_url) >= 1  # and through the ORM's session (the panel's writes)
    with pytest.raises(DatabaseUnreachable):
        with shop.uow() as uow:
            uow.tills.add("till-y", "hash-y")
            uow.commit()
    with shop.uow() as uow:
        uow.tills.add("till-y", "hash-y")
        uow.commit()
    with shop.uow(read_only=True) as uow:
        assert uow.tills.active_by_token_hash("hash-y").name == "till-y"


@ON_POSTGRESQL
def test_a_till_s_first_sale_goes_through_after_postgresql_dropped_the_connections(app, api, database_url):
    """The first sale of a till's token since the service started is checked on a read of its own
    first (``CounterRoutes``): a connection dropped there is Flask's to answer, not a bare 500."""
    anna = enrol(api)
    assert api.get(f"/cards/{anna['card']}").status_code == 200  # its connection parked; no sale seen yet
    assert _drop_connections(database_url) >= 1
    after = api.post("/transactions", json=sale(line("COF", 250), card=anna["card"], id="FIRST"))
    assert after.status_code == 201, after.get_json()
    assert api.post("/transactions", json=sale(line("COF", 250), card=anna["card"], id="FIRST")).get_json()["replayed"] is True


@ON_POSTGRESQL
def test_a_checkout_goes_through_after_postgresql_dropped_the_tills_connections(app, api, database_url):
    anna = enrol(api)
    assert api.post("/transactions", json=sale(line("COF", 250), card=anna["card"], id="BEFORE")).status_code == 201
    before = api.get(f"/cards/{anna['card']}").get_json()["balance"]
    assert _drop_connections(database_url) >= 1
    answered_in_front = app.wsgi_app.answered
    after = api.post("/transactions", json=sale(line("COF", 250), card=anna["card"], id="AFTER"))
    assert after.status_code == 201, after.get_json()
    assert app.wsgi_app.answered == answered_in_front  # the fast route met the dropped connection; Flask's went on
    points = after.get_json()["points"]
    assert points["balance_before"] == before and points["balance_after"] == before + points["earned"] > before
    again = api.post("/transactions", json=sale(line("COF", 250), card=anna["card"], id="AFTER"))
    assert again.get_json()["replayed"] is True  # the till's retry: recorded once
    assert api.get(f"/cards/{anna['card']}").get_json()["balance"] == points["balance_after"]


@ON_POSTGRESQL
def test_a_connection_lost_while_committing_says_the_outcome_is_unknown(app, shop, database_url):
    """The commit was sent on a connection the server had dropped: whether it landed cannot be
    known, so the till is told to look before trying again (a sale's id makes its retry safe)."""
    with pytest.raises(DatabaseUnreachable) as lost:
        with shop.uow() as uow:
            uow.tills.add("till-z", "hash-z")
            uow.flush()
            _drop_connections(database_url)
            uow.commit()
    assert lost.value.status == 503 and "may or may not have been saved" in lost.value.message
    with shop.uow(read_only=True) as uow:  # (here it did not: the server had rolled it back)
        assert uow.tills.active_by_token_hash("hash-z") is None


@ON_POSTGRESQL
def test_work_done_before_the_connection_dropped_stands(app, shop, database_url):
    """The server drops the connection after a unit of work has read what it needed: ending it
    has nothing to undo, so its result is kept rather than turned into an error."""
    db = _db(app)
    with shop.uow() as uow:
        uow.tills.add("till-w", "hash-w")
        uow.commit()
    with shop.uow(read_only=True) as uow:
        found = uow.tills.by_name("till-w")  # (through the session)
        _drop_connections(database_url)
    assert found.name == "till-w"
    assert len(db.parked_writer) == 0 and db.writer.pool.checkedout() == 0
    with shop.uow(read_only=True) as uow:
        assert uow.tills.active_by_token_hash("hash-w").name == "till-w"


def _waits(trace: str) -> list[list[str]]:
    """libpq's trace of one connection (what went, F, and came, B, in order), cut where the till
    waited for the server: what it had sent since the last wait, statement by statement. A wait is
    a Sync, Flush or simple Query followed by the server's answer before anything more was sent;
    psycopg's own BEGIN at the start of a pipeline is answered without the till waiting for it."""
    waits, sent, asked = [], [], False
    for message in trace.splitlines():
        direction, _, kind, rest = (message.split("\t", 3) + ["", "", ""])[:4]
        kind = kind.strip()
        if direction == "B":
            if asked and sent != ["BEGIN"]:
                waits.append(sent)
            if asked:
                sent, asked = [], False
        elif direction == "F":
            if kind == "Parse":  # Parse\t "name" "statement" ...
                sent.append(rest.split('" "', 1)[1].rsplit('"', 1)[0])
            elif kind == "Query":
                sent.append(rest.strip().strip('"'))
            asked = kind in ("Sync", "Flush", "Query")
    return waits


@ON_POSTGRESQL
def test_a_checkout_sends_what_does_not_wait_on_each_other_together(app, api, shop, tmp_path):
    """In psycopg's pipeline mode a checkout sends its first reads (the till's token, a stored
    answer under the sale's id, the card's holder) together, then its next reads (the customer's
    history, the rewards, the ledger) together, then its writes (the sale, its lines, its ledger
    entries, the balance, the favourites) together, each time waiting once for the server's
    answers: three waits, then the commit's, where there were thirteen."""
    import psycopg

    anna = enrol(api)
    assert api.post("/transactions", json=sale(line("COF", 250), card=anna["card"])).status_code == 201
    with shop.uow() as uow:  # the connection parked for the next sale
        connection = uow.driver()[1]
    connection.prepare_threshold = None  # (every statement's text in the trace, not a prepared one's name)
    trace = tmp_path / "libpq.trace"
    with open(trace, "w") as out:
        connection.pgconn.trace(out.fileno())
        connection.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)
        try:
            answer = api.post("/transactions", json=sale(line("COF", 250, 2), line("TEA", 300), card=anna["card"]))
        finally:
            connection.pgconn.untrace()
    assert answer.status_code == 201 and answer.get_json()["points"]["earned"] > 0
    waits = [[" ".join(statement.split()[:3]) for statement in sent] for sent in _waits(trace.read_text())]
    assert [len(sent) for sent in waits] == [3, 3, 5, 1], waits
    first, second, writes, commit = waits
    assert first[0].startswith("SELECT tills.id") and any("cards.status" in s for s in first), first
    assert any("ledger_entries" in s for s in second) and any("rewards" in s for s in second), second
    assert [w.split(" (")[0] for w in writes] == [
        "INSERT INTO transactions", "INSERT INTO transaction_lines", "INSERT INTO ledger_entries", "UPDATE customers SET",
        "INSERT INTO customer_products"], writes
    assert commit == ["COMMIT"]


@ON_POSTGRESQL
def test_a_card_lookup_is_two_waits_on_the_server(app, api, shop, tmp_path):
    """The cashier screen's card lookup: the till's token and the card's holder together, then the
    customer's cards, ledger, the rewards, favourites and follow-ups together."""
    import psycopg

    anna = enrol(api)
    assert api.post("/transactions", json=sale(line("COF", 2500), card=anna["card"])).status_code == 201
    with shop.uow(read_only=True) as uow:  # the reader parked for the next lookup
        connection = uow.driver()[1]
    connection.prepare_threshold = None
    trace = tmp_path / "libpq.trace"
    with open(trace, "w") as out:
        connection.pgconn.trace(out.fileno())
        connection.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)
        try:
            answer = api.get(f"/cards/{anna['card']}")
        finally:
            connection.pgconn.untrace()
    assert answer.status_code == 200 and answer.get_json()["balance"] > 0 and answer.get_json()["next_expiry"]
    assert [len(sent) for sent in _waits(trace.read_text())] == [2, 5]
