"""The ``pos-loyalty`` command as the person setting up a till runs it: a real process each time.

``init`` creates or upgrades the database and may be run again; settings that cannot work stop
it with one sentence; ``serve`` runs the service under waitress until it is told to stop;
``demo`` fills an empty database with a believable shop and prints how to log in.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from pos_loyalty import __version__
from pos_loyalty.app import build_services, create_app
from pos_loyalty.config import load_settings
from pos_loyalty.domain.ledger import in_birthday_week
from pos_loyalty.persistence.db import normalise_url
from pos_loyalty.persistence.migrate import head_revision
from pos_loyalty.persistence.models import Base
from pos_loyalty.persistence.setup_lock import init_lock
from pos_loyalty.services.access import add_till, verify_password
from pos_loyalty.services.programme import get_programme
from tests.conftest import IN_CI, PG_ADMIN_URL

EXE = Path(sys.executable).with_name("pos-loyalty")
COMMAND = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "pos_loyalty.cli"]
PROCESS_TIMEOUT = 120  # generous: a busy CI machine; a healthy run takes a few seconds


def till_env(data_dir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POS_LOYALTY_")}
    env.update({"POS_LOYALTY_DATA_DIR": str(data_dir), "XDG_DATA_HOME": str(data_dir.parent)})
    env.update({f"POS_LOYALTY_{k.upper()}": v for k, v in settings.items()})
    return env


def cli(env: dict[str, str], *args: str, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COMMAND, *args], env=env, input=stdin, capture_output=True, text=True, timeout=PROCESS_TIMEOUT, cwd=cwd
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess) -> str:
    """The one clear line a refused command prints (and no traceback)."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def snapshot(url: str) -> dict:
    """Everything `init` could change: the schema (with triggers), the revision and every row."""
    engine = create_engine(normalise_url(url))
    try:
        insp = inspect(engine)
        schema = {}
        for table in sorted(insp.get_table_names()):
            schema[table] = {
                "columns": [(c["name"], str(c["type"]), c["nullable"], c.get("default")) for c in insp.get_columns(table)],
                "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(table)),
                "unique": sorted((u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(table)),
                "foreign_keys": sorted((f["name"], tuple(f["constrained_columns"]), f["referred_table"]) for f in insp.get_foreign_keys(table)),
            }
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                triggers = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name")).all()
            else:
                triggers = conn.execute(text(
                    "SELECT trigger_name, event_manipulation, action_statement FROM information_schema.triggers "
                    "ORDER BY 1, 2"
                )).all()
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
            rows = {
                t.name: [tuple(map(str, r)) for r in conn.execute(t.select().order_by(*t.primary_key.columns))]
                for t in Base.metadata.sorted_tables
            }
        return {"schema": schema, "triggers": [tuple(t) for t in triggers], "revision": revision, "rows": rows}
    finally:
        engine.dispose()


# -- init ------------------------------------------------------------------------------------------


def add_a_till(data_dir: Path, url: str) -> None:
    services = build_services(load_settings({"data_dir": data_dir, "database_url": url}))
    try:
        add_till(services.shop, "till-1")
    finally:
        services.db.dispose()


def summaries_current(data_dir: Path, url: str) -> bool:
    from pos_loyalty.services.reports import refresh_summaries

    services = build_services(load_settings({"data_dir": data_dir, "database_url": url}))
    try:
        return refresh_summaries(services.shop)["current"]
    finally:
        services.db.dispose()


def test_init_creates_the_database_and_running_it_again_changes_nothing(tmp_path):
    data_dir = tmp_path / "till"
    env = till_env(data_dir)
    first = ok(cli(env, "init"))
    assert f"data directory: {data_dir}" in first
    assert f"database: sqlite:///{data_dir / 'loyalty.db'}" in first
    assert f"database created (revision {head_revision()})" in first
    assert "report summaries current" in first  # built here, not by the first report opened during trading
    assert summaries_current(data_dir, f"sqlite:///{data_dir / 'loyalty.db'}")
    add_a_till(data_dir, f"sqlite:///{data_dir / 'loyalty.db'}")  # some data for the second run to leave alone
    before = snapshot(f"sqlite:///{data_dir / 'loyalty.db'}")
    assert before["rows"]["tills"] and before["revision"] == [head_revision()]

    again = ok(cli(env, "init"))
    assert f"schema already current (revision {head_revision()})" in again
    assert snapshot(f"sqlite:///{data_dir / 'loyalty.db'}") == before


@pytest.fixture
def throwaway_pg_url():
    """A PostgreSQL database of its own, created empty through the admin URL and dropped after."""
    name = f"pos_loyalty_cli_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        message = f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {exc.__class__.__name__}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_init_on_postgresql_creates_the_schema_and_running_it_again_changes_nothing(tmp_path, throwaway_pg_url):
    env = till_env(tmp_path / "till", database_url=throwaway_pg_url)
    first = ok(cli(env, "init"))
    assert f"database created (revision {head_revision()})" in first
    assert summaries_current(tmp_path / "till", throwaway_pg_url)
    add_a_till(tmp_path / "till", throwaway_pg_url)
    before = snapshot(throwaway_pg_url)
    assert before["rows"]["tills"] and before["triggers"]

    again = ok(cli(env, "init"))
    assert f"schema already current (revision {head_revision()})" in again
    assert snapshot(throwaway_pg_url) == before


def _programme_versions(url: str) -> list[str]:
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(text("SELECT created_by FROM programme_versions ORDER BY id"))]
    finally:
        engine.dispose()


def _tables(url: str) -> list[str]:
    engine = create_engine(normalise_url(url))
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_an_init_waits_while_another_prepares_the_database_and_then_changes_nothing_twice(tmp_path, kind, request):
    """The service file runs ``init`` before every start, so after a power cut the tills sharing a
    database all run it at once: the second waits for the first (here: the test holding the lock),
    touching nothing meanwhile, then finds the work done."""
    data_dir = tmp_path / "till"
    if kind == "sqlite":
        url = f"sqlite:///{data_dir / 'loyalty.db'}"
        env = till_env(data_dir)
    else:
        url = request.getfixturevalue("throwaway_pg_url")
        env = till_env(data_dir, database_url=url)
    engine = create_engine(normalise_url(url))
    lines: queue.Queue[str] = queue.Queue()
    try:
        with init_lock(engine):
            process = subprocess.Popen([*COMMAND, "init"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True)
            reader.start()
            seen = []
            while "waiting for it to finish" not in "".join(seen):
                seen.append(lines.get(timeout=PROCESS_TIMEOUT))
            assert "another `pos-loyalty init` is preparing this database" in seen[-1]
            assert process.poll() is None
            assert _tables(url) == []  # nothing done while it waits
        assert process.wait(timeout=PROCESS_TIMEOUT) == 0, process.stderr.read()
        reader.join(timeout=PROCESS_TIMEOUT)
        said = "".join(seen) + "".join(lines.queue)
        assert f"database created (revision {head_revision()})" in said
        assert "programme version 1 saved" in said
    finally:
        engine.dispose()
    assert _programme_versions(url) == ["pos-loyalty init"]


def test_tills_running_init_at_once_on_one_postgresql_all_start_and_store_one_first_programme(tmp_path, throwaway_pg_url):
    """Unqueued, all but one of them failed on the same CREATE TABLE (their service did not
    start), and two could each save the built-in programme as a first version."""
    processes = [
        subprocess.Popen([*COMMAND, "init"], env=till_env(tmp_path / f"till-{n}", database_url=throwaway_pg_url),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for n in range(4)
    ]
    results = [p.communicate(timeout=PROCESS_TIMEOUT) + (p.returncode,) for p in processes]
    assert [rc for _, _, rc in results] == [0, 0, 0, 0], [err for _, err, _ in results]
    said = [out for out, _, _ in results]
    assert sum(f"database created (revision {head_revision()})" in out for out in said) == 1
    assert sum(f"schema already current (revision {head_revision()})" in out for out in said) == 3
    assert _programme_versions(throwaway_pg_url) == ["pos-loyalty init"]


def test_init_leaves_no_connection_to_postgresql_open(tmp_path, throwaway_pg_url, monkeypatch):
    """Run in process (as a supervisor embedding it would): its set-up lock's connection included."""
    from click.testing import CliRunner

    from pos_loyalty.cli import main

    for key, value in till_env(tmp_path / "till", database_url=throwaway_pg_url).items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(main, ["init"], catch_exceptions=False)
    assert result.exit_code == 0 and "database created" in result.output
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            left = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"),
                                {"d": make_url(throwaway_pg_url).database}).scalar()
    finally:
        admin.dispose()
    assert left == 0


def test_a_lock_file_another_user_left_is_still_a_lock(tmp_path, monkeypatch):
    """An init once run with sudo leaves the lock file root's: the service's own user can only
    read it, and flock on a file opened for reading still queues them."""
    import fcntl

    from pos_loyalty.persistence import setup_lock

    path = tmp_path / "loyalty.db"
    (tmp_path / "loyalty.db.init-lock").write_text("")
    real_open = os.open

    def as_another_user(name, flags, *mode):
        if str(name).endswith(".init-lock") and flags & os.O_RDWR:
            raise PermissionError(13, "Permission denied", name)
        return real_open(name, flags, *mode)

    monkeypatch.setattr(setup_lock.os, "open", as_another_user)
    engine = create_engine(f"sqlite:///{path}")
    try:
        with setup_lock.init_lock(engine):
            other = real_open(str(tmp_path / "loyalty.db.init-lock"), os.O_RDONLY)
            try:
                with pytest.raises(BlockingIOError):
                    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held
            finally:
                os.close(other)
    finally:
        engine.dispose()


# -- settings that cannot work ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, toml, says",
    [
        ({"port": "99999"}, None, "Error: The port must be between 1 and 65535"),
        ({"timezone": "Europe/Atlantis"}, None, "Error: The time zone 'Europe/Atlantis' is unknown"),
        ({}, "colour = 'blue'\n", "has an unknown setting 'colour'"),
        ({"database_url": "mysql://till:s3cret@db/store"}, None, "mysql://till:***@db/store is not supported"),
        ({}, "port = \n", "is not valid TOML"),
    ],
    ids=["bad port", "unknown timezone", "unknown key in the file", "unsupported database", "invalid TOML"],
)
def test_settings_that_cannot_work_stop_the_command_with_one_sentence(tmp_path, settings, toml, says):
    data_dir = tmp_path / "till"
    env = till_env(data_dir, **settings)
    args = ["init"]
    if toml is not None:
        (tmp_path / "till.toml").write_text(toml)
        args = ["--config", str(tmp_path / "till.toml"), "init"]
    result = cli(env, *args)
    line = refused(result)
    assert says in line
    assert "s3cret" not in result.stdout + result.stderr
    assert not (data_dir / "loyalty.db").exists()


def test_a_settings_file_named_by_POS_LOYALTY_CONFIG_is_used(tmp_path):
    (tmp_path / "till.toml").write_text(f'[pos_loyalty]\ndata_dir = "{tmp_path / "from-file"}"\n')
    env = till_env(tmp_path / "till")
    del env["POS_LOYALTY_DATA_DIR"]
    env["POS_LOYALTY_CONFIG"] = str(tmp_path / "till.toml")
    assert f"data directory: {tmp_path / 'from-file'}" in ok(cli(env, "init"))
    assert (tmp_path / "from-file" / "loyalty.db").exists()


# -- serve -----------------------------------------------------------------------------------------


class Running:
    """A started ``pos-loyalty serve``: its output lines arrive on queues, read by two threads."""

    def __init__(self, env: dict[str, str], *args: str, cwd: Path | None = None) -> None:
        self.process = subprocess.Popen(
            [*COMMAND, "serve", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd
        )
        self.stdout: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self.readers = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self.stdout.put, None), daemon=True),
            threading.Thread(target=self._pump, args=(self.process.stderr, self.stderr.append, ""), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _pump(stream, put, end) -> None:
        for line in stream:
            put(line)
        put(end)

    def wait_for_line(self, pattern: str) -> re.Match:
        seen = []
        while True:
            try:
                line = self.stdout.get(timeout=PROCESS_TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} within {PROCESS_TIMEOUT}s; saw {seen}") from None
            if line is None:
                raise AssertionError(f"the server ended before printing {pattern!r}; saw {seen}; {''.join(self.stderr)}")
            seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def stop(self) -> tuple[int, str, str]:
        """SIGTERM, then everything it printed after the lines already read."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=PROCESS_TIMEOUT)
        for reader in self.readers:
            reader.join(timeout=PROCESS_TIMEOUT)
        rest = []
        while (line := self.stdout.get_nowait()) is not None:
            rest.append(line)
        return code, "".join(rest), "".join(self.stderr)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=PROCESS_TIMEOUT)


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=PROCESS_TIMEOUT) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def where_the_data_is(tmp_path: Path, database: str, request) -> tuple[dict[str, str], list[str], str | None]:
    """A till's environment, the two lines naming its data that start-up must print, and the
    password that must never be printed."""
    if database == "sqlite, the data directory given relative":
        env = till_env(tmp_path / "till")
        env["POS_LOYALTY_DATA_DIR"] = "till"  # as `make run` gives var/demo; the commands run in tmp_path
        return env, [f"data directory: {tmp_path / 'till'}", f"database: sqlite:///{tmp_path / 'till' / 'loyalty.db'}"], None
    url = make_url(request.getfixturevalue("throwaway_pg_url"))
    if url.password is None:
        url = url.set(password="s3cret-trust-ignores")  # the suite's server trusts 127.0.0.1: any password is let in
    env = till_env(tmp_path / "till", database_url=url.render_as_string(hide_password=False))
    masked = url.render_as_string(hide_password=True)  # SQLAlchemy's own masking: user:***@host
    return env, [f"data directory: {tmp_path / 'till'}", f"database: {masked}"], url.password


@pytest.mark.parametrize("database", ["sqlite, the data directory given relative", "postgresql, the URL with a password"])
def test_serve_prints_where_the_data_is_answers_on_the_port_it_prints_logs_requests_without_card_numbers_and_stops_on_sigterm(
    tmp_path, database, request
):
    env, data_lines, password = where_the_data_is(tmp_path, database, request)
    ok(cli(env, "init", cwd=tmp_path))
    server = Running(env, "--port", "0", cwd=tmp_path)
    try:
        for line in data_lines:
            server.wait_for_line("^" + re.escape(line) + "$")
        found = server.wait_for_line(r"API: (http://127\.0\.0\.1:(\d+))/api/v1/")
        base, port = found.group(1), int(found.group(2))
        assert port != 0

        status, health = get(base + "/api/v1/health")
        assert status == 200
        assert health["version"] == __version__
        assert health["database"]["reachable"] is True
        assert health["schema"]["revision"] == head_revision()
        assert password is None or password not in json.dumps(health)

        status, _ = get(base + "/api/v1/cards/2712345678905")  # no till token: refused, but logged
        assert status == 401
        code, stdout, stderr = server.stop()
    finally:
        server.kill()
    assert code == 0, stderr
    assert stdout.strip().splitlines()[-1] == "stopped"
    assert "Traceback" not in stderr
    assert re.search(r"GET /api/v1/health 200 ", stderr)
    assert re.search(r"GET /api/v1/cards/\*{9}8905 401 ", stderr)
    assert "2712345678905" not in stderr
    assert password is None or password not in stdout + stderr
    assert (tmp_path / "till" / "secret_key").exists()  # the directory printed is the one in use


def test_start_up_names_the_data_directory_and_the_database_file_by_absolute_paths_and_masks_the_password(
    tmp_path, monkeypatch
):
    from pos_loyalty.cli.server import describe

    monkeypatch.chdir(tmp_path)
    demo = load_settings({"data_dir": "var/demo"}, environ={})
    assert describe(demo) == f"data directory: {tmp_path / 'var' / 'demo'}\ndatabase: sqlite:///{tmp_path / 'var' / 'demo' / 'loyalty.db'}"
    own_file = load_settings({"data_dir": "var/demo", "database_url": "sqlite:///shop.db?timeout=20"}, environ={})
    assert describe(own_file).splitlines()[1] == f"database: sqlite:///{tmp_path / 'shop.db'}?timeout=20"
    absolute = load_settings({"data_dir": tmp_path / "till", "database_url": f"sqlite:///{tmp_path / 'shop.db'}"}, environ={})
    assert describe(absolute) == f"data directory: {tmp_path / 'till'}\ndatabase: sqlite:///{tmp_path / 'shop.db'}"
    store = load_settings({"data_dir": "till", "database_url": "postgresql://till:s3cret@db.example:5432/store"}, environ={})
    assert describe(store) == f"data directory: {tmp_path / 'till'}\ndatabase: postgresql://till:***@db.example:5432/store"


def test_serve_refuses_to_start_on_a_database_that_was_not_initialised(tmp_path):
    line = refused(cli(till_env(tmp_path / "till"), "serve", "--port", "0"))
    assert "run `pos-loyalty init` first" in line


def test_serve_refuses_to_start_when_the_database_cannot_be_reached(tmp_path):
    result = cli(till_env(tmp_path / "till", database_url="postgresql://till:s3cret@127.0.0.1:1/store"), "serve", "--port", "0")
    assert "could not open the database" in refused(result)
    assert "database: postgresql://till:***@127.0.0.1:1/store" in result.stdout
    assert "s3cret" not in result.stdout + result.stderr


def test_serve_refuses_a_database_whose_schema_is_behind_and_names_both_revisions(tmp_path):
    env = till_env(tmp_path / "till")
    ok(cli(env, "init"))
    engine = create_engine(f"sqlite:///{tmp_path / 'till' / 'loyalty.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    finally:
        engine.dispose()
    line = refused(cli(env, "serve", "--port", "0"))
    assert f"the database schema is at revision 0001, not {head_revision()}" in line
    assert "run `pos-loyalty init` first" in line


def test_the_start_up_schema_check_reads_the_revisions_alembic_does(database_url, tmp_path):
    """``serve`` and the health check read the schema's revision without loading Alembic."""
    from pos_loyalty.persistence import revision as service
    from pos_loyalty.persistence import migrate

    assert service.head_revision() == migrate.head_revision()
    migrated = create_engine(normalise_url(database_url))
    empty = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert service.current_revision(migrated) == migrate.current_revision(migrated) == head_revision()
        assert service.current_revision(empty) is None and migrate.current_revision(empty) is None
    finally:
        migrated.dispose()
        empty.dispose()


# -- demo ------------------------------------------------------------------------------------------


def shop_contents(url: str) -> dict:
    """What `demo --if-empty` must leave alone: the rows of every table and every balance."""
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            counts = {t.name: conn.execute(text(f'SELECT count(*) FROM "{t.name}"')).scalar() for t in Base.metadata.sorted_tables}
            balances = conn.execute(text("SELECT id, balance FROM customers ORDER BY id")).all()
        return {"counts": counts, "balances": balances}
    finally:
        engine.dispose()


def test_demo_fills_an_empty_database_prints_the_logins_and_only_ever_does_it_once(tmp_path):
    data_dir = tmp_path / "till"
    env = till_env(data_dir)
    url = f"sqlite:///{data_dir / 'loyalty.db'}"
    ok(cli(env, "init"))

    printed = ok(cli(env, "demo"))
    logins = dict(re.findall(r"^\s+(manager|cashier)\s+password: (\S+)$", printed, re.MULTILINE))
    assert set(logins) == {"manager", "cashier"}
    token = printed.strip().splitlines()[-1].strip()
    assert "bearer token" in printed.strip().splitlines()[-2]

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            q = lambda sql: conn.execute(text(sql)).all()  # noqa: E731
            customers = q("SELECT name, preferred_name, language, birthday, preferences FROM customers")
            assert 200 <= len(customers) <= 500
            assert q(
                "SELECT c.id FROM customers c WHERE c.balance != "
                "(SELECT coalesce(sum(points), 0) FROM ledger_entries l WHERE l.customer_id = c.id)"
            ) == []
            assert any(not name.isascii() for name, *_ in customers)
            assert sum(1 for c in customers if c.preferred_name) >= 5
            assert {c.language for c in customers} == {"en", "de"}
            birthdays = [dt.date.fromisoformat(c.birthday) for c in customers if c.birthday]
            assert sum(in_birthday_week(dt.date.today(), b, 3) for b in birthdays) >= 3
            preferences = set().union(*(json.loads(c.preferences) for c in customers))
            assert {"allergies", "dietary", "packaging", "service_notes"} <= preferences
            users = dict(q("SELECT username, password_hash FROM users"))
            assert all(verify_password(users[name], password) for name, password in logins.items())
            assert len(q("SELECT id FROM tills")) == 1
            kinds = dict(q("SELECT kind, count(*) FROM transactions GROUP BY kind"))
            assert kinds["sale"] >= 500 and kinds["return"] >= 3
            first, last = q("SELECT min(occurred_at), max(occurred_at) FROM transactions WHERE kind = 'sale'")[0]
            assert dt.datetime.fromisoformat(last) - dt.datetime.fromisoformat(first) >= dt.timedelta(days=360)  # a year of purchases
            assert q("SELECT count(*) FROM transaction_lines WHERE quantity_milli % 1000 != 0")[0][0] > 0  # weighed
            assert q("SELECT sum(points) FROM transaction_lines WHERE category = 'tobacco'")[0][0] == 0
            assert q("SELECT count(*) FROM redemptions")[0][0] > 0
            assert 4 <= q("SELECT count(*) FROM rewards")[0][0] <= 6
            unhappy_card = q(
                "SELECT c.number FROM cards c JOIN follow_ups f ON f.customer_id = c.customer_id "
                "WHERE f.resolved_at IS NULL ORDER BY c.number LIMIT 1"
            )[0][0]
            assert q("SELECT count(*) FROM feedback WHERE satisfaction <= 2")[0][0] >= 1
            causes = {cause for (cause,) in q("SELECT DISTINCT cause FROM ledger_entries")}
            assert {"sale", "welcome", "birthday", "return", "expiry"} <= causes
    finally:
        engine.dispose()

    app = create_app({"data_dir": data_dir, "testing": True, "run_daily_expiry": False})
    try:
        scan = app.test_client().get(f"/api/v1/cards/{unhappy_card}", headers={"Authorization": f"Bearer {token}"})
        assert scan.status_code == 200, scan.get_json()
        assert scan.get_json()["open_follow_ups"]  # the cashier sees the open complaint
        rules = get_programme(app.extensions["pos_loyalty"].shop)
        assert [t.name for t in rules.tiers] == ["Bronze", "Silver", "Gold"]
        assert rules.welcome_bonus and rules.birthday_bonus and rules.expiry_months == 12
        assert "tobacco" in rules.excluded_categories and rules.category_multipliers
        assert any(p.starts_on > dt.date.today() - dt.timedelta(days=366) for p in rules.promotions)
    finally:
        app.extensions["pos_loyalty"].db.dispose()

    before = shop_contents(url)
    assert "no demo data added" in ok(cli(env, "demo", "--if-empty"))
    assert shop_contents(url) == before

    line = refused(cli(env, "demo"))
    assert "the database already holds shop data" in line and "only fills an empty database" in line
    assert shop_contents(url) == before


def test_a_small_demo_shop_keeps_the_ledger_and_the_balances_in_step_on_either_database(shop, clock):
    from pos_loyalty.demo import build_demo_shop
    from pos_loyalty.domain.errors import Conflict

    made = build_demo_shop(shop, customers=20, days=120)
    assert made.customers == 20 and made.sales > 20
    assert shop.clock is clock  # the shop's own clock is back
    with shop.uow(read_only=True) as uow:
        customers = list(uow.customers.all())
        assert len(customers) == 20
        for customer in customers:
            assert uow.ledger.sum_for(customer.id) == customer.balance, customer.name
            assert customer.created_at <= clock.now
    with pytest.raises(Conflict, match="already holds shop data"):
        build_demo_shop(shop, customers=5, days=10)


def test_the_same_seed_plans_the_same_demo_customers():
    import random

    from pos_loyalty.demo import _DemoMaker
    from pos_loyalty.services.context import Shop

    def planned(seed: int) -> list[dict]:
        end = dt.datetime(2026, 6, 15, tzinfo=dt.timezone.utc)
        maker = _DemoMaker(Shop(uow=None), random.Random(seed), end - dt.timedelta(days=365), end, print)
        return [maker.make_shopper(i).profile for i in range(30)]

    assert planned(7) == planned(7) != planned(8)
