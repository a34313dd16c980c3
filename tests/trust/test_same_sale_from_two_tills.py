"""Two tills send the same transaction id at the same moment: it is recorded once.

A till that lost its network retries from a second till, or two tills' sales software share an
id by mistake. The real service, on SQLite and on PostgreSQL, two till tokens, both requests
released together: one sale in the books, one set of points, and the second till gets the
stored answer (same body) or a 409 (a different body under the same id).
"""
from __future__ import annotations

import http.client
import threading

import pytest
from sqlalchemy import create_engine, text

from pos_loyalty.persistence.db import normalise_url
from tests.support.factories import line, sale
from tests.support.server import REQUEST_TIMEOUT, register_till, send

from .conftest import ledger_and_balance

ROUNDS = 10


def both_at_once(port: int, requests: list[tuple[str, dict]]) -> list[tuple[int, dict]]:
    """Each (token, body) from its own thread and connection, released together."""
    answers: list = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def till(i: int, token: str, body: dict) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
        conn.connect()
        start.wait()
        try:
            answers[i] = send(conn, "POST", "/api/v1/transactions", body, token=token)
        finally:
            conn.close()

    threads = [threading.Thread(target=till, args=(i, token, body)) for i, (token, body) in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


class Books:
    """Counts straight from the tables: how often a transaction id is recorded, and its ledger entries."""

    def __init__(self, database_url: str) -> None:
        self.engine = create_engine(normalise_url(database_url))

    def rows_for(self, transaction_id: str) -> tuple[int, int]:
        with self.engine.connect() as conn:
            sales = conn.execute(text("SELECT count(*) FROM transactions WHERE id = :id"), {"id": transaction_id}).scalar_one()
            entries = conn.execute(
                text("SELECT count(*) FROM ledger_entries WHERE transaction_id = :id"), {"id": transaction_id}
            ).scalar_one()
        return sales, entries


@pytest.fixture
def books(prepared_shop):
    books = Books(prepared_shop.database_url)
    yield books
    books.engine.dispose()


@pytest.fixture
def two_tills(prepared_shop, serve):
    """The service, and the tokens of two tills registered on it."""
    second_token = register_till(prepared_shop.database_url, prepared_shop.data_dir, "till-2")
    return serve(prepared_shop.env()), (prepared_shop.token, second_token)


def test_the_same_sale_sent_by_two_tills_at_once_is_recorded_once(prepared_shop, two_tills, books):
    server, (till_1, till_2) = two_tills
    for n in range(ROUNDS):
        body = sale(line("COF", 1000), card=prepared_shop.card, id=f"TWICE-{n}")
        (status_1, first), (status_2, second) = both_at_once(server.port, [(till_1, body), (till_2, body)])

        assert (status_1, status_2) == (201, 201), (first, second)
        assert sorted([bool(first.get("replayed")), bool(second.get("replayed"))]) == [False, True]
        assert {k: v for k, v in first.items() if k != "replayed"} == {k: v for k, v in second.items() if k != "replayed"}
        assert books.rows_for(body["id"]) == (1, 1)  # one sale, one earning

    ledger, balance = ledger_and_balance(prepared_shop.database_url, prepared_shop.customer_id)
    assert balance == 5000 + ROUNDS * 10
    assert ledger == balance


def test_two_different_sales_under_one_id_from_two_tills_at_once_keep_one_and_refuse_the_other(prepared_shop, two_tills, books):
    server, (till_1, till_2) = two_tills
    for n in range(ROUNDS):
        coffee = sale(line("COF", 1000), card=prepared_shop.card, id=f"CLASH-{n}")
        tea = sale(line("TEA", 2000), card=prepared_shop.card, id=f"CLASH-{n}")
        answers = both_at_once(server.port, [(till_1, coffee), (till_2, tea)])

        assert sorted(status for status, _ in answers) == [201, 409], answers
        (_, kept), (_, refused) = sorted(answers, key=lambda a: a[0])
        assert refused["errors"][0]["field"] == "id"
        assert server.call("GET", f"/api/v1/transactions/CLASH-{n}", token=till_1)[1]["lines"] == kept["lines"]
        assert books.rows_for(f"CLASH-{n}") == (1, 1)

    ledger, balance = ledger_and_balance(prepared_shop.database_url, prepared_shop.customer_id)
    assert ledger == balance
