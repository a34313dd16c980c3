"""The limits the product is measured against: what the same work costs with nothing in the way.

* The storage floor: a checkout's writes done with the plain driver (``sqlite3`` or ``psycopg``)
  in one transaction: read the card's customer, insert the sale with its stored answer, its ten
  lines, the ledger entry (and the redemption with its entry), add to the balance, keep the
  favourites current. The same rows the product writes, in the fewest statements.
* The HTTP floor: a tiny WSGI app doing exactly those raw writes (and the raw card lookup) under
  the same server, waitress, with the same threads: ``python -m bench.floors --url URL``.
* The lookup floor: the card and its customer read by their primary keys.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
import threading
from typing import Any

from pos_loyalty.persistence.db import BUSY_TIMEOUT_MS, normalise_url


def connect_raw(url: str, *, synchronous: str = "FULL"):
    """A plain driver connection set up as the product sets up its own (WAL, synchronous FULL,
    foreign keys on, busy timeout; PostgreSQL in autocommit with explicit transactions)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.split("///", 1)[1], isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", f"busy_timeout={BUSY_TIMEOUT_MS}", f"synchronous={synchronous}"):
            conn.execute(f"PRAGMA {pragma}")
        return RawDatabase(conn, "sqlite")
    import psycopg

    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    return RawDatabase(conn, "postgresql")


class RawDatabase:
    """The checkout's writes and the card lookup, in plain SQL."""

    def __init__(self, conn, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect
        self.sqlite = dialect == "sqlite"

    def _sql(self, text: str) -> str:
        return text if self.sqlite else text.replace("?", "%s")

    def _now(self, moment: dt.datetime):
        return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f") if self.sqlite else moment

    def close(self) -> None:
        self.conn.close()

    def lookup(self, card_number: str) -> dict[str, Any] | None:
        row = self.conn.execute(self._sql(
            "SELECT c.number, c.status, u.id, u.name, u.preferred_name, u.balance, u.preferences FROM cards c "
            "JOIN customers u ON u.id = c.customer_id WHERE c.number = ?"), (card_number,)).fetchone()
        if row is None:
            return None
        return {"card": row[0], "status": row[1], "customer_id": row[2], "name": row[3], "preferred_name": row[4],
                "balance": row[5], "preferences": row[6] if isinstance(row[6], dict) else json.loads(row[6] or "{}")}

    def _insert_rows(self, cur, head: str, row: str, tail: str, rows: list[tuple]) -> None:
        """Many rows the fastest plain way for each database: SQLite's executemany (in C, in the
        process); on PostgreSQL one statement with a row of values each, as the product sends them
        (an executemany has the server run the statement once a row)."""
        if self.sqlite or len(rows) < 2:
            cur.executemany(self._sql(head + row + tail), rows)
        else:
            cur.execute(self._sql(head + ", ".join([row] * len(rows)) + tail), [v for r in rows for v in r])

    def checkout(self, sale: dict[str, Any], answer: str, *, reward: tuple[int, str, int, int] | None = None) -> int:
        """Write one sale the way the product's tables hold it; returns the points it earned.

        ``sale`` is the till's request body (``id``, ``card_number``, ``lines``); ``answer`` the
        JSON stored as the sale's response; ``reward`` (id, name, points, discount) if one is taken.
        """
        now = self._now(dt.datetime.now(dt.timezone.utc))
        conn, q = self.conn, self._sql
        lines = []
        for n, ln in enumerate(sale["lines"], start=1):
            quantity = int(float(ln["quantity"]) * 1000)
            gross = (ln["unit_price"] * quantity + 500) // 1000
            lines.append((n, ln["sku"], ln["description"], ln.get("category"), quantity, ln["unit_price"], gross, gross // 100))
        discount = reward[3] if reward else 0
        subtotal = sum(ln[6] for ln in lines)
        earned = sum(ln[7] for ln in lines)
        tx = sale["id"]
        conn.execute("BEGIN IMMEDIATE" if self.sqlite else "BEGIN")
        try:
            row = conn.execute(q(
                "SELECT u.id, u.balance FROM cards c JOIN customers u ON u.id = c.customer_id WHERE c.number = ?"
                + ("" if self.sqlite else " FOR UPDATE OF u")), (sale["card_number"],)).fetchone()
            customer_id = row[0]
            conn.execute(q(
                "INSERT INTO transactions (id, kind, till_id, cashier, occurred_at, recorded_at, currency, customer_id, card_number, "
                "subtotal, discount, total, eligible_spend, points_earned, points_redeemed, programme_version_id, request_hash, "
                "response, visit_code) VALUES (?, 'sale', NULL, ?, ?, ?, 'EUR', ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)"),
                (tx, sale.get("cashier"), now, now, customer_id, sale["card_number"], subtotal, discount, subtotal - discount,
                 subtotal - discount, earned, reward[2] if reward else 0, hashlib.sha256(tx.encode()).hexdigest(), answer,
                 hashlib.md5(tx.encode()).hexdigest()[:8].upper()))
            cur = conn.cursor()
            self._insert_rows(
                cur, "INSERT INTO transaction_lines (transaction_id, line_no, sku, description, category, quantity_milli, unit_price, "
                "line_discount, reward_discount, paid, points) VALUES ", "(?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?)", "",
                [(tx, n, sku, desc, cat, qty, price, gross, pts) for n, sku, desc, cat, qty, price, gross, pts in lines])
            change = earned
            if reward:
                conn.execute(q("INSERT INTO redemptions (transaction_id, reward_id, reward_name, points, discount) VALUES (?, ?, ?, ?, ?)"),
                             (tx, reward[0], reward[1], reward[2], reward[3]))
                conn.execute(q("INSERT INTO ledger_entries (customer_id, kind, cause, points, created_at, transaction_id, reason) "
                               "VALUES (?, 'redeem', 'sale', ?, ?, ?, ?)"), (customer_id, -reward[2], now, tx, reward[1]))
                change -= reward[2]
            conn.execute(q("INSERT INTO ledger_entries (customer_id, kind, cause, points, created_at, expires_at, transaction_id) "
                           "VALUES (?, 'earn', 'sale', ?, ?, ?, ?)"), (customer_id, earned, now, now, tx))
            conn.execute(q("UPDATE customers SET balance = balance + ? WHERE id = ?"), (change, customer_id))
            self._insert_rows(
                cur, "INSERT INTO customer_products (customer_id, sku, description, visits, quantity_milli, last_bought_at) VALUES ",
                "(?, ?, ?, 1, ?, ?)", " ON CONFLICT (customer_id, sku) DO UPDATE SET visits = customer_products.visits + 1, "
                "quantity_milli = customer_products.quantity_milli + excluded.quantity_milli, last_bought_at = excluded.last_bought_at",
                [(customer_id, sku, desc, qty, now) for _, sku, desc, _, qty, *_ in lines])
            cur.close()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return earned


# -- the bare endpoint -----------------------------------------------------------------------------


def floor_app(url: str, answer: str, reward: tuple[int, str, int, int]):
    """A WSGI app with two routes and nothing else: ``POST /checkout`` (the raw writes) and
    ``GET /cards/<number>`` (the raw lookup). SQLite writers queue on one lock, as in the product."""
    local = threading.local()
    write_lock = threading.Lock() if normalise_url(url).startswith("sqlite") else None
    answer_bytes = answer.encode()

    def database() -> RawDatabase:
        db = getattr(local, "db", None)
        if db is None:
            db = local.db = connect_raw(url)
        return db

    def app(environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if method == "POST" and path == "/checkout":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            sale = json.loads(environ["wsgi.input"].read(length))
            if write_lock is not None:
                with write_lock:
                    database().checkout(sale, answer, reward=reward if sale.get("rewards") else None)
            else:
                database().checkout(sale, answer, reward=reward if sale.get("rewards") else None)
            start_response("201 Created", [("Content-Type", "application/json"), ("Content-Length", str(len(answer_bytes)))])
            return [answer_bytes]
        if method == "GET" and path.startswith("/cards/"):
            found = database().lookup(path[len("/cards/"):])
            body = json.dumps(found).encode()
            start_response("200 OK" if found else "404 Not Found", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if path == "/health":
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
            return [b"ok"]
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]

    return app


def main(argv: list[str] | None = None) -> int:
    from waitress import create_server

    parser = argparse.ArgumentParser(prog="python -m bench.floors", description="Serve the bare endpoint under waitress.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--answer-file", required=True, help="the JSON stored (and sent back) for every sale")
    parser.add_argument("--reward-id", type=int, default=3)
    parser.add_argument("--reward-name", default="€2 off your shopping")
    parser.add_argument("--reward-points", type=int, default=200)
    parser.add_argument("--reward-discount", type=int, default=200)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    with open(args.answer_file, encoding="utf-8") as fh:
        answer = fh.read()
    app = floor_app(args.url, answer, (args.reward_id, args.reward_name, args.reward_points, args.reward_discount))
    server = create_server(app, host="127.0.0.1", port=args.port, threads=args.threads, ident="bench-floor")
    print(f"panel: http://127.0.0.1:{server.effective_port}/", flush=True)
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    return 0


def _stop(signum, frame):
    raise SystemExit(0)  # waitress's loop takes this as the sign to shut down, as `pos-loyalty serve` does


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, _stop)
    sys.exit(main())
