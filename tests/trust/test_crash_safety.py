"""The till's service killed (SIGKILL) at random moments while checkouts and returns stream in.

Two hundred times: start the service, let the till retry what it sent when the last one died,
send a few more sales and returns, and kill the process while one or two requests are in flight
(before it has read them, half-way through one, during the write or while answering). After every
kill the SQLite file passes ``PRAGMA integrity_check``. At the end:

* every transaction whose answer reached the till is in the books exactly once, as answered;
* sending every request again changes nothing: the same answers, the ledger untouched;
* every customer's ledger adds up to their balance.

Restarts use :class:`tests.support.server.ForkServer` (the ``serve`` command in a forked,
already-imported process) so two hundred of them fit in CI.
"""
from __future__ import annotations

import json
import random
import select
import shutil
import socket
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pos_loyalty.services.customers import enrol_customer
from pos_loyalty.services.points import adjust_points
from tests.support.factories import line, return_of, sale
from tests.support.server import ForkedTill, ForkServer, call

from .conftest import open_shop, prepare_shop

KILLS = 200
SEED = 20260615
LONGEST_WAIT_BEFORE_THE_KILL = 0.08  # seconds; a checkout takes a few tens of milliseconds here


@dataclass
class Request:
    id: str
    path: str
    body: dict


@dataclass
class Till:
    """The till's side: what it sent, what it was answered, and what it must send again."""

    token: str
    sent: list[Request] = field(default_factory=list)
    answers: dict[str, tuple[int, dict]] = field(default_factory=dict)
    unanswered: list[Request] = field(default_factory=list)
    cut_off: int = 0  # requests in flight when the service was killed, their answers lost

    def answered(self, request: Request, status: int, body: dict) -> None:
        assert status < 500, (request, status, body)
        if request.id in self.answers:
            assert self.answers[request.id] == (status, without_replayed(body)), request
        self.answers[request.id] = (status, without_replayed(body))


def without_replayed(body):
    return {k: v for k, v in body.items() if k != "replayed"} if isinstance(body, dict) else body


class Stream:
    """Sales (some with cards, some redeeming a voucher, some anonymous) and returns of sales the
    till has been answered for, drawn from a seeded generator."""

    def __init__(self, rng: random.Random, cards: list[str], voucher_id: int) -> None:
        self.rng, self.cards, self.voucher_id = rng, cards, voucher_id
        self.count = 0
        self.returnable: list[str] = []

    def next(self) -> Request:
        self.count += 1
        rng = self.rng
        if self.returnable and rng.random() < 0.2:
            original = self.returnable.pop(rng.randrange(len(self.returnable)))
            ident = f"KR-{self.count}"
            return Request(ident, f"/api/v1/transactions/{original}/returns", return_of(("COF", 1), id=ident))
        lines = [line("COF", rng.choice([180, 250, 320]), 2)]
        for _ in range(rng.randrange(3)):
            lines.append(line(f"P{rng.randrange(50)}", rng.randrange(1, 5000), 1, category=rng.choice(["bakery", "fruit"])))
        card = rng.choice(self.cards + [None])
        rewards = [self.voucher_id] if card and rng.random() < 0.3 else None
        ident = f"K-{self.count}"
        return Request(ident, "/api/v1/transactions", sale(*lines, card=card, rewards=rewards, id=ident))


def http_bytes(request: Request, token: str, port: int) -> bytes:
    body = json.dumps(request.body).encode()
    head = (
        f"POST {request.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def parse_answer(raw: bytes) -> tuple[int, dict] | None:
    """The status and body of a complete HTTP answer (its whole Content-Length arrived), or None."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    status = int(head.split(b" ", 2)[1])
    lengths = [int(h.split(b":", 1)[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")]
    length = lengths[0] if lengths else None
    if length is None or len(body) < length:
        return None
    return status, json.loads(body[:length])


def in_flight_then_kill(
    server: ForkServer, running: ForkedTill, till: Till, requests: list[Request], rng: random.Random
) -> None:
    """Send ``requests`` at once (some only in part), wait a random while for their answers, then
    SIGKILL the service. Whatever answer arrived in full counts as answered; the rest the till
    will send again after the restart."""
    sockets = {}
    for request in requests:
        data = http_bytes(request, till.token, running.port)
        sock = socket.create_connection(("127.0.0.1", running.port))
        if rng.random() < 0.15:
            sock.sendall(data[: rng.randrange(1, len(data))])  # killed while the request is still arriving
        else:
            sock.sendall(data)
        sockets[sock] = (request, bytearray())
    deadline = time.monotonic() + rng.uniform(0, LONGEST_WAIT_BEFORE_THE_KILL)
    open_ = set(sockets)
    while open_ and (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select(list(open_), [], [], left)
        for sock in ready:
            chunk = sock.recv(65536)
            if chunk:
                sockets[sock][1].extend(chunk)
            else:
                open_.discard(sock)
    server.kill(running)
    for sock, (request, raw) in sockets.items():
        sock.close()
        answer = parse_answer(bytes(raw))
        if answer is None:
            till.unanswered.append(request)
            till.cut_off += 1
        else:
            till.answered(request, *answer)


def integrity(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("PRAGMA integrity_check")] + [
            repr(row) for row in conn.execute("PRAGMA foreign_key_check")
        ]
    finally:
        conn.close()


def books(path: Path) -> dict:
    """Every ledger entry, every balance and every recorded transaction id, straight from the file."""
    conn = sqlite3.connect(path)
    try:
        return {
            "ledger": conn.execute("SELECT * FROM ledger_entries ORDER BY id").fetchall(),
            "balances": conn.execute("SELECT id, balance FROM customers ORDER BY id").fetchall(),
            "ledger_sums": conn.execute(
                "SELECT c.id, COALESCE(SUM(e.points), 0) FROM customers c "
                "LEFT JOIN ledger_entries e ON e.customer_id = c.id GROUP BY c.id ORDER BY c.id"
            ).fetchall(),
            "transactions": [row[0] for row in conn.execute("SELECT id FROM transactions ORDER BY id")],
            "entries_by_transaction": dict(
                conn.execute(
                    "SELECT transaction_id, SUM(points) FROM ledger_entries WHERE transaction_id IS NOT NULL "
                    "GROUP BY transaction_id"
                )
            ),
        }
    finally:
        conn.close()


@pytest.fixture
def crash_shop(tmp_path, sqlite_template):
    """A till's own SQLite file: a till, three customers with points to spend, a voucher."""
    db_file = tmp_path / "loyalty.db"
    shutil.copyfile(sqlite_template, db_file)
    shop = prepare_shop(f"sqlite:///{db_file}", tmp_path / "till", points=100_000)
    services = open_shop(shop.database_url, shop.data_dir)
    try:
        cards = [shop.card]
        for name in ("Ben Okafor", "Chiara Rossi"):
            customer = enrol_customer(services.shop, {"name": name})
            adjust_points(services.shop, customer["id"], 100_000, reason="opening balance", user="mia",
                          role="manager")
            cards.append(customer["cards"][0]["number"])
    finally:
        services.db.dispose()
    return shop, db_file, cards


def test_a_till_killed_at_random_moments_keeps_every_answered_sale_once_and_nothing_else(crash_shop, tmp_path):
    shop, db_file, cards = crash_shop
    rng = random.Random(SEED)
    stream = Stream(rng, cards, shop.voucher_id)
    till = Till(shop.token)

    def deliver(port: int, request: Request) -> None:
        status, body = call(port, "POST", request.path, request.body, token=till.token)
        till.answered(request, status, body)
        if request.path == "/api/v1/transactions" and status == 201:
            stream.returnable.append(request.id)

    with ForkServer(shop.env(), tmp_path / "server.log") as server:
        for _ in range(KILLS):
            running = server.start()
            retry, till.unanswered = till.unanswered, []
            for request in retry:  # what the till does first after the service comes back
                deliver(running.port, request)
            for _ in range(rng.randrange(3)):
                request = stream.next()
                till.sent.append(request)
                deliver(running.port, request)
            in_flight = [stream.next() for _ in range(rng.choice([1, 1, 2]))]
            till.sent.extend(in_flight)
            in_flight_then_kill(server, running, till, in_flight, rng)
            assert integrity(db_file) == ["ok"]

        running = server.start()
        for request in till.unanswered:
            deliver(running.port, request)
        till.unanswered = []
        before = books(db_file)

        recorded = sorted(r.id for r in till.sent if till.answers[r.id][0] == 201)
        assert before["transactions"] == recorded  # each answered sale and return, once, and nothing else
        for request in till.sent:  # the points each recorded answer speaks of are in the ledger, once
            status, answer = till.answers[request.id]
            if status == 201:
                points = answer["points"]
                moved = points["earned"] - points["redeemed"] - points["reversed"] + points["given_back"]
                assert before["entries_by_transaction"].get(request.id, 0) == moved, request.id

        for request in till.sent:  # the till sends everything again: the stored answers, nothing new
            status, answer = call(running.port, "POST", request.path, request.body, token=till.token)
            assert (status, without_replayed(answer)) == till.answers[request.id], request.id
            assert status != 201 or answer["replayed"] is True
        after = books(db_file)
        server.kill(running)

    assert after == before
    assert after["ledger_sums"] == after["balances"]
    assert integrity(db_file) == ["ok"]
    assert "Traceback" not in server.log_text()
    assert till.cut_off > 0, "no kill caught a request in flight"
    assert len(till.sent) >= KILLS


def test_a_tills_own_database_is_written_through_to_disk_before_the_till_is_answered(crash_shop):
    """WAL with synchronous=FULL: a commit returns once the WAL is on disk, so a printed receipt's
    sale survives a power cut too, not only a killed process (see docs/RELIABILITY.md)."""
    shop, _, _ = crash_shop
    services = open_shop(shop.database_url, shop.data_dir)
    try:
        assert services.settings.sqlite_synchronous == "FULL"
        for engine in (services.db.writer, services.db.reader):
            with engine.connect() as conn:
                pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
                assert pragma("journal_mode") == "wal"
                assert pragma("synchronous") == 2  # FULL
                assert pragma("foreign_keys") == 1
                assert pragma("busy_timeout") >= 5000
    finally:
        services.db.dispose()

