"""What the trust tests share: a shop prepared on the test's database, and the real service on it.

``database_url`` (from ``tests/conftest.py``) gives a fresh SQLite file and the PostgreSQL at
127.0.0.1:5432. ``prepared_shop`` puts a till, a customer with points and a one-cent voucher on
it; ``serve`` starts ``pos-loyalty serve`` on it and stops it after the test.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from sqlalchemy import create_engine, text

from pos_loyalty.app import build_services
from pos_loyalty.config import load_settings
from pos_loyalty.persistence.db import normalise_url
from pos_loyalty.services.access import add_till
from pos_loyalty.services.customers import enrol_customer
from pos_loyalty.services.points import adjust_points
from tests.support.factories import reward
from tests.support.server import RunningTill, start_till, till_env

BOOTSTRAP = Path(__file__).parent / "bootstrap"


@dataclass
class PreparedShop:
    """A shop's database with one till registered, one customer holding points and a voucher."""

    database_url: str
    data_dir: Path
    token: str
    customer_id: int
    card: str
    voucher_id: int

    def env(self, **settings: str) -> dict[str, str]:
        return till_env(self.data_dir, self.database_url, **settings)

    def broken_env(self, fault: str) -> dict[str, str]:
        """The same service with a fault switched on inside it (see ``bootstrap/sitecustomize.py``)."""
        env = till_env(self.data_dir, self.database_url)
        env.update(PYTHONPATH=os.pathsep.join((str(BOOTSTRAP), env["PYTHONPATH"])), POS_LOYALTY_TEST_BREAK=fault)
        return env


def open_shop(database_url: str, data_dir: Path):
    """The services of a till on this database, as the CLI builds them (the caller disposes)."""
    return build_services(load_settings({"data_dir": data_dir, "database_url": database_url, "timezone": "Europe/Berlin"}))


def prepare_shop(database_url: str, data_dir: Path, *, points: int, voucher_cost: int = 10) -> PreparedShop:
    services = open_shop(database_url, data_dir)
    try:
        shop = services.shop
        token = add_till(shop, "till-1")[1]
        anna = enrol_customer(shop, {"name": "Anna Schmidt"})
        if points:
            adjust_points(shop, anna["id"], points, reason="opening balance", user="mia", role="manager")
        voucher = reward(shop, "One cent off", kind="amount_off", amount=1, points_cost=voucher_cost)
        return PreparedShop(database_url, data_dir, token, anna["id"], anna["cards"][0]["number"], voucher["id"])
    finally:
        services.db.dispose()


def ledger_and_balance(database_url: str, customer_id: int) -> tuple[int, int]:
    """The sum of the customer's ledger and their stored balance, read straight from the tables."""
    engine = create_engine(normalise_url(database_url))
    try:
        with engine.connect() as conn:
            ledger = conn.execute(
                text("SELECT COALESCE(SUM(points), 0) FROM ledger_entries WHERE customer_id = :id"), {"id": customer_id}
            ).scalar_one()
            balance = conn.execute(text("SELECT balance FROM customers WHERE id = :id"), {"id": customer_id}).scalar_one()
        return int(ledger), int(balance)
    finally:
        engine.dispose()


@pytest.fixture
def prepared_shop(database_url, tmp_path) -> PreparedShop:
    return prepare_shop(database_url, tmp_path / "till", points=5000)


@pytest.fixture
def serve(tmp_path) -> Callable[..., RunningTill]:
    """``serve(env)`` starts the real service; every server started is stopped after the test."""
    running: list[RunningTill] = []

    def start(env: dict[str, str], name: str = "server") -> RunningTill:
        till = start_till(env, tmp_path / f"{name}-{len(running)}.log")
        running.append(till)
        return till

    yield start
    for till in running:
        till.stop()
