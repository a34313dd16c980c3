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
