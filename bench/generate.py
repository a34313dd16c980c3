"""A shop's loyalty history at scale, written with bulk inserts: customers with cards and
preferences, sales and returns with their lines, and every ledger entry they caused, over three
years of trading.

The history is simulated day by day in time order, so every id (ledger entry, line, sale) rises
with time as it would in a real shop, and each customer's ledger replays exactly as the product's
``domain.ledger.replay`` would: points are spent oldest first, the nightly expiry run writes an
``expire`` entry for each lot past its date, a return reverses the lot its sale earned. The
stored balance is the sum of the ledger for every customer, each sale's ``earn`` entry is the sum
of its lines' points, and the points are computed with the product's rules (integer arithmetic
here for speed; ``check_invariants`` recomputes a sample with ``domain.earning``).

Rows go in through the plain driver: ``sqlite3`` ``executemany`` with the secondary indexes
dropped and rebuilt afterwards, or PostgreSQL ``COPY``. The schema itself comes from the
product's migrations (``upgrade_to_head``).

    .venv/bin/python -m bench.generate --size quick --out var/bench/loyalty.db
"""
from __future__ import annotations

import argparse
import calendar
import datetime as dt
import hashlib
import json
import os
import random
import sqlite3
import sys
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

from pos_loyalty.domain.cards import ean13_check_digit
from pos_loyalty.domain.earning import split_proportionally  # integers since the domain's own went integer
from pos_loyalty.domain.ledger import add_months, expiry_for, last_valid_day
from pos_loyalty.domain.programme import Programme, format_multiplier
from pos_loyalty.services.transactions import VISIT_CODE_ALPHABET

from . import shop_model as S

SIZES = {  # customers, transactions
    "tiny": (1_000, 5_000),
    "quick": (10_000, 50_000),
    "medium": (100_000, 500_000),
    "full": (1_000_000, 5_000_000),
}
TILLS = ("till-1", "till-2", "till-3")
SLOTS = 24  # the products a customer buys: their regulars (favourites are kept for these)
DEPOSIT_SLOT = SLOTS  # and the bottle deposit that comes with some of them
KEPT = SLOTS + 1  # rows of customer_products a customer can have
PROFILES = 2048  # shopping habits, shared by many customers
FLUSH_ROWS = 60_000
EXPIRY_RUN = dt.time(2, 30)
EXPIRY_MONTHS = 12  # the programme's (checked in History.__init__)  # local time of the nightly expiry run
GOODWILL_REASONS = ("waited too long at the till", "item out of stock", "sorry for the mix-up", "birthday cake was sold out")


def parse_size(text: str) -> tuple[int, int]:
    """``quick``, ``full``, or ``CUSTOMERS/TRANSACTIONS`` such as ``50000/250000``."""
    if text in SIZES:
        return SIZES[text]
    customers, _, transactions = text.partition("/")
    try:
        c, t = int(customers), int(transactions or int(customers) * 5)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is one of {', '.join(SIZES)} or CUSTOMERS/TRANSACTIONS") from None
    if c < 10 or t < c:
        raise argparse.ArgumentTypeError("at least 10 customers, and at least one transaction per customer")
    return c, t


@dataclass
class Plan:
    customers: int
    transactions: int
    end: dt.datetime  # UTC; the history ends here (normally: now)
    years: int = 3
    seed: int = 2026
    anonymous_share: float = 0.10
    return_share: float = 0.012
    goodwill_share: float = 0.003
    lost_card_share: float = 0.03


@dataclass
class Stats:
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    simulate_seconds: float = 0.0
    index_seconds: float = 0.0
    sales: int = 0
    anonymous_sales: int = 0
    returns: int = 0
    redemptions: int = 0
    expiry_runs: int = 0
    last_expiry_run: str | None = None

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": dict(self.rows), "total_rows": self.total_rows, "seconds": round(self.seconds, 1),
            "rows_per_second": round(self.total_rows / self.seconds) if self.seconds else None,
            "cpu_seconds": round(self.cpu_seconds, 1),
            "rows_per_cpu_second": round(self.total_rows / self.cpu_seconds) if self.cpu_seconds else None,
            "simulate_seconds": round(self.simulate_seconds, 1), "index_seconds": round(self.index_seconds, 1),
            "sales": self.sales, "anonymous_sales": self.anonymous_sales, "returns": self.returns,
            "redemptions": self.redemptions, "expiry_runs": self.expiry_runs, "last_expiry_run": self.last_expiry_run,
        }


# -- columns, in the order the simulation writes them ----------------------------------------------

COLUMNS = {
    "programme_versions": ("id", "created_at", "created_by", "data"),
    "rewards": ("id", "name", "kind", "amount", "percent", "cap", "sku", "points_cost", "valid_from", "valid_to", "tiers",
                "active", "created_at"),
    "tills": ("id", "name", "token_hash", "created_at", "revoked_at"),
    "customers": ("id", "name", "preferred_name", "email", "phone", "birthday", "language", "marketing_consent",
                  "preferences", "staff_notes", "balance", "created_at", "updated_at", "erased_at"),
    "cards": ("number", "customer_id", "status", "issued_at", "blocked_at", "blocked_reason"),
    "transactions": ("id", "kind", "original_id", "till_id", "cashier", "occurred_at", "recorded_at", "currency",
                     "customer_id", "card_number", "subtotal", "discount", "total", "eligible_spend", "points_earned",
                     "points_redeemed", "programme_version_id", "request_hash", "response", "visit_code", "claimed_at"),
    "transaction_lines": ("id", "transaction_id", "line_no", "sku", "description", "category", "quantity_milli",
                          "unit_price", "line_discount", "reward_discount", "paid", "points", "original_line_id"),
    "redemptions": ("id", "transaction_id", "reward_id", "reward_name", "points", "discount"),
    "ledger_entries": ("id", "customer_id", "kind", "cause", "points", "created_at", "expires_at", "transaction_id",
                       "lot_id", "user", "reason"),
    "customer_products": ("customer_id", "sku", "description", "visits", "quantity_milli", "last_bought_at"),
    "audit_log": ("id", "at", "actor", "action", "entity", "entity_id", "before", "after"),
}
SERIAL_TABLES = ("programme_versions", "rewards", "tills", "customers", "transaction_lines", "redemptions",
                 "ledger_entries", "audit_log")


# -- where the rows go -----------------------------------------------------------------------------


class SqliteSink:
    """``executemany`` into a migrated SQLite file, secondary indexes dropped until the end."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-262144", "temp_store=MEMORY",
                       "locking_mode=EXCLUSIVE", "foreign_keys=OFF"):
            self.conn.execute(f"PRAGMA {pragma}")
        self.indexes = self.conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL"
            f" AND tbl_name IN ({','.join('?' * len(COLUMNS))})", tuple(COLUMNS)
        ).fetchall()
        for name, _ in self.indexes:
            self.conn.execute(f'DROP INDEX "{name}"')
        self.sql = {t: f'INSERT INTO {t} ({", ".join(_quoted(c) for c in cols)}) VALUES ({", ".join("?" * len(cols))})'
                    for t, cols in COLUMNS.items()}

    def write(self, batches: dict[str, list[tuple]]) -> None:
        self.conn.execute("BEGIN")
        for table, rows in batches.items():
            if rows:
                self.conn.executemany(self.sql[table], rows)
        self.conn.execute("COMMIT")

    def finish(self) -> float:
        started = time.perf_counter()
        for _, sql in self.indexes:
            self.conn.execute(sql)
        self.conn.execute("PRAGMA locking_mode=NORMAL")
        self.conn.execute("PRAGMA journal_mode=WAL")  # what the product sets on every connection
        self.conn.close()
        return time.perf_counter() - started


class PostgresSink:
    """``COPY`` into a migrated PostgreSQL database; secondary indexes rebuilt afterwards, foreign
    keys not checked row by row (``session_replication_role = replica``: the data is consistent
    by construction, and ``check_invariants`` proves it)."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
        self.conn.execute("SET TIME ZONE 'UTC'")
        self.conn.execute("SET session_replication_role = replica")
        self.conn.execute("SET maintenance_work_mem = '256MB'")
        self.indexes = self.conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes i WHERE schemaname = 'public' AND tablename = ANY(%s)"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
            (list(COLUMNS),),
        ).fetchall()
        for name, _ in self.indexes:
            self.conn.execute(f'DROP INDEX "{name}"')

    def write(self, batches: dict[str, list[tuple]]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            for table, rows in batches.items():
                if not rows:
                    continue
                with cur.copy(f'COPY {table} ({", ".join(_quoted(c) for c in COLUMNS[table])}) FROM STDIN') as copy:
                    for row in rows:
                        copy.write_row(row)

    def finish(self) -> float:
        started = time.perf_counter()
        for _, sql in self.indexes:
            self.conn.execute(sql)
        for table in SERIAL_TABLES:
            self.conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
            )
        self.conn.execute("ANALYZE")
        self.conn.close()
        return time.perf_counter() - started


def _quoted(column: str) -> str:
    return f'"{column}"' if column in ("user", "before", "after") else column


# -- the simulation --------------------------------------------------------------------------------


class History:
    """Three years of trading, one day at a time."""

    def __init__(self, plan: Plan, sink, progress: Callable[[str], None] = lambda _: None) -> None:
        self.plan, self.sink, self.progress = plan, sink, progress
        self.rng = random.Random(plan.seed)
        self.tz = ZoneInfo(S.TIMEZONE)
        self.stats = Stats(rows={t: 0 for t in COLUMNS})
        self.buffers: dict[str, list[tuple]] = {t: [] for t in COLUMNS}
        self.ledger_rows = self.buffers["ledger_entries"]
        self.line_rows = self.buffers["transaction_lines"]
        self.buffered = 0
        self._calendar()
        self._catalogue()
        self.programme = Programme.from_dict(S.programme_data(self.days[0], self.days[-1]), version_id=1)
        assert self.programme.expiry_months == EXPIRY_MONTHS
        self._earning_rules()
        self.next_ledger_id = self.next_line_id = self.next_redemption_id = self.next_audit_id = 1
        self.sale_counter = 0
        self._coded: tuple[int, str] = (-1, "")
        self.code_pairs = [VISIT_CODE_ALPHABET[v & 31] + VISIT_CODE_ALPHABET[v >> 5] for v in range(1024)]
        self._folded: dict[str, str] = {}

    # -- time ------------------------------------------------------------------------------------
    def _calendar(self) -> None:
        end_local = self.plan.end.astimezone(self.tz)
        first = add_months(end_local.date(), -12 * self.plan.years)
        self.days: list[dt.date] = []
        day = first
        while day <= end_local.date():
            self.days.append(day)
            day += dt.timedelta(days=1)
        self.end_ts = int(self.plan.end.timestamp())
        self.midnight = [int(dt.datetime.combine(d, dt.time(), tzinfo=self.tz).timestamp()) for d in self.days]
        self.opens = [int(dt.datetime.combine(d, dt.time(S.OPENING_HOURS[0]), tzinfo=self.tz).timestamp()) for d in self.days]
        self.expiry_run = [int(dt.datetime.combine(d, EXPIRY_RUN, tzinfo=self.tz).timestamp()) for d in self.days]
        self.start_ts = self.midnight[0]
        self.day_of_date = {d: i for i, d in enumerate(self.days)}
        # points earned on local day i expire at expiry_ts[i], handled by the run on day expiry_day[i]
        self.expiry_ts, self.expiry_day = [], []
        for d in self.days:
            at = expiry_for(dt.datetime.combine(d, dt.time(12), tzinfo=self.tz), EXPIRY_MONTHS, self.tz)
            self.expiry_ts.append(int(at.timestamp()))
            self.expiry_day.append((at.astimezone(self.tz).date() - self.days[0]).days)
        self.utc_dates: dict[int, str] = {}
        self._stamped: tuple[int, str] = (-1, "")

        self.clock = [f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}" for s in range(86_400)]
        self.expiry_stamp = [self.stamp(ts) for ts in self.expiry_ts]
        self.weekday = [d.weekday() for d in self.days]
        self.year_start = {y: int(dt.datetime(y, 1, 1, tzinfo=self.tz).timestamp()) for y in range(first.year, end_local.year + 1)}

    def stamp(self, ts: int) -> str:
        """The UTC time as SQLAlchemy stores it in SQLite (and PostgreSQL reads in a UTC session)."""
        if ts == self._stamped[0]:
            return self._stamped[1]
        day, second = divmod(ts, 86_400)
        date = self.utc_dates.get(day)
        if date is None:
            date = self.utc_dates[day] = dt.date(1970, 1, 1).fromordinal(719_163 + day).isoformat()
        text = f"{date} {self.clock[second]}.000000"
        self._stamped = (ts, text)
        return text

    def iso(self, ts: int) -> str:
        """The UTC time as the product's answers write it (``datetime.isoformat()``)."""
        day, second = divmod(ts, 86_400)
        date = self.utc_dates.get(day)
        if date is None:
            date = self.utc_dates[day] = dt.date(1970, 1, 1).fromordinal(719_163 + day).isoformat()
        return f"{date}T{self.clock[second]}+00:00"

    def opening_second(self) -> int:
        """Seconds after opening: busy mornings and late afternoons."""
        return self.hour_pick[self.rng.getrandbits(8)] * 3600 + int(self.rng.random() * 3600)

    # -- products ----------------------------------------------------------------------------------
    def _catalogue(self) -> None:
        rng = self.rng
        self.items = S.catalogue()
        self.encoded = [f'"sku": {json.dumps(it.sku)}, "description": {json.dumps(it.description)}, "category": {json.dumps(it.category)}'
                        for it in self.items]
        self.quantity_json: dict[int, str] = {}
        self.everyday = [i for i, it in enumerate(self.items) if it.category not in ("tobacco", "deposits")]
        self.tobacco = [i for i, it in enumerate(self.items) if it.category == "tobacco"]
        self.deposit = next(i for i, it in enumerate(self.items) if it.category == "deposits")
        self.bottled = {i for i, it in enumerate(self.items) if it.sku.split("-")[1] in ("WATR", "JUIC", "BEER")}
        self.profiles: list[list[int]] = []
        categories = sorted({self.items[i].category for i in self.everyday})
        for p in range(PROFILES):
            liked = set(rng.sample(categories, rng.randint(3, 6)))
            pool = [i for i in self.everyday if self.items[i].category in liked]
            others = [i for i in self.everyday if self.items[i].category not in liked]
            picks = rng.sample(pool, min(len(pool), 18)) + rng.sample(others, 6)
            if p % 9 == 0:  # a smoker: cigarettes are among their regulars
                picks[-1] = self.tobacco[0]
            self.profiles.append(picks[:SLOTS] + [self.deposit])
        # slot 0 is bought most often (roughly Zipf)
        weights = [1 / (k + 1) ** 0.9 for k in range(SLOTS)]
        total = sum(weights)
        self.slot_pick = [min(SLOTS - 1, int(_inverse_cdf(weights, total, (j + 0.5) / 1024))) for j in range(1024)]
        self.quantity_pick = [1000] * 26 + [2000] * 4 + [3000, 6000]  # 32 entries
        hours = [6, 9, 8, 6, 5, 6, 5, 5, 7, 9, 8, 5]  # 8:00 .. 19:00
        self.hour_pick = []
        for h, w in enumerate(hours):
            self.hour_pick += [h] * w
        self.hour_pick = [self.hour_pick[j * len(self.hour_pick) // 256] for j in range(256)]

    def _earning_rules(self) -> None:
        p = self.programme
        self.earns = [p.earns(it.category) for it in self.items]
        self.product_m = [S.multiplier_e4(p.product_multiplier(it.sku, it.category)) for it in self.items]
        self.tier_m = [S.multiplier_e4(t.multiplier) for t in p.tiers]
        self.tier_min = [t.min_spend for t in p.tiers]
        self.tier_text = {t.code: format_multiplier(t.multiplier) for t in p.tiers}
        # the (month, day) birthdays whose birthday week includes each day (29 February counts on
        # 28 February in other years, as domain.ledger.birthday_in has it)
        self.birthday_weeks: list[frozenset[tuple[int, int]]] = []
        window = p.birthday_window_days
        for d in self.days:
            near = set()
            for k in range(-window, window + 1):
                x = d + dt.timedelta(days=k)
                near.add((x.month, x.day))
                if (x.month, x.day) == (2, 28) and not calendar.isleap(x.year):
                    near.add((2, 29))
            self.birthday_weeks.append(frozenset(near))
        # per day: the promotion multiplier (e4) of every product, or None if nothing runs
        self.promo_m: list[list[int] | None] = []
        self.promo_bonus: list[list[tuple[str, int, int, frozenset[str]]]] = []
        for d in self.days:
            running = [pr for pr in p.promotions if pr.runs_on(d)]
            if any(pr.multiplier > 1 for pr in running):
                self.promo_m.append([
                    max([S.multiplier_e4(pr.multiplier) for pr in running if pr.covers(it.sku, it.category)] + [10_000])
                    for it in self.items
                ])
            else:
                self.promo_m.append(None)
            self.promo_bonus.append([(pr.name, pr.bonus_points, pr.min_spend, frozenset(
                i for i, it in enumerate(self.items) if pr.covers(it.sku, it.category)))
                for pr in running if pr.bonus_points])
        self.rewards = [dict(r, id=i + 1) for i, r in enumerate(S.rewards())]
        self.rewards_by_cost = sorted(self.rewards, key=lambda r: (r["points_cost"], r["id"]))
        self.item_of_sku = {it.sku: i for i, it in enumerate(self.items)}

    # -- customers ---------------------------------------------------------------------------------
    def plan_customers(self) -> None:
        """Who joins when, how often they come, and when some of them stop coming."""
        rng, n = self.rng, self.plan.customers
        span = self.end_ts - self.start_ts
        joins = sorted(
            self.start_ts + int(span * 0.97 * (rng.random() * 0.08 if rng.random() < 0.25 else rng.random() ** 0.5))
            for _ in range(n)
        )
        self.enrol_day = array("i", bytes(4 * n))
        self.created = array("q", bytes(8 * n))
        gaps, stops = [], []
        for c in range(n):
            day = min(len(self.days) - 1, (joins[c] - self.start_ts) // 86_400)
            if self.weekday[day] == 6:
                day = day + 1 if day + 1 < len(self.days) else day - 1
            self.enrol_day[c] = day
            self.created[c] = self.opens[day] + rng.randrange(11 * 3600)
            habit = rng.random()
            gaps.append(7.0 if habit < 0.05 else 30.0 if habit < 0.2 else 90.0 if habit < 0.45 else 365.0)
            stops.append(self.end_ts if rng.random() > 0.3 else self.created[c] + int(rng.random() * (self.end_ts - self.created[c])))
        member_sales = self.plan.transactions * (1 - self.plan.anonymous_share) / (1 + self.plan.return_share)
        repeat = sum(max(0, stop - self.created[c]) / 86_400 / gaps[c] for c, stop in enumerate(stops))
        scale = repeat / max(1.0, member_sales - n)  # stretch every gap so the visits add up to the plan
        self.visits: list[array] = [array("i") for _ in self.days]
        total = 0
        last_day = len(self.days) - 1
        for c in range(n):
            day = self.enrol_day[c]
            self.visits[day].append(c)  # they join at the till, with a purchase
            total += 1
            gap = gaps[c] * scale
            t = float(self.created[c])
            stop = stops[c]
            while True:
                t += rng.expovariate(1.0) * gap * 86_400
                if t >= stop:
                    break
                day = int(t - self.start_ts) // 86_400
                if day > last_day:
                    break
                if self.weekday[day] == 6:
                    day = day + 1 if day < last_day else day - 1
                self.visits[day].append(c)
                total += 1
        self.balance = array("q", bytes(8 * n))
        self.deficit = array("q", bytes(8 * n))
        self.rolling_sum = array("q", bytes(8 * n))
        self.rolling: list[deque | None] = [None] * n
        self.lots: list[deque | None] = [None] * n
        self.welcomed = bytearray(n)
        self.birthday_year = array("h", bytes(2 * n))
        self.birthday = [self._birthday(c) for c in range(n)]
        self.visits_of = array("i", bytes(4 * n * KEPT))
        self.quantity_of = array("q", bytes(8 * n * KEPT))
        self.last_bought = array("q", bytes(8 * n * KEPT))
        self.cards = [self._card_number(c, 0) for c in range(n)]
        self.lost_card: dict[int, int] = {}  # customer -> when the first card was blocked
        for c in range(n):
            if rng.random() < self.plan.lost_card_share:
                self.lost_card[c] = self.created[c] + int(rng.random() * (self.end_ts - self.created[c]))
        self.anonymous_per_day = self.plan.transactions * self.plan.anonymous_share / max(1, sum(w != 6 for w in self.weekday))
        self.progress(f"planned {n:,} customers and {total:,} card visits")

    def _hash(self, c: int) -> int:
        h = (c + 1) * 0x9E3779B97F4A7C15 + self.plan.seed
        h = ((h ^ (h >> 31)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        return h ^ (h >> 29)

    def _person(self, c: int) -> tuple[str, str, str | None, str]:
        """name, first name, preferred name, language: the same every time for a customer."""
        h = self._hash(c)
        german = h % 10 < 7
        firsts, lasts = (S.GERMAN_FIRST, S.GERMAN_LAST) if german else (S.ENGLISH_FIRST, S.ENGLISH_LAST)
        first = firsts[(h >> 8) % len(firsts)]
        last = lasts[(h >> 16) % len(lasts)]
        preferred = S.PREFERRED.get(first) if (h >> 24) % 10 < 7 else None
        language = "de" if german == ((h >> 28) % 10 != 0) else "en"
        return f"{first} {last}", first, preferred, language

    def folded(self, name: str) -> str:
        text = self._folded.get(name)
        if text is None:
            text = self._folded[name] = S.ascii_fold(name)
        return text

    def _birthday(self, c: int) -> dt.date | None:
        h = self._hash(c) >> 32
        if h % 5 == 0:
            return None
        year = self.days[-1].year - 18 - (h >> 4) % 66
        return dt.date(year, 1, 1) + dt.timedelta(days=(h >> 12) % 365)

    def in_birthday_week(self, c: int, day: int) -> bool:
        birthday = self.birthday[c]
        return birthday is not None and (birthday.month, birthday.day) in self.birthday_weeks[day]

    def _card_number(self, c: int, k: int) -> str:
        body = S.CARD_PREFIX + f"{((2 * c + k + 1) * 7_919_861) % 10**10:010d}"
        return body + ean13_check_digit(body)

    def card_at(self, c: int, ts: int) -> str:
        lost = self.lost_card.get(c)
        if lost is not None and ts >= lost:
            return self._card_number(c, 1)
        return self.cards[c]

    # -- writing -----------------------------------------------------------------------------------
    def add(self, table: str, row: tuple) -> None:
        """Buffer a row; ``trade`` flushes between transactions, so a flush never splits one."""
        self.buffers[table].append(row)
        self.buffered += 1

    def flush(self) -> None:
        self.sink.write(self.buffers)
        for table, rows in self.buffers.items():
            self.stats.rows[table] += len(rows)
            rows.clear()
        self.buffered = 0

    def ledger(self, c: int, kind: str, cause: str, points: int, ts: int, expires: str | None = None,
               tx: str | None = None, lot_id: int | None = None, user: str | None = None, reason: str | None = None) -> int:
        entry_id = self.next_ledger_id
        self.next_ledger_id += 1
        self.ledger_rows.append((entry_id, c + 1, kind, cause, points, self.stamp(ts),
                                 expires, tx, lot_id, user, reason))
        self.buffered += 1
        self.balance[c] += points
        return entry_id

    # -- the points a customer holds -------------------------------------------------------------
    def credit(self, c: int, entry_id: int, points: int, day: int) -> list | None:
        """A positive entry: it pays off a deficit first, the rest opens a lot expiring with the day's points."""
        owed = self.deficit[c]
        if owed:
            paid = min(owed, points)
            self.deficit[c] = owed - paid
            points -= paid
        if not points:
            return None
        lot = [entry_id, points, self.expiry_ts[day]]
        lots = self.lots[c]
        if lots is None:
            lots = self.lots[c] = deque()
        lots.append(lot)
        self.expiring.setdefault(self.expiry_day[day], []).append((c, lot))
        return lot

    def debit(self, c: int, points: int, target: list | None = None) -> None:
        """A negative entry: from its target lot first, then the lots expiring soonest, then a deficit."""
        need = points
        if target is not None and target[1]:
            take = min(need, target[1])
            target[1] -= take
            need -= take
        lots = self.lots[c]
        while need and lots:
            lot = lots[0]
            take = min(need, lot[1])
            lot[1] -= take
            need -= take
            if not lot[1]:
                lots.popleft()
        if lots:
            while lots and not lots[0][1]:
                lots.popleft()
        if need:
            self.deficit[c] += need

    def run_expiry(self, day: int) -> None:
        """The nightly run: an ``expire`` entry for what is left of every lot past its date."""
        due = self.expiring.pop(day, None)
        if not due:
            return
        ts = self.expiry_run[day]
        reason = f"points valid through {(self.days[day] - dt.timedelta(days=1)).isoformat()}"
        due.sort(key=lambda item: (item[0], item[1][0]))
        for c, lot in due:
            if lot[1] > 0:
                left, lot[1] = lot[1], 0
                self.ledger(c, "expire", "expiry", -left, ts, lot_id=lot[0], reason=reason)
        lots = {c for c, _ in due}
        for c in lots:
            q = self.lots[c]
            while q and not q[0][1]:
                q.popleft()
        self.stats.expiry_runs += 1
        self.stats.last_expiry_run = self.iso(ts)

    def rolling_before(self, c: int, ts: int) -> int:
        window = self.rolling[c]
        if window is None:
            return 0
        since = ts - 365 * 86_400
        total = self.rolling_sum[c]
        while window and window[0][0] <= since:
            total -= window.popleft()[1]
        self.rolling_sum[c] = total
        return total

    def spend(self, c: int, ts: int, amount: int) -> None:
        window = self.rolling[c]
        if window is None:
            window = self.rolling[c] = deque()
        window.append((ts, amount))
        self.rolling_sum[c] += amount

    def tier_index(self, rolling: int) -> int:
        index = 0
        for i, minimum in enumerate(self.tier_min):
            if rolling >= minimum:
                index = i
        return index

    # -- a day's trading -----------------------------------------------------------------------------
    def run(self) -> Stats:
        started, cpu_started = time.perf_counter(), time.process_time()
        self.plan_customers()
        self.expiring: dict[int, list] = {}
        self.returns_due: dict[int, list] = {}
        self.write_set_up()
        report_every = max(1, len(self.days) // 12)
        for day in range(len(self.days)):
            self.trade(day)
            if day % report_every == 0 and day:
                self.progress(f"{self.days[day]}: {self.stats.sales + self.stats.anonymous_sales + self.stats.returns:,} "
                              f"transactions, {sum(self.stats.rows.values()) + self.buffered:,} rows")
        self.write_customers()
        self.flush()
        self.stats.simulate_seconds = time.perf_counter() - started
        self.stats.index_seconds = self.sink.finish()
        self.stats.seconds = time.perf_counter() - started
        self.stats.cpu_seconds = time.process_time() - cpu_started
        return self.stats

    def trade(self, day: int) -> None:
        rng = self.rng
        if self.expiry_run[day] <= self.end_ts:
            self.run_expiry(day)
        if self.weekday[day] == 6:
            return
        opens = self.opens[day]
        events: list[tuple[int, int, Any]] = []
        for c in self.visits[day]:
            ts = opens + self.opening_second()
            if day == self.enrol_day[c] and ts <= self.created[c]:
                ts = self.created[c] + 60 + rng.randrange(300)
            events.append((ts, 0, c))
        expected = self.anonymous_per_day * (1.4 if self.weekday[day] == 5 else 1.0) / (1.4 / 6 + 5 / 6)
        for _ in range(int(expected) + (rng.random() < expected % 1)):
            events.append((opens + self.opening_second(), 1, None))
        for sale in self.returns_due.pop(day, ()):
            events.append((opens + self.opening_second(), 2, sale))
        events.sort(key=itemgetter(0))
        for ts, kind, payload in events:
            if ts > self.end_ts:
                continue
            if kind == 0:
                self.member_sale(payload, ts, day)
            elif kind == 1:
                self.anonymous_sale(ts, day)
            else:
                self.member_return(payload, ts, day)
            if self.buffered >= FLUSH_ROWS:
                self.flush()

    def _new_transaction_id(self) -> tuple[str, int, str]:
        self.sale_counter += 1
        till = int(self.rng.random() * len(TILLS))
        return f"{TILLS[till]}-{self.sale_counter:09d}", till + 1, S.CASHIERS[self.sale_counter % len(S.CASHIERS)]

    def _visit_code(self) -> str:
        """Eight letters, different for every sale: the sale's number, scrambled one-to-one."""
        if self._coded[0] == self.sale_counter:
            return self._coded[1]
        n = (self.sale_counter * 0x9E3779B1) % (1 << 40)
        pairs = self.code_pairs
        code = pairs[n & 1023] + pairs[(n >> 10) & 1023] + pairs[(n >> 20) & 1023] + pairs[n >> 30]
        self._coded = (self.sale_counter, code)
        return code

    def basket(self, choose: Callable[[], tuple[int, int]]) -> list[list]:
        """[item, quantity_milli, gross, line_discount, reward_discount, points, slot] per line; the slot
        is which of the customer's regulars it is (DEPOSIT_SLOT for a bottle deposit, -1 if anonymous)."""
        rng = self.rng
        count = 1 + min(29, int(rng.expovariate(1.0) * 7.0))
        lines = []
        for _ in range(count):
            i, slot = choose()
            item = self.items[i]
            if item.weighed:
                qty = item.weighed[0] + int(rng.random() * (item.weighed[1] - item.weighed[0] + 1))
            else:
                qty = self.quantity_pick[rng.getrandbits(5)]
            gross = (item.unit_price * qty + 500) // 1000
            lines.append([i, qty, gross, gross // 10 if rng.random() < 0.03 else 0, 0, 0, slot])
            if i in self.bottled:
                d = self.deposit
                lines.append([d, qty, (self.items[d].unit_price * qty + 500) // 1000, 0, 0, 0, DEPOSIT_SLOT if slot >= 0 else -1])
        return lines[:30]

    def member_sale(self, c: int, ts: int, day: int) -> None:
        rng = self.rng
        profile = self.profiles[self._hash(c) % PROFILES]
        slot_pick = self.slot_pick

        def choose() -> tuple[int, int]:
            slot = slot_pick[rng.getrandbits(10)]
            return profile[slot], slot

        lines = self.basket(choose)
        tx_id, till, cashier = self._new_transaction_id()
        card = self.card_at(c, ts)
        earns = self.earns
        rolling = self.rolling_before(c, ts)
        tier = self.tier_index(rolling)
        balance_before = self.balance[c]

        # a reward, now and then, when the points are there
        applied = []
        if balance_before >= 200 and rng.random() < 0.3:
            affordable = [r for r in self.rewards if r["points_cost"] <= balance_before and r["kind"] != "free_item"
                          and (not r["tiers"] or self.programme.tiers[tier].code in r["tiers"])]
            if affordable:
                reward = affordable[rng.randrange(len(affordable))]
                eligible = [ln for ln in lines if earns[ln[0]] and ln[2] - ln[3] - ln[4] > 0]
                remaining = sum(ln[2] - ln[3] - ln[4] for ln in eligible)
                if remaining > 0:
                    if reward["kind"] == "amount_off":
                        wanted = reward["amount"]
                    else:
                        wanted = min(remaining * reward["percent"] // 100, reward["cap"])
                    discount = min(wanted, remaining)
                    shares = split_proportionally(discount, [ln[2] - ln[3] - ln[4] for ln in eligible])
                    for ln, share in zip(eligible, shares):
                        ln[4] += share
                    applied.append((reward, discount))

        # points, as domain.earning.compute_earning works them out (integers in ten-thousandths)
        promo = self.promo_m[day]
        product_m = self.product_m
        tier_m = self.tier_m[tier]
        base_sum = promo_sum = 0
        weights = []
        eligible_spend = 0
        for ln in lines:
            i = ln[0]
            paid = ln[2] - ln[3] - ln[4]
            if not earns[i]:
                weights.append(0)
                continue
            eligible_spend += paid
            if paid <= 0:
                weights.append(0)
                continue
            b = paid * product_m[i]
            p = b * (promo[i] if promo is not None else 10_000)
            base_sum += b
            promo_sum += p
            weights.append(p * tier_m)
        base = base_sum // 1_000_000
        with_promo = promo_sum // 10_000_000_000
        total = sum(weights) // 100_000_000_000_000
        for ln, share in zip(lines, split_proportionally(total, weights)):
            ln[5] = share
        bonuses = []
        for name, points, min_spend, covered in self.promo_bonus[day]:
            covered_spend = sum(ln[2] - ln[3] - ln[4] for ln in lines if earns[ln[0]] and ln[0] in covered)
            if covered_spend > 0 and covered_spend >= min_spend:
                bonuses.append(("promotion", points, name))
        if not self.welcomed[c]:
            self.welcomed[c] = 1
            bonuses.append(("welcome", self.programme.welcome_bonus, "Welcome bonus"))
        birthday = self.birthday[c]
        birthday_week = birthday is not None and (birthday.month, birthday.day) in self.birthday_weeks[day]
        if birthday_week:
            year = self.days[day].year
            if self.birthday_year[c] != year:
                self.birthday_year[c] = year
                bonuses.append(("birthday", self.programme.birthday_bonus, "Birthday bonus"))

        # the ledger: spend first, then what the sale earns
        redeemed = 0
        for reward, discount in applied:
            cost = reward["points_cost"]
            self.ledger(c, "redeem", "sale", -cost, ts, tx=tx_id, reason=reward["name"])
            self.debit(c, cost)
            redeemed += cost
            rid = self.next_redemption_id
            self.next_redemption_id += 1
            self.add("redemptions", (rid, tx_id, reward["id"], reward["name"], cost, discount))
            self.stats.redemptions += 1
        expires = self.expiry_stamp[day]
        earn_lot = None
        earn_entry = None
        if total:
            earn_entry = self.ledger(c, "earn", "sale", total, ts, expires, tx_id)
            earn_lot = self.credit(c, earn_entry, total, day)
        for cause, points, reason in bonuses:
            entry = self.ledger(c, "bonus", cause, points, ts, expires, tx_id, reason=reason)
            self.credit(c, entry, points, day)
        earned = total + sum(b[1] for b in bonuses)
        self.spend(c, ts, eligible_spend)

        # the favourites
        base_slot = c * KEPT
        seen: dict[int, int] = {}
        for ln in lines:
            seen[ln[6]] = seen.get(ln[6], 0) + ln[1]
        for slot, qty in seen.items():
            k = base_slot + slot
            self.visits_of[k] += 1
            self.quantity_of[k] += qty
            self.last_bought[k] = ts

        subtotal = sum(ln[2] - ln[3] for ln in lines)
        discount = sum(d for _, d in applied)
        line_rows, lines_json = self.write_lines(tx_id, lines)
        bonus_view = [{"cause": cause, "points": points, "reason": reason} for cause, points, reason in bonuses]
        view = self.view(tx_id, "sale", None, ts, TILLS[till - 1], cashier, lines_json, subtotal, discount,
                         [{"reward_id": r["id"], "name": r["name"], "points": r["points_cost"], "discount": d} for r, d in applied],
                         c, card, earned, {"base": base, "promotion": with_promo - base, "tier": total - with_promo, "bonuses": bonus_view},
                         0, redeemed, balance_before, birthday_week)
        self.stats.sales += 1
        self.add("transactions", (
            tx_id, "sale", None, till, cashier, self.stamp(ts), self.stamp(ts + 1), S.CURRENCY, c + 1, card, subtotal,
            discount, subtotal - discount, eligible_spend, earned, redeemed, 1, _request_hash(tx_id), view,
            self._visit_code(), None,
        ))

        # some come back with something, and some get goodwill points
        if len(lines) >= 2 and not any(b[0] == "promotion" for b in bonuses) and rng.random() < self.plan.return_share:
            back_day = day + rng.randint(1, 14)
            if back_day < len(self.days) and self.weekday[back_day] != 6:
                pick = rng.randrange(len(lines))
                ln = lines[pick]
                same_sku = sum(1 for other in lines if other[0] == ln[0]) > 1
                self.returns_due.setdefault(back_day, []).append(
                    (tx_id, c, card, line_rows[pick], ln, earn_entry, earn_lot, same_sku)
                )
        if rng.random() < self.plan.goodwill_share:
            self.goodwill(c, ts + 120, day, S.CASHIERS[self.sale_counter % len(S.CASHIERS)])

    def write_lines(self, tx_id: str, lines: list[list]) -> tuple[list[tuple], str]:
        """The sale's line rows, and the same lines as the JSON of the till's answer."""
        rows = []
        texts = []
        items, encoded, quantities = self.items, self.encoded, self.quantity_json
        line_id = self.next_line_id
        for n, ln in enumerate(lines, start=1):
            i = ln[0]
            item = items[i]
            paid = ln[2] - ln[3] - ln[4]
            row = (line_id, tx_id, n, item.sku, item.description, item.category, ln[1], item.unit_price, ln[3], ln[4], paid, ln[5], None)
            line_id += 1
            rows.append(row)
            q = quantities.get(ln[1])
            if q is None:
                q = quantities[ln[1]] = json.dumps(_quantity(ln[1]))
            texts.append(f'{{"line_no": {n}, {encoded[i]}, "quantity": {q}, "unit_price": {item.unit_price}, '
                         f'"line_discount": {ln[3]}, "reward_discount": {ln[4]}, "paid": {paid}, "points": {ln[5]}}}')
        self.next_line_id = line_id
        self.line_rows.extend(rows)
        self.buffered += len(rows)
        return rows, ", ".join(texts)

    def line_json(self, row: tuple) -> str:
        return json.dumps({"line_no": row[2], "sku": row[3], "description": row[4], "category": row[5], "quantity": _quantity(row[6]),
                           "unit_price": row[7], "line_discount": row[8], "reward_discount": row[9], "paid": row[10], "points": row[11]})

    def view(self, tx_id, kind, original_id, ts, till, cashier, lines_json, subtotal, discount, rewards, c, card,
             earned, breakdown, reversed_points, redeemed, balance_before, birthday_week) -> str:
        """The answer the till got (JSON), as ``services.transactions.transaction_view`` shapes it."""
        head = {
            "id": tx_id, "kind": kind, "original_id": original_id, "occurred_at": self.iso(ts), "recorded_at": self.iso(ts + 1),
            "till": till, "cashier": cashier, "currency": S.CURRENCY,
            "visit_code": self._visit_code() if kind == "sale" else None, "programme_version": 1,
        }
        view: dict[str, Any] = {
            "subtotal": subtotal, "rewards": rewards, "discount": discount, "total": subtotal - discount, "customer": None,
            "points": {"earned": earned if kind == "sale" else 0, "breakdown": None, "reversed": reversed_points, "given_back": 0,
                       "redeemed": redeemed, "balance_before": None, "balance_after": None},
            "tier": None, "next_expiry": None, "next_reward": None, "birthday_week": False,
        }
        if c is None:
            return f'{json.dumps(head)[:-1]}, "lines": [{lines_json}], {json.dumps(view)[1:]}'
        name, first, preferred, language = self._person(c)
        balance = self.balance[c]
        view["points"].update(breakdown=breakdown, balance_before=balance_before, balance_after=balance)
        view["customer"] = {"id": c + 1, "name": name, "preferred_name": preferred or first, "language": language, "card_number": card}
        rolling = self.rolling_sum[c]
        tier = self.programme.tiers[self.tier_index(rolling)]
        nxt = self.programme.next_tier(rolling)
        view["tier"] = {"code": tier.code, "name": tier.name, "multiplier": self.tier_text[tier.code], "rolling_spend": rolling,
                        "next": {"code": nxt.code, "name": nxt.name, "spend_needed": nxt.min_spend - rolling} if nxt else None}
        lots = self.lots[c]
        if balance > 0 and lots:
            first_expiry = lots[0][2]
            points = 0
            for lot in lots:
                if lot[2] != first_expiry:
                    break
                points += lot[1]
            at = dt.datetime.fromtimestamp(first_expiry, dt.timezone.utc)
            view["next_expiry"] = {"points": points, "date": last_valid_day(at, self.tz).isoformat(), "expires_at": at.isoformat()}
        for r in self.rewards_by_cost:
            if r["points_cost"] > balance and (not r["tiers"] or tier.code in r["tiers"]):
                view["next_reward"] = {"id": r["id"], "name": r["name"], "points_cost": r["points_cost"],
                                       "points_needed": r["points_cost"] - max(balance, 0)}
                break
        view["birthday_week"] = birthday_week
        return f'{json.dumps(head)[:-1]}, "lines": [{lines_json}], {json.dumps(view)[1:]}'

    def anonymous_sale(self, ts: int, day: int) -> None:
        rng = self.rng
        everyday = self.everyday
        lines = self.basket(lambda: (everyday[rng.randrange(len(everyday))], -1))
        tx_id, till, cashier = self._new_transaction_id()
        subtotal = sum(ln[2] - ln[3] for ln in lines)
        eligible = sum(ln[2] - ln[3] for ln in lines if self.earns[ln[0]])
        _, lines_json = self.write_lines(tx_id, lines)
        view = self.view(tx_id, "sale", None, ts, TILLS[till - 1], cashier, lines_json, subtotal, 0, [], None, None, 0, None, 0, 0, 0, False)
        self.stats.anonymous_sales += 1
        self.add("transactions", (
            tx_id, "sale", None, till, cashier, self.stamp(ts), self.stamp(ts + 1), S.CURRENCY, None, None, subtotal, 0,
            subtotal, eligible, 0, 0, 1, _request_hash(tx_id), view, self._visit_code(), None,
        ))

    def member_return(self, sale: tuple, ts: int, day: int) -> None:
        """One line of a sale brought back in full: its points reversed, aimed at the sale's lot."""
        original_id, c, card, line_row, ln, earn_entry, earn_lot, same_sku = sale
        tx_id, till, cashier = self._new_transaction_id()
        paid, points = line_row[10], line_row[11]
        balance_before = self.balance[c]
        change = 0
        if points:
            self.ledger(c, "reverse", "return", -points, ts, tx=tx_id, lot_id=earn_entry, reason=f"return of {original_id}")
            self.debit(c, points, earn_lot)
            change = -points
        eligible = -paid if self.earns[ln[0]] else 0
        self.rolling_before(c, ts)
        self.spend(c, ts, eligible)
        k = c * KEPT + ln[6]
        self.quantity_of[k] = max(0, self.quantity_of[k] - ln[1])
        if not same_sku:
            self.visits_of[k] = max(0, self.visits_of[k] - 1)
        item = self.items[ln[0]]
        line_id = self.next_line_id
        self.next_line_id += 1
        row = (line_id, tx_id, 1, item.sku, item.description, item.category, ln[1], item.unit_price, 0, 0, -paid, -points, line_row[0])
        self.add("transaction_lines", row)
        view = self.view(tx_id, "return", original_id, ts, TILLS[till - 1], cashier, self.line_json(row), -paid, 0, [], c, card, 0, None,
                         points, 0, balance_before, self.in_birthday_week(c, day))
        self.stats.returns += 1
        self.add("transactions", (
            tx_id, "return", original_id, till, cashier, self.stamp(ts), self.stamp(ts + 1), S.CURRENCY, c + 1, card, -paid, 0,
            -paid, eligible, change, 0, 1, _request_hash(tx_id), view, None, None,
        ))

    def goodwill(self, c: int, ts: int, day: int, user: str) -> None:
        points = (20, 30, 50, 100)[self.rng.randrange(4)]
        before = self.balance[c]
        reason = GOODWILL_REASONS[self.rng.randrange(len(GOODWILL_REASONS))]
        entry = self.ledger(c, "adjust", "adjustment", points, ts, self.expiry_stamp[day], user=user, reason=reason)
        self.credit(c, entry, points, day)
        audit_id = self.next_audit_id
        self.next_audit_id += 1
        self.add("audit_log", (audit_id, self.stamp(ts), user, "points.adjust", "customer", str(c + 1), json.dumps({"balance": before}),
                               json.dumps({"balance": self.balance[c], "points": points, "reason": reason, "role": "cashier"})))

    # -- what does not change with trading -----------------------------------------------------
    def write_set_up(self) -> None:
        start = self.stamp(self.start_ts)
        self.add("programme_versions", (1, start, "manager", json.dumps(self.programme.to_dict())))
        for r in self.rewards:
            self.add("rewards", (r["id"], r["name"], r["kind"], r.get("amount"), r.get("percent"), r.get("cap"), r.get("sku"),
                                 r["points_cost"], None, None, json.dumps(r["tiers"]) if r["tiers"] else None, True, start))
        for i, name in enumerate(TILLS, start=1):
            token_hash = hashlib.sha256(f"generated-till-{i}-{self.rng.random()}".encode()).hexdigest()
            self.add("tills", (i, name, token_hash, start, None))
        audit_id = self.next_audit_id
        self.next_audit_id += 1
        self.add("audit_log", (audit_id, start, "manager", "programme.save", "programme", "1", None, json.dumps(self.programme.to_dict())))

    def write_customers(self) -> None:
        """Customers (with their final balances), their cards and their favourites."""
        for c in range(self.plan.customers):
            h = self._hash(c)
            name, first, preferred, language = self._person(c)
            last = name[len(first) + 1:]
            r = self._hash(c + 0x5EED) | 1  # another 64 bits for this customer: 7 bits per choice

            def chance(k: int, p: float) -> bool:
                return (r >> (7 * k)) % 128 < p * 128

            def pick(k: int, options):
                return options[(r >> (7 * k + 3)) % len(options)]

            preferences: dict[str, Any] = {}
            if chance(0, 0.12):
                preferences["allergies"] = pick(0, S.ALLERGIES)
            if chance(1, 0.15):
                preferences["dietary"] = pick(1, S.DIETARY)
            if chance(2, 0.2):
                preferences["packaging"] = pick(2, S.PACKAGING)
            if chance(3, 0.06):
                preferences["service_notes"] = pick(3, S.SERVICE_NOTES)
            if chance(4, 0.3):
                preferences["contact_channel"] = pick(4, ("email", "sms", "post", "none"))
            email = f"{self.folded(first)}.{self.folded(last)}.{c + 1}@example.org" if chance(5, 0.75) else None
            phone = f"+49 151 {10_000_000 + c:08d}" if chance(6, 0.5) else None
            birthday = self.birthday[c]
            created = self.stamp(self.created[c])
            self.add("customers", (
                c + 1, name, preferred, email, phone, birthday.isoformat() if birthday else None, language, chance(7, 0.6),
                json.dumps(preferences), pick(8, S.STAFF_NOTES) if chance(8, 0.03) else None, self.balance[c], created,
                created, None,
            ))
            lost = self.lost_card.get(c)
            if lost is None:
                self.add("cards", (self.cards[c], c + 1, "active", created, None, None))
            else:
                self.add("cards", (self.cards[c], c + 1, "blocked", created, self.stamp(lost), "lost"))
                self.add("cards", (self._card_number(c, 1), c + 1, "active", self.stamp(lost), None, None))
            profile = self.profiles[h % PROFILES]
            base = c * KEPT
            for slot in range(KEPT):
                k = base + slot
                if self.last_bought[k]:
                    item = self.items[profile[slot]]
                    self.add("customer_products", (c + 1, item.sku, item.description, self.visits_of[k], self.quantity_of[k],
                                                   self.stamp(self.last_bought[k])))
            # the simulation's own bookkeeping must agree with the ledger it wrote
            held = sum(lot[1] for lot in self.lots[c] or ()) - self.deficit[c]
            if held != self.balance[c]:
                raise AssertionError(f"customer {c + 1}: lots {held} != balance {self.balance[c]}")
            if self.buffered >= FLUSH_ROWS:
                self.flush()


def _inverse_cdf(weights: list[float], total: float, u: float) -> int:
    acc = 0.0
    for k, w in enumerate(weights):
        acc += w / total
        if u <= acc:
            return k
    return len(weights) - 1


def _quantity(milli: int) -> str:
    whole, frac = divmod(milli, 1000)
    return str(whole) if not frac else f"{whole}.{frac:03d}".rstrip("0")


def _request_hash(tx_id: str) -> str:
    return hashlib.sha256(tx_id.encode()).hexdigest()


# -- building a database ---------------------------------------------------------------------------


def create_schema(url: str) -> None:
    from sqlalchemy import create_engine

    from pos_loyalty.persistence.db import normalise_url
    from pos_loyalty.persistence.migrate import upgrade_to_head

    engine = create_engine(normalise_url(url))
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()


def generate(url: str, plan: Plan, progress: Callable[[str], None] = lambda _: None) -> Stats:
    """Migrate an empty database at ``url`` and fill it according to ``plan``."""
    create_schema(url)
    if url.startswith("sqlite"):
        sink = SqliteSink(url.split("///", 1)[1])
    else:
        sink = PostgresSink(url)
    return History(plan, sink, progress).run()


# -- proving the data is what the product would have written --------------------------------------


def check_invariants(url: str, *, sample: int = 300, seed: int = 7) -> dict[str, Any]:
    """Counts of rows breaking the product's invariants (all zero when the data is right), and a
    sample of customers replayed and sales recomputed with the product's own domain code."""
    from sqlalchemy import create_engine, text

    from pos_loyalty.domain import earning as E
    from pos_loyalty.domain.ledger import Entry, replay
    from pos_loyalty.persistence.db import normalise_url

    engine = create_engine(normalise_url(url))
    tz = ZoneInfo(S.TIMEZONE)
    problems: dict[str, Any] = {}
    queries = {
        "balance_is_not_the_ledger_sum": """
            SELECT count(*) FROM customers c LEFT JOIN (
              SELECT customer_id, sum(points) AS s FROM ledger_entries GROUP BY customer_id) l ON l.customer_id = c.id
            WHERE c.balance != coalesce(l.s, 0)""",
        "earn_entry_is_not_the_lines_points": """
            SELECT count(*) FROM transactions t
              JOIN (SELECT transaction_id, sum(points) AS s FROM transaction_lines GROUP BY transaction_id) l ON l.transaction_id = t.id
              LEFT JOIN (SELECT transaction_id, sum(points) AS s FROM ledger_entries WHERE kind = 'earn' GROUP BY transaction_id) e
                ON e.transaction_id = t.id
            WHERE t.kind = 'sale' AND t.customer_id IS NOT NULL AND l.s != coalesce(e.s, 0)""",
        "points_earned_is_not_earn_plus_bonuses": """
            SELECT count(*) FROM transactions t LEFT JOIN (
              SELECT transaction_id, sum(points) AS s FROM ledger_entries WHERE kind IN ('earn', 'bonus') GROUP BY transaction_id) e
                ON e.transaction_id = t.id
            WHERE t.kind = 'sale' AND t.points_earned != coalesce(e.s, 0)""",
        "points_redeemed_is_not_the_redeem_entries": """
            SELECT count(*) FROM transactions t
              LEFT JOIN (SELECT transaction_id, -sum(points) AS s FROM ledger_entries WHERE kind = 'redeem' GROUP BY transaction_id) e
                ON e.transaction_id = t.id
              LEFT JOIN (SELECT transaction_id, sum(points) AS s FROM redemptions GROUP BY transaction_id) r ON r.transaction_id = t.id
            WHERE t.points_redeemed != coalesce(e.s, 0) OR t.points_redeemed != coalesce(r.s, 0)""",
        "return_is_not_its_reversals": """
            SELECT count(*) FROM transactions t
              JOIN (SELECT transaction_id, sum(points) AS s FROM transaction_lines GROUP BY transaction_id) l ON l.transaction_id = t.id
              LEFT JOIN (SELECT transaction_id, sum(points) AS s FROM ledger_entries GROUP BY transaction_id) e ON e.transaction_id = t.id
            WHERE t.kind = 'return' AND (l.s != coalesce(e.s, 0) OR t.points_earned != coalesce(e.s, 0))""",
        "anonymous_sale_with_points": """
            SELECT count(*) FROM transactions t WHERE t.customer_id IS NULL AND (t.points_earned != 0 OR EXISTS (
              SELECT 1 FROM ledger_entries e WHERE e.transaction_id = t.id))""",
        "line_total_is_not_the_sale_total": """
            SELECT count(*) FROM transactions t
              JOIN (SELECT transaction_id, sum(paid) AS s FROM transaction_lines GROUP BY transaction_id) l ON l.transaction_id = t.id
            WHERE l.s != t.total""",
    }
    with engine.connect() as conn:
        for name, sql in queries.items():
            problems[name] = int(conn.execute(text(sql)).scalar() or 0)
        data = json.loads(conn.execute(text("SELECT data FROM programme_versions ORDER BY id DESC LIMIT 1")).scalar()) \
            if engine.dialect.name == "sqlite" else conn.execute(text("SELECT data FROM programme_versions ORDER BY id DESC LIMIT 1")).scalar()
        programme = Programme.from_dict(data, version_id=1)
        count = int(conn.execute(text("SELECT max(id) FROM customers")).scalar() or 0)
        rng = random.Random(seed)
        ids = sorted({rng.randint(1, count) for _ in range(sample)}) if count else []
        last_run = conn.execute(text("SELECT max(created_at) FROM ledger_entries WHERE kind = 'expire'")).scalar()
        last_run = _as_utc(last_run)
        replay_mismatch = expired_left = 0
        for cid in ids:
            rows = conn.execute(text(
                "SELECT id, points, kind, created_at, expires_at, lot_id FROM ledger_entries WHERE customer_id = :c ORDER BY id"
            ), {"c": cid}).all()
            entries = [Entry(r[0], r[1], r[2], _as_utc(r[3]), _as_utc(r[4]), r[5]) for r in rows]
            lots = replay(entries)
            balance = conn.execute(text("SELECT balance FROM customers WHERE id = :c"), {"c": cid}).scalar()
            replay_mismatch += lots.balance != balance
            if last_run is not None:
                expired_left += bool(lots.expired(last_run))
        problems["replay_balance_differs"] = replay_mismatch
        problems["points_left_past_expiry_at_last_run"] = expired_left

        # recompute a sample of sales with the product's own earning rules
        sales = conn.execute(text(
            "SELECT id, customer_id, occurred_at, points_earned FROM transactions WHERE kind = 'sale' AND customer_id IS NOT NULL "
            "AND id IN (SELECT id FROM transactions WHERE customer_id IS NOT NULL AND kind = 'sale' ORDER BY visit_code LIMIT :n)"
        ), {"n": sample}).all()
        wrong_points = 0
        for tx_id, cid, occurred, earned in sales:
            occurred = _as_utc(occurred)
            rolling = int(conn.execute(text(
                "SELECT coalesce(sum(eligible_spend), 0) FROM transactions WHERE customer_id = :c AND occurred_at > :since "
                "AND occurred_at < :at"), {"c": cid, "since": _bind(engine, occurred - dt.timedelta(days=365)), "at": _bind(engine, occurred)}
            ).scalar())
            rows = conn.execute(text(
                "SELECT line_no, sku, description, category, quantity_milli, unit_price, line_discount, reward_discount, points "
                "FROM transaction_lines WHERE transaction_id = :t ORDER BY line_no"), {"t": tx_id}).all()
            lines = [E.Line(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows]
            extra = [E.Bonus(cause, points, reason) for cause, points, reason in conn.execute(text(
                "SELECT cause, points, reason FROM ledger_entries WHERE transaction_id = :t AND kind = 'bonus' "
                "AND cause IN ('welcome', 'birthday') ORDER BY id"), {"t": tx_id}).all()]
            result = E.compute_earning(lines, programme, tier=programme.tier_for(rolling), day=occurred.astimezone(tz).date(),
                                       extra_bonuses=extra)
            if [ln.points for ln in result.lines] != [r[8] for r in rows] or result.total != earned:
                wrong_points += 1
        problems["sales_the_product_would_price_differently"] = wrong_points
        problems["sample"] = {"customers": len(ids), "sales": len(sales)}
    engine.dispose()
    return problems


def _as_utc(value):
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def _bind(engine, moment: dt.datetime):
    if engine.dialect.name == "sqlite":
        return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment


def describe(path: Path, plan: Plan, stats: Stats, load_before, invariants: dict[str, Any] | None) -> dict[str, Any]:
    """What ``python -m bench`` keeps beside a generated SQLite file (``.json``), to reuse it."""
    info = {"generated_at": plan.end.isoformat(), "size": {"customers": plan.customers, "transactions": plan.transactions},
            "stats": stats.as_dict(), "load_average": [list(load_before), list(os.getloadavg())],
            "size_mb": round(path.stat().st_size / 1e6, 1), "invariants": invariants}
    path.with_suffix(".json").write_text(json.dumps(info, indent=2))
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default="quick", help="quick (default), medium, full, tiny, or CUSTOMERS/TRANSACTIONS")
    parser.add_argument("--out", help="SQLite file to create (must not exist)")
    parser.add_argument("--url", help="or an empty PostgreSQL database URL")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--no-check", action="store_true", help="skip the invariant check afterwards")
    args = parser.parse_args(argv)
    if bool(args.out) == bool(args.url):
        parser.error("give --out FILE or --url URL")
    if args.out:
        path = Path(args.out)
        if path.exists():
            parser.error(f"{path} exists; the generator only fills a new database")
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
    else:
        url = args.url
    customers, transactions = args.size
    plan = Plan(customers, transactions, end=dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0), seed=args.seed)
    load_before = os.getloadavg()
    stats = generate(url, plan, progress=lambda line: print(f"  {line}", file=sys.stderr, flush=True))
    print(json.dumps(stats.as_dict(), indent=2))
    invariants = None
    if not args.no_check:
        invariants = check_invariants(url)
        print(json.dumps(invariants, indent=2))
    if args.out:
        describe(Path(args.out), plan, stats, load_before, invariants)
    return 0


if __name__ == "__main__":
    sys.exit(main())
