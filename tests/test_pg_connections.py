"""PostgreSQL connections from the pool: pinged only after sitting idle, and a dead one replaced
before a till's request uses it."""
from __future__ import annotations

from sqlalchemy import text

from pos_loyalty.persistence.db import connect


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar()


def test_a_connection_that_died_while_idle_is_replaced_before_use(pg_database):
    db = connect(pg_database, ping_after_idle=0)  # every checkout after a checkin is pinged
    admin = connect(pg_database)
    try:
        first = _backend_pid(db.writer)
        with admin.writer.connect() as conn:  # the server restarts, or a firewall drops it
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first}).scalar()
        assert _backend_pid(db.writer) != first  # found dead on checkout, replaced, the query answered
    finally:
        db.dispose()
        admin.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged_again(pg_database, monkeypatch):
    db = connect(pg_database, ping_after_idle=3600)
    pings = []
    real = db.writer.dialect.do_ping
    monkeypatch.setattr(db.writer.dialect, "do_ping", lambda conn: pings.append(1) or real(conn))
    try:
        for _ in range(5):
            _backend_pid(db.writer)
        assert pings == []
    finally:
        db.dispose()
