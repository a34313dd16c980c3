"""``pos-loyalty backup``: a copy of a till's SQLite database taken while it sells, whole and
consistent (every committed sale, nothing half-written), that a till can be restored from."""
from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pos_loyalty.app import create_app
from pos_loyalty.persistence.migrate import head_revision
from pos_loyalty.services.access import add_till
from tests.support.factories import enrol, line, sale

EXE = Path(sys.executable).with_name("pos-loyalty")
COMMAND = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "pos_loyalty.cli"]


def run(data_dir: Path, *args: str, **settings: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POS_LOYALTY_")}
    env.update({"POS_LOYALTY_DATA_DIR": str(data_dir), "XDG_DATA_HOME": str(data_dir.parent)})
    env.update({f"POS_LOYALTY_{k.upper()}": v for k, v in settings.items()})
    return subprocess.run([*COMMAND, *args], env=env, capture_output=True, text=True, timeout=120)


class Till:
    """A till's service in process, on its own data directory, with a till token."""

    def __init__(self, data_dir: Path) -> None:
        assert run(data_dir, "init").returncode == 0
        self.app = create_app({"data_dir": data_dir, "testing": True, "run_daily_expiry": False})
        self.shop = self.app.extensions["pos_loyalty"].shop
        self.headers = {"Authorization": f"Bearer {add_till(self.shop, 'till-1')[1]}"}
        self.client = self.app.test_client()

    def post(self, path, json):
        return self.client.post(f"/api/v1{path}", json=json, headers=self.headers)

    def get(self, path):
        return self.client.get(f"/api/v1{path}", headers=self.headers)

    def close(self):
        self.app.extensions["pos_loyalty"].db.dispose()


@pytest.fixture
def till(tmp_path):
    t = Till(tmp_path / "till")
    yield t
    t.close()


class _Api:  # the factories' view of a till
    def __init__(self, till: Till) -> None:
        self.till = till

    def post(self, path, json=None, **kw):
        return self.till.post(path, json)

    def get(self, path, **kw):
        return self.till.get(path)


def test_a_backup_taken_while_the_till_sells_holds_every_committed_sale_and_a_till_restores_from_it(till, tmp_path):
    api = _Api(till)
    anna = enrol(api)
    for n in range(3):
        assert till.post("/transactions", sale(line("COF", 1000), card=anna["card"], id=f"S{n}")).status_code == 201
    balance = till.get(f"/cards/{anna['card']}").get_json()["balance"]
    assert balance == 30

    # another sale is being written at this moment: its transaction is open, not committed
    database = tmp_path / "till" / "loyalty.db"
    (tmp_path / "copies").mkdir()
    writer = sqlite3.connect(database, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE customers SET balance = balance + 1000 WHERE id = ?", (anna["id"],))
    try:
        result = run(tmp_path / "till", "backup", str(tmp_path / "copies" / "monday.db"))
    finally:
        writer.execute("COMMIT")  # the till goes on: its sale commits after the backup's moment
        writer.close()
    assert result.returncode == 0, result.stderr
    copy = tmp_path / "copies" / "monday.db"
    assert f"backup written: {copy}" in result.stdout
    assert f"schema {head_revision()}; 1 customers, 3 transactions" in result.stdout
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600  # customers' data: its owner's eyes only
    assert sorted(p.name for p in copy.parent.iterdir()) == ["monday.db"]  # one whole file, nothing beside it
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("SELECT balance FROM customers").fetchone()[0] == 30  # not the half-written sale

    # the till's disk died: a new data directory, the copy as its database
    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copyfile(copy, restored / "loyalty.db")
    assert f"schema already current (revision {head_revision()})" in run(restored, "init").stdout
    again = create_app({"data_dir": restored, "testing": True, "run_daily_expiry": False})
    try:
        shop = again.extensions["pos_loyalty"].shop
        headers = {"Authorization": f"Bearer {add_till(shop, 'till-2')[1]}"}
        client = again.test_client()
        assert client.get(f"/api/v1/cards/{anna['card']}", headers=headers).get_json()["balance"] == 30
        retry = client.post("/api/v1/transactions", json=sale(line("COF", 1000), card=anna["card"], id="S2"), headers=headers)
        assert retry.get_json()["replayed"] is True  # a till's retry of a sale in the copy is still answered once
    finally:
        again.extensions["pos_loyalty"].db.dispose()


def test_a_backup_never_replaces_a_file_unasked_nor_leaves_half_a_copy(till, tmp_path):
    target = tmp_path / "monday.db"
    target.write_bytes(b"last week's backup")
    refused = run(tmp_path / "till", "backup", str(target))
    assert refused.returncode == 1 and "exists already" in refused.stderr
    assert target.read_bytes() == b"last week's backup"
    assert run(tmp_path / "till", "backup", str(target), "--force").returncode == 0
    assert sqlite3.connect(target).execute("PRAGMA quick_check").fetchone()[0] == "ok"

    nowhere = run(tmp_path / "till", "backup", str(tmp_path / "no-such-dir" / "x.db"))
    assert nowhere.returncode == 1 and "cannot write" in nowhere.stderr and "Traceback" not in nowhere.stderr
    itself = run(tmp_path / "till", "backup", str(tmp_path / "till" / "loyalty.db"), "--force")
    assert itself.returncode == 1 and "cannot be the database itself" in itself.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no partial copy left


def test_a_till_on_the_store_s_postgresql_is_told_to_use_pg_dump(tmp_path):
    result = run(tmp_path / "till", "backup", str(tmp_path / "x.db"),
                 database_url="postgresql://postgres@127.0.0.1:5432/store")
    assert result.returncode == 1
    assert "pg_dump --format=custom --file=loyalty.dump store" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_every_copy_taken_while_writers_and_the_checkpointer_run_is_one_moment_of_the_database(tmp_path):
    """Accounts that a writer moves money between, one committed transfer at a time, while the WAL
    is copied back into the file every millisecond: every copy passes SQLite's full integrity
    check and shows the total every committed moment had."""
    import threading

    from pos_loyalty.persistence.backup import backup_sqlite
    from pos_loyalty.persistence.db import WalCheckpointer

    ACCOUNTS, COPIES = 4000, 12  # (12 MB: a copy takes long enough for transfers and checkpoints to land meanwhile)
    source = tmp_path / "shop.db"
    with sqlite3.connect(source) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL, padding BLOB)")
        conn.executemany("INSERT INTO accounts VALUES (?, ?, randomblob(3000))", [(n, 1000) for n in range(ACCOUNTS)])
    stop, transfers = threading.Event(), threading.Event()

    def write():
        conn = sqlite3.connect(source, isolation_level=None, timeout=10)
        conn.execute("PRAGMA wal_autocheckpoint=0")
        n = 0
        while not stop.is_set():
            a, b = n % ACCOUNTS, (n * 7 + 1) % ACCOUNTS
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE accounts SET amount = amount - 3, padding = randomblob(3000) WHERE id = ?", (a,))
            conn.execute("UPDATE accounts SET amount = amount + 3, padding = randomblob(3000) WHERE id = ?", (b,))
            conn.execute("COMMIT")
            n += 1
            if n == 200:
                transfers.set()
        conn.close()

    writer = threading.Thread(target=write, daemon=True)
    checkpoints = WalCheckpointer(str(source), interval=0.001)
    writer.start()
    checkpoints.start()
    try:
        assert transfers.wait(timeout=60)
        for n in range(COPIES):
            made = backup_sqlite(str(source), tmp_path / f"copy-{n}.db")
            with sqlite3.connect(made.path) as copy:
                assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                assert copy.execute("SELECT sum(amount), count(*) FROM accounts").fetchone() == (1000 * ACCOUNTS, ACCOUNTS)
    finally:
        stop.set()
        writer.join(timeout=30)
        checkpoints.stop()


def test_two_backups_to_one_name_at_once_do_not_mix_the_second_is_refused(till, tmp_path):
    import fcntl

    partial = tmp_path / ".monday.db.partial"
    fd = os.open(partial, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a backup to monday.db is being written
        second = run(tmp_path / "till", "backup", str(tmp_path / "monday.db"))
        assert second.returncode == 1 and "another backup to" in second.stderr and "is running" in second.stderr
        assert partial.exists()  # the first one's file, left alone
    finally:
        os.close(fd)
    assert not (tmp_path / "monday.db").exists()


def test_a_backup_is_refused_onto_the_files_sqlite_keeps_beside_the_database_or_as_another_user(till, tmp_path, monkeypatch):
    from pos_loyalty.persistence.backup import BackupRefused, backup_sqlite

    database = tmp_path / "till" / "loyalty.db"
    for beside in ("loyalty.db-wal", "loyalty.db-shm"):
        refused = run(tmp_path / "till", "backup", str(tmp_path / "till" / beside), "--force")
        assert refused.returncode == 1 and "nor a file SQLite keeps beside it" in refused.stderr
    monkeypatch.setattr(os, "geteuid", lambda: database.stat().st_uid + 4242)  # neither root nor the owner
    with pytest.raises(BackupRefused, match="run the backup as the user the service runs as"):
        backup_sqlite(str(database), tmp_path / "x.db")
    assert not (tmp_path / "x.db").exists()
