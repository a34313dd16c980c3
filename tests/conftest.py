"""Fixtures: the service on a real database (SQLite and PostgreSQL), a till token, a clock.

Every test that takes ``app`` (or anything built on it) runs twice: once on a fresh SQLite file
and once on the PostgreSQL at 127.0.0.1:5432. With CI=true a PostgreSQL that cannot be reached
fails the run instead of skipping.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from pos_loyalty.app import create_app
from pos_loyalty.persistence.migrate import upgrade_to_head
from pos_loyalty.persistence.models import Base
from argon2 import PasswordHasher

from pos_loyalty.services import access
from pos_loyalty.services.access import add_till, add_user
from tests.support.staff import Staff

PG_ADMIN_URL = os.environ.get("POS_LOYALTY_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.timezone.utc)


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> str:
    """One migrated SQLite file per worker; each test gets a copy of it."""
    path = tmp_path_factory.mktemp("template") / "loyalty.db"
    engine = create_engine(f"sqlite:///{path}")
    upgrade_to_head(engine)
    engine.dispose()
    return str(path)


@pytest.fixture(scope="session")
def pg_database() -> str:
    """A fresh PostgreSQL database for this run (and worker), migrated to head."""
    name = f"pos_loyalty_test_{_worker()}_{uuid.uuid4().hex[:8]}"
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
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    engine = create_engine(url)
    upgrade_to_head(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty_pg(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))  # past the ledger's guard triggers
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path, sqlite_template) -> str:
    if request.param == "sqlite":
        target = tmp_path / "loyalty.db"
        shutil.copyfile(sqlite_template, target)
        return f"sqlite:///{target}"
    url = request.getfixturevalue("pg_database")
    _empty_pg(url)
    return url


@dataclass
class Clock:
    """The shop's clock, set by the test: no test depends on when it runs."""

    now: dt.datetime = NOW

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: Any) -> dt.datetime:
        self.now = self.now + dt.timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Tests may override this fixture to change the till's settings."""
    return {}


@pytest.fixture
def app(database_url, tmp_path, clock, settings_overrides):
    app = create_app(
        {
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "testing": True,
            "run_daily_expiry": False,
            "timezone": "Europe/Berlin",
            "currency": "EUR",
            "locale": "de_DE",
            "card_prefix": "27",
            **settings_overrides,
        }
    )
    app.extensions["pos_loyalty"].shop.clock = clock
    yield app
    app.extensions["pos_loyalty_web"].stop()
    app.extensions["pos_loyalty"].stop_devices()
    app.extensions["pos_loyalty"].db.dispose()


@pytest.fixture
def shop(app):
    return app.extensions["pos_loyalty"].shop


@pytest.fixture
def till_token(shop) -> str:
    return add_till(shop, "till-1")[1]


@dataclass
class Api:
    """The till's view of the API: JSON in, JSON out, with its bearer token."""

    client: Any
    token: str
    last: Any = field(default=None)

    def _headers(self, headers):
        return {"Authorization": f"Bearer {self.token}", **(headers or {})}

    def get(self, path, **kw):
        self.last = self.client.get("/api/v1" + path, headers=self._headers(kw.pop("headers", None)), **kw)
        return self.last

    def post(self, path, json=None, **kw):
        self.last = self.client.post("/api/v1" + path, json=json, headers=self._headers(kw.pop("headers", None)), **kw)
        return self.last

    def patch(self, path, json=None, **kw):
        self.last = self.client.patch("/api/v1" + path, json=json, headers=self._headers(kw.pop("headers", None)), **kw)
        return self.last


@pytest.fixture
def api(app, till_token) -> Api:
    return Api(app.test_client(), till_token)


@pytest.fixture(autouse=True)
def quick_password_hashing(monkeypatch):
    """argon2id at its lowest cost: the same code path, without a second of CPU per password."""
    monkeypatch.setattr(access, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def staff_logins(shop):
    add_user(shop, "anna", "anna-password", "cashier")
    add_user(shop, "mia", "mia-password", "manager")


@pytest.fixture
def cashier(app, staff_logins) -> Staff:
    staff = Staff(app.test_client())
    assert staff.sign_in("anna", "anna-password").status_code == 302
    return staff


@pytest.fixture
def manager(app, staff_logins) -> Staff:
    staff = Staff(app.test_client())
    assert staff.sign_in("mia", "mia-password").status_code == 302
    return staff
