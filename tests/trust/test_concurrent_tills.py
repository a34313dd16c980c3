"""Many tills, one database: points are never spent twice.

The real service (``pos-loyalty serve``) on SQLite and on PostgreSQL; four till processes of
eight threads each send a thousand redemptions of the same customer's points at once, over
plain HTTP. Then the same against a service broken on purpose (the balance checked before the
write transaction, without a lock; see ``bootstrap/sitecustomize.py``), to show the same
assertions fail when points can be spent twice.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.factories import line, sale
from tests.support.server import START_TIMEOUT

from .conftest import PreparedShop, ledger_and_balance

REDEMPTIONS = 1000
VOUCHER_COST = 10  # points; the customer holds 5,000, enough for exactly 500 of them
PROCESSES = 4
THREADS_PER_PROCESS = 8
CLIENT = Path(__file__).with_name("till_client.py")


@dataclass
class Rush:
    """What the tills got back, and what the database holds afterwards."""

    answers: Counter
    details: Counter
    balance: int
    ledger: int
    log: str

    @property
    def accepted(self) -> int:
        return self.answers[201]


def one_cent_sale_with_the_voucher(shop: PreparedShop, n: int) -> dict:
    """A sale of one cent, paid with the one-cent voucher: nothing left to pay, nothing earned."""
    return sale(line("GUM", 1, 1, category="sweets"), card=shop.card, rewards=[shop.voucher_id], id=f"RUSH-{n:04d}")


def redeem_all_at_once(shop: PreparedShop, port: int) -> tuple[Counter, Counter]:
    """Send every redemption from PROCESSES till processes of THREADS_PER_PROCESS threads, all
    released together once every one of them has its connection open."""
    requests = [["POST", "/api/v1/transactions", one_cent_sale_with_the_voucher(shop, n)] for n in range(REDEMPTIONS)]
    tills = [
        subprocess.Popen([sys.executable, str(CLIENT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(PROCESSES)
    ]
    try:
        for i, till in enumerate(tills):
            job = {"port": port, "token": shop.token, "threads": THREADS_PER_PROCESS, "requests": requests[i::PROCESSES]}
            till.stdin.write(json.dumps(job) + "\n")
            till.stdin.flush()
        for till in tills:
            assert till.stdout.readline().strip() == "ready"
        for till in tills:
            till.stdin.write("go\n")
            till.stdin.flush()
        answers: Counter = Counter()
        details: Counter = Counter()
        for till in tills:
            out, _ = till.communicate(timeout=START_TIMEOUT * 5)
            for status, detail in json.loads(out):
                answers[status] += 1
                if status != 201:
                    details[(status, detail)] += 1
        return answers, details
    finally:
        for till in tills:
            if till.poll() is None:
                till.kill()
                till.wait()


def rush(shop: PreparedShop, server) -> Rush:
    answers, details = redeem_all_at_once(shop, server.port)
    status, card = server.call("GET", f"/api/v1/cards/{shop.card}", token=shop.token)
    assert status == 200, card
    ledger, stored = ledger_and_balance(shop.database_url, shop.customer_id)
    assert card["balance"] == stored
    return Rush(answers, details, stored, ledger, server.log_text())


def assert_every_point_was_spent_once(result: Rush) -> None:
    assert result.answers == Counter({201: 500, 409: 500}), (result.answers, result.details)
    assert all("insufficient points" in detail for (_, detail) in result.details), result.details
    assert result.balance == 0
    assert result.ledger == result.balance
    assert "database is locked" not in result.log
    assert "Traceback" not in result.log


def test_a_thousand_redemptions_from_four_tills_at_once_spend_exactly_the_points_held(prepared_shop, serve):
    server = serve(prepared_shop.env())
    result = rush(prepared_shop, server)
    assert_every_point_was_spent_once(result)
    # 32 connections on 8 threads: most requests queued, and the log says so once, not per request
    assert "Task queue depth" not in result.log
    assert 1 <= result.log.count("all threads busy") < 10


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the assertions are the same on either
def test_the_rush_catches_a_checkout_that_checks_the_balance_before_writing_without_a_lock(prepared_shop, serve):
    server = serve(prepared_shop.broken_env("read-then-write-redemption"), name="broken")
    result = rush(prepared_shop, server)

    assert result.accepted > 500 or result.balance < 0, (result.answers, result.balance, result.ledger)
    with pytest.raises(AssertionError):
        assert_every_point_was_spent_once(result)
