"""SQLite's WAL checkpoints run on a thread of their own, never inside a till's commit.

By default the commit that takes the WAL past 1,000 pages copies it back into the database file
itself, and that one checkout waits 1-100 ms for it. The server hands checkpoints to a
``WalCheckpointer`` thread instead (``pos-loyalty serve`` starts it).
"""
from __future__ import annotations

import queue

import pytest

from tests.support.factories import enrol, line, sale

ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@ON_SQLITE
def test_the_servers_commits_never_checkpoint_and_the_checkpointer_copies_the_wal_back(app, api, database_url):
    db = app.extensions["pos_loyalty"].db
    results: queue.Queue = queue.Queue()
    checkpointer = db.start_background_checkpoints(interval=3600, on_run=results.put)  # runs only when stopped, below
    try:
        with db.writer.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        anna = enrol(api)
        for n in range(40):
            assert api.post("/transactions", json=sale(line("COF", 250 + n), card=anna["card"])).status_code == 201
    finally:
        checkpointer.stop()  # its last round, at the stop
    busy, frames, copied = results.get(timeout=30)
    assert busy == 0 and frames > 0 and copied == frames  # everything the sales wrote, copied by the thread
    assert api.get(f"/cards/{anna['card']}").get_json()["balance"] > 0


@ON_SQLITE
def test_the_checkpointer_keeps_running_on_its_interval(app, database_url):
    db = app.extensions["pos_loyalty"].db
    results: queue.Queue = queue.Queue()
    checkpointer = db.start_background_checkpoints(interval=0.01, on_run=results.put)
    try:
        for _ in range(3):  # three rounds on its own, without being stopped
            assert results.get(timeout=30)[0] == 0
    finally:
        checkpointer.stop()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_needs_no_checkpointer(app, database_url):
    assert app.extensions["pos_loyalty"].db.start_background_checkpoints() is None
