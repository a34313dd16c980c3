"""``python -m bench``: build (or reuse) the data, run every measurement beside its limit, print
the table and write the JSON to ``bench/results/``."""
from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import generate as G
from . import shop_model as S
from .floors import RawDatabase, connect_raw
from .measure import Timings, load_average, machine, many_tills, one_till, python_reference_ms, rss_mb, time_calls

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN_URL = os.environ.get("POS_LOYALTY_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
CASHIER, CASHIER_PASSWORD = "bench-cashier", "bench-password-1"
REWARD_ID, REWARD_POINTS = 3, 200  # "€2 off your shopping"


@dataclass(frozen=True)
class Budget:
    """How many requests each measurement makes, and for how long at most (seconds)."""

    latency: int
    throughput: int
    lookups: int
    scans: int
    receipts: int
    report_repeat: int
    max_seconds: float
    expiry_twice: bool = True

    @classmethod
    def for_size(cls, customers: int, scale: float) -> "Budget":
        big = customers >= 500_000
        n = (lambda x: max(20, int(x * scale)))
        return cls(latency=n(1000 if big else 300), throughput=n(3000 if big else 800), lookups=n(2000 if big else 500),
                   scans=n(200 if big else 100), receipts=n(500 if big else 200), report_repeat=1 if big else 3,
                   max_seconds=40.0 if big else 20.0, expiry_twice=not big)


@dataclass
class Row:
    area: str
    measure: str
    value: str
    limit: str = ""
    ratio: str = ""
    target: str = ""
    verdict: str = ""
    load: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, *args: Any, **kw: Any) -> None:
        self.rows.append(Row(*args, **kw))


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def ms(value: float | None) -> str:
    return "-" if value is None else (f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms")


def loadavg(t: Timings | dict | None) -> str:
    if t is None:
        return ""
    values = t.load if isinstance(t, Timings) else t.get("load_average", [])
    return f"{values[0]:.1f}" if values else ""


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("pass" if ok else "MISS")


# -- requests the tills send -----------------------------------------------------------------------


class Tills:
    """Checkout bodies (ten lines, a card) and card numbers from the generated customers."""

    def __init__(self, raw: RawDatabase, tag: str, *, cards: int, seed: int = 11) -> None:
        self.rng = random.Random(seed)
        self.tag = tag
        q = raw._sql
        order = "random()"
        self.cards = [r[0] for r in raw.conn.execute(q(
            f"SELECT c.number FROM cards c JOIN customers u ON u.id = c.customer_id WHERE c.status = 'active' "
            f"AND u.erased_at IS NULL ORDER BY {order} LIMIT ?"), (cards,)).fetchall()]
        # customers who can pay for the reward: each appears as often as their balance pays for it
        # (not counting what the sales earn), spread over three streams that never share a visit:
        # the storage floor's, the bare endpoint's and the product's
        holders = raw.conn.execute(q(
            f"SELECT c.number, u.balance FROM cards c JOIN customers u ON u.id = c.customer_id WHERE c.status = 'active' "
            f"AND u.erased_at IS NULL AND u.balance >= ? ORDER BY {order} LIMIT 20000"), (REWARD_POINTS,)).fetchall()
        visits = []
        left = {card: balance // REWARD_POINTS for card, balance in holders}
        while left:
            for card in list(left):
                visits.append(card)
                left[card] -= 1
                if not left[card]:
                    del left[card]
        self.rich = [visits[k::3] for k in range(3)]
        items = [it for it in S.catalogue() if it.category not in ("tobacco", "deposits")]
        self.baskets = [self._basket(items) for _ in range(64)]
        self.ids = itertools.count(1)

    def _basket(self, items: list[S.Item]) -> list[dict[str, Any]]:
        lines = []
        for it in self.rng.sample(items, 10):
            quantity = "0.5" if it.weighed else str(self.rng.choice((1, 1, 1, 2)))
            lines.append({"sku": it.sku, "description": it.description, "category": it.category, "quantity": quantity,
                          "unit_price": it.unit_price})
        return lines

    def sale(self, i: int, *, reward: bool = False, stream: int = 0) -> dict[str, Any]:
        pool = self.rich[stream] if reward else self.cards
        body: dict[str, Any] = {
            "id": f"bench-{self.tag}-{next(self.ids)}",
            "occurred_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "currency": S.CURRENCY,
            "card_number": pool[i % len(pool)],
            "cashier": "bench",
            "lines": self.baskets[i % len(self.baskets)],
        }
        if reward:
            body["rewards"] = [REWARD_ID]
        return body

    def checkout(self, path: str, *, reward: bool = False, stream: int = 0) -> Callable[[int], tuple[str, str, bytes]]:
        return lambda i: ("POST", path, json.dumps(self.sale(i, reward=reward, stream=stream)).encode())

    def lookup(self, prefix: str) -> Callable[[int], tuple[str, str, None]]:
        return lambda i: ("GET", f"{prefix}{self.cards[i % len(self.cards)]}", None)


# -- one database ----------------------------------------------------------------------------------


def product_services(data_dir: Path, url: str):
    from pos_loyalty.app import build_services
    from pos_loyalty.config import ensure_data_dir, load_settings

    settings = ensure_data_dir(load_settings({
        "data_dir": str(data_dir), "database_url": url, "timezone": S.TIMEZONE, "currency": S.CURRENCY,
        "locale": S.LOCALE, "card_prefix": S.CARD_PREFIX, "run_daily_expiry": False,
    }, environ={}))
    return build_services(settings)


def prepare_staff(services, tag: str) -> str:
    """A till token for the load, and a cashier login for the screen."""
    from pos_loyalty.domain.errors import Conflict
    from pos_loyalty.services.access import add_till, add_user

    _, token = add_till(services.shop, f"bench-{tag}")
    try:
        add_user(services.shop, CASHIER, CASHIER_PASSWORD, "cashier", actor="bench")
    except Conflict:
        pass
    return token


def sample_answer(services, tills: Tills) -> dict[str, Any]:
    """One real checkout through the product's use case: its answer is what the floors store and send."""
    from pos_loyalty.api.till import _sale_request
    from pos_loyalty.api.schemas import SaleSchema
    from pos_loyalty.services.transactions import record_sale

    body = SaleSchema().load(tills.sale(0))
    return record_sale(services.shop, _sale_request(body), till_id=None, till_name="bench")


@dataclass(frozen=True)
class Side:
    """One server under test: where it listens and what its requests look like."""

    label: str
    port: int
    headers: dict[str, str]
    checkout_path: str
    lookup_prefix: str
    reward_stream: int  # its own customers for the reward, never shared with the other side


PHASES = ("lookup", "checkout_1", "reward_1", "checkout_4", "checkout_16")


def _phase(side: Side, phase: str, tills: Tills, budget: Budget, *, rounds: int, round_no: int) -> Timings:
    """One round's share of one measurement: its share of the requests and of the time, the
    requests numbered on from the rounds before (so a reward's customers are never asked twice)."""
    count = {"lookup": budget.lookups, "checkout_4": budget.throughput, "checkout_16": budget.throughput}.get(phase, budget.latency)
    share = -(-count // rounds)
    seconds = budget.max_seconds / rounds
    if phase == "lookup":
        requests = tills.lookup(side.lookup_prefix)
    elif phase == "reward_1":
        requests = tills.checkout(side.checkout_path, reward=True, stream=side.reward_stream)
    else:
        requests = tills.checkout(side.checkout_path)
    offset = round_no * share
    # the warm-ups (negative numbers, from the end of the list) move on each round too
    numbered = lambda i: requests(i + offset if i >= 0 else i - offset)  # noqa: E731
    if phase.endswith(("_4", "_16")):
        return many_tills(side.port, side.headers, numbered, clients=int(phase.rsplit("_", 1)[1]), count=share, max_seconds=seconds)
    return one_till(side.port, side.headers, numbered, count=share, max_seconds=seconds)


def merged(parts: list[Timings]) -> Timings:
    """The rounds of one measurement as one: every latency, the errors, the time it took in all."""
    out = Timings()
    for t in parts:
        out.seconds.extend(t.seconds)
        out.errors += t.errors
        for status, n in t.statuses.items():
            out.statuses[status] = out.statuses.get(status, 0) + n
        out.elapsed += t.elapsed
        out.load = t.load
    return out


def side_by_side(sides: list[Side], tills: Tills, budget: Budget, *, rounds: int = 4) -> dict[str, dict[str, Timings]]:
    """Each measurement of every side, taken in ``rounds`` turns: a round runs each phase on one
    side and straight after on the other (who goes first alternating), so a machine that speeds up
    or slows down over the minutes of a run (this one's CPU varied by a fifth within ten minutes)
    weighs on the product and its limit alike, and a ratio compares what was measured side by side."""
    parts: dict[str, dict[str, list[Timings]]] = {s.label: {p: [] for p in PHASES} for s in sides}
    for round_no in range(rounds):
        for phase in PHASES:
            order = sides if round_no % 2 == 0 else sides[::-1]
            for side in order:
                say(f"  round {round_no + 1}/{rounds}, {side.label}: {phase.replace('_', ', ')} till(s)" if phase != "lookup"
                    else f"  round {round_no + 1}/{rounds}, {side.label}: card lookup")
                parts[side.label][phase].append(_phase(side, phase, tills, budget, rounds=rounds, round_no=round_no))
    return {label: {phase: merged(ts) for phase, ts in phases.items()} for label, phases in parts.items()}


def run_database(kind: str, url: str, workdir: Path, budget: Budget, report: Report, *, full_suite: bool,
                 first_day: dt.date, rounds: int = 4) -> dict[str, Any]:
    from .scan import Scanner, pty_floor, scan_to_screen, sign_in
    from .servers import start_floor, start_product

    data: dict[str, Any] = {}
    tag = f"{kind[:2]}{uuid.uuid4().hex[:6]}"
    run_dir = Path(tempfile.mkdtemp(prefix=f"run-{kind}-", dir=workdir))
    services = product_services(run_dir / "data", url)
    token = prepare_staff(services, tag)
    raw = connect_raw(url)
    # the expiry run before the customers are sampled (timed where the whole suite runs), so that the
    # reward's customers still hold the points it costs when the server's own start-up run is done
    if full_suite:
        from .reports import time_expiry

        say(f"{kind}: the daily expiry run, in process")
        data["expiry"] = time_expiry(services.shop, twice=budget.expiry_twice)
    else:
        from pos_loyalty.services.points import expire_points

        expire_points(services.shop)
    tills = Tills(raw, tag, cards=max(budget.lookups, budget.throughput))
    say(f"{kind}: {len(tills.cards)} cards sampled; {len(tills.rich[0])} reward visits for each of the three")
    answer = sample_answer(services, tills)
    answer_file = run_dir / "answer.json"
    answer_file.write_text(json.dumps(answer))
    data["answer_bytes"] = len(answer_file.read_bytes())

    # the storage floor: the same writes with the plain driver, one transaction each
    say(f"{kind}: storage floor (plain driver, in process)")
    reward = (REWARD_ID, "€2 off your shopping", REWARD_POINTS, 200)
    floor_ids = itertools.count()
    answer_json = json.dumps(answer)
    data["storage_floor"] = {
        "lookup": time_calls(lambda i: raw.lookup(tills.cards[i % len(tills.cards)]), count=budget.lookups, max_seconds=budget.max_seconds),
        "checkout": time_calls(lambda i: raw.checkout({**tills.sale(i), "id": f"floor-{tag}-{next(floor_ids)}"}, answer_json),
                               count=budget.latency, max_seconds=budget.max_seconds),
        "reward": time_calls(lambda i: raw.checkout({**tills.sale(i, reward=True, stream=0), "id": f"floor-{tag}-{next(floor_ids)}"},
                                                    answer_json, reward=reward),
                             count=budget.latency, max_seconds=budget.max_seconds),
    }

    # the product, under waitress; and the HTTP floor: the same raw writes behind the same server.
    # Both are up at once and measured in turns (``side_by_side``).
    scanner = Scanner.open() if full_suite else None
    say(f"{kind}: pos-loyalty serve, and the HTTP floor (bare endpoint under waitress)")
    served = start_product(run_dir / "data", url, run_dir / "serve.log", scanner_url=scanner.path if scanner else "")
    headers = {"Authorization": f"Bearer {token}"}
    bare = None
    try:
        # the start-up expiry run works in the background; measure once it is done, as a till would be all day
        expiry_done = served.wait_for_log("expiry run:", timeout=1800)
        data["startup_expiry_run_s"] = expiry_done
        say(f"  product: the start-up expiry run finished {expiry_done:.1f} s after launch" if expiry_done
            else "  product: the start-up expiry run did not finish in time")
        bare = start_floor(url, answer_file, run_dir / "floor.log")
        measured = side_by_side([Side("bare", bare.port, {}, "/checkout", "/cards/", reward_stream=1),
                                 Side("product", served.port, headers, "/api/v1/transactions", "/api/v1/cards/", reward_stream=2)],
                                tills, budget, rounds=rounds)
        data["rounds"] = rounds
        data["http_floor"] = measured["bare"]
        data["http_floor"]["memory"] = rss_mb(bare.pid)
        data["http_floor"]["startup_s"] = [bare.startup_seconds]
        product = measured["product"]
        product["startup_s"] = [served.startup_seconds]
        if scanner is not None:
            say(f"{kind}: scan to screen")
            session = sign_in(served.port, CASHIER, CASHIER_PASSWORD)
            product["scan_to_screen"] = scan_to_screen(served.port, scanner, session, tills.cards, count=budget.scans,
                                                       max_seconds=budget.max_seconds)
            product["pty_floor"] = pty_floor(count=budget.scans, max_seconds=budget.max_seconds)
        product["memory"] = rss_mb(served.pid)
        data["product"] = product
    finally:
        served.stop()
        if bare is not None:
            bare.stop()
        if scanner is not None:
            scanner.close()

    # start-up, twice more each, for a median of three
    say(f"{kind}: start-up, twice more each")
    for _ in range(2):
        again = start_product(run_dir / "data", url, run_dir / "serve.log", run_daily_expiry=True)
        data["product"]["startup_s"].append(again.startup_seconds)
        again.stop()
        again = start_floor(url, answer_file, run_dir / "floor.log")
        data["http_floor"]["startup_s"].append(again.startup_seconds)
        again.stop()

    if full_suite:
        from .receipt import time_receipts
        from .reports import time_reports

        say(f"{kind}: receipts")
        data["receipt"] = time_receipts(answer, count=budget.receipts, max_seconds=budget.max_seconds)
        say(f"{kind}: reports over the whole history")
        data["reports"] = time_reports(services.shop, raw, first_day, repeat=budget.report_repeat)

    raw.close()
    services.db.dispose()
    shutil.rmtree(run_dir / "data", ignore_errors=True)
    return data


# -- the table -------------------------------------------------------------------------------------


def tabulate(report: Report, kind: str, d: dict[str, Any], size_note: str) -> None:
    area = "SQLite" if kind == "sqlite" else "PostgreSQL"
    floor, bare, prod = d["storage_floor"], d["http_floor"], d["product"]
    store_rate = 1000 / floor["checkout"].ms(50) if floor["checkout"].ms(50) else None

    def lat(name: str, t: Timings, limit: Timings | None, limit_label: str, target_ms: float | None, p: int = 99) -> None:
        value = t.ms(p)
        report.add(area, name, f"p50 {ms(t.ms(50))} / p99 {ms(value)}" + (f" ({t.errors} errors)" if t.errors else ""),
                   f"{limit_label} p50 {ms(limit.ms(50))} / p99 {ms(limit.ms(99))}" if limit else "",
                   f"{t.ms(50) / limit.ms(50):.1f}x" if limit and limit.ms(50) else "",
                   f"p99 < {target_ms:g} ms" if target_ms else "",
                   verdict(value < target_ms if (target_ms and value is not None) else None), loadavg(t))

    lat("card lookup, one till", prod["lookup"], floor["lookup"], "indexed read", 3)
    report.add(area, "  same, bare endpoint", f"p50 {ms(bare['lookup'].ms(50))} / p99 {ms(bare['lookup'].ms(99))}", "", "", "", "",
               loadavg(bare["lookup"]))
    lat("checkout, one till", prod["checkout_1"], bare["checkout_1"], "bare endpoint", 5)
    if "reward_1" in prod:
        lat("checkout + reward, one till", prod["reward_1"], bare["reward_1"], "bare endpoint", 5)
    report.add(area, "  storage floor, in process", f"p50 {ms(floor['checkout'].ms(50))} / p99 {ms(floor['checkout'].ms(99))}",
               f"{store_rate:.0f} checkouts/s" if store_rate else "", "", "", "", loadavg(floor["checkout"]))
    for clients in (4, 16):
        t, b = prod[f"checkout_{clients}"], bare[f"checkout_{clients}"]
        lower = min(x for x in (b.per_second, store_rate) if x)
        fraction = t.per_second / lower if t.per_second and lower else None
        report.add(area, f"checkout, {clients} tills: throughput",
                   f"{t.per_second:.0f}/s" + (f" ({t.errors} errors)" if t.errors else ""),
                   f"bare endpoint {b.per_second:.0f}/s", f"{fraction:.0%} of floor" if fraction else "", ">= 50% of floor",
                   verdict(fraction >= 0.5 if fraction else None), loadavg(t))
        lat(f"checkout, {clients} tills: latency", t, b, "bare endpoint", 30 if clients == 16 else None)
    if "scan_to_screen" in prod:
        lat("scan to screen", prod["scan_to_screen"], prod["pty_floor"], "pty alone", 50)
    median = statistics.median(prod["startup_s"])
    bare_median = statistics.median(bare["startup_s"])
    report.add(area, "start-up to first answer (median of 3)", f"{median:.2f} s", f"bare server {bare_median:.2f} s",
               f"{median / bare_median:.1f}x", "< 1 s", verdict(median < 1.0), f"{load_average()[0]:.1f}")
    report.add(area, "resident memory after the load", f"{prod['memory']['rss_mb']:.0f} MB (peak {prod['memory']['peak_rss_mb']:.0f})",
               f"bare server {bare['memory']['rss_mb']:.0f} MB", f"{prod['memory']['rss_mb'] / bare['memory']['rss_mb']:.1f}x",
               "", "", "")
    if "expiry" in d:
        e = d["expiry"]
        in_server = d.get("startup_expiry_run_s")
        again = f"; {e['nothing_due']['first_s']:.2f} s with none" if "nothing_due" in e else ""
        report.add(area, "daily expiry run (at start-up, then daily)",
                   f"{e['due']['first_s']:.2f} s with {e['due']['result']['customers']} customers due{again}",
                   f"in the server: done {in_server:.1f} s after launch" if in_server else "", "", "", "",
                   loadavg(e.get("nothing_due", e["due"])))
    if "receipt" in d:
        r = d["receipt"]
        lat(f"receipt: lay out + ESC/POS ({r['lines']} lines, {r['bytes']} bytes)", r["receipt"], r["floor"], "text encode", None)
        report.add(area, "  of which layout / render / loyalty block only",
                   f"{ms(r['lay_out'].ms(50))} / {ms(r['render'].ms(50))} / {ms(r['loyalty_block'].ms(50))} (p50)", "", "", "", "",
                   loadavg(r["render"]))
    for name, rep in d.get("reports", {}).items():
        worst = max(rep["runs_s"])
        report.add(area, f"report: {name.replace('_', ' ')}", f"{rep['median_s']:.3f} s (first {rep['first_s']:.3f})",
                   f"one pass {rep['floor']['best_s']:.3f} s",
                   f"{rep['median_s'] / rep['floor']['best_s']:.1f}x" if rep["floor"]["best_s"] else "",
                   *(("", "") if name.endswith("_for_the_csv") else ("< 1 s" + size_note, verdict(worst < 1.0))),  # an export, not a report
                   f"{rep['load_average'][0]:.1f}")


def render_table(rows: list[Row], *, markdown: bool) -> str:
    header = ("where", "measure", "figure", "limit (same run)", "vs limit (p50)", "target", "", "load")
    cells = [header] + [(r.area, r.measure, r.value, r.limit, r.ratio, r.target, r.verdict, r.load) for r in rows]
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in cells[1:]]
        return "\n".join(out)
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


# -- PostgreSQL ------------------------------------------------------------------------------------


def create_pg_database() -> str | None:
    from sqlalchemy import create_engine, text

    name = f"pos_loyalty_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # no PostgreSQL here: say so and go on
        say(f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({type(exc).__name__}); skipping it")
        return None
    finally:
        admin.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    from sqlalchemy import create_engine, text

    name = url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# -- main ------------------------------------------------------------------------------------------


def build_sqlite(path: Path, customers: int, transactions: int, *, fresh: bool) -> dict[str, Any]:
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists() and not fresh and not _schema_is_current(path):
        say(f"{path} was generated for an older schema: generating it again")
        fresh = True
    if path.exists() and meta.exists() and not fresh:
        say(f"reusing {path} (generated {json.loads(meta.read_text())['generated_at']}); --fresh to build it again")
        info = json.loads(meta.read_text())
        info["reused"] = True
        return info
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"), meta):
        stale.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    end = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    plan = G.Plan(customers, transactions, end=end)
    say(f"generating {customers:,} customers / {transactions:,} transactions into {path}")
    load_before = load_average()
    stats = G.generate(f"sqlite:///{path}", plan, progress=lambda line: say(f"  {line}"))
    say(f"  {stats.total_rows:,} rows in {stats.seconds:.0f} s: {stats.total_rows / stats.seconds:,.0f} rows/s "
        f"({stats.total_rows / stats.cpu_seconds:,.0f} per CPU second), {path.stat().st_size / 1e6:,.0f} MB")
    say("  checking the invariants")
    info = G.describe(path, plan, stats, load_before, G.check_invariants(f"sqlite:///{path}"))
    info["reused"] = False
    return info


def _schema_is_current(path: Path) -> bool:
    """Whether the kept database has the schema this checkout migrates to (else it measures old code paths)."""
    from sqlalchemy import create_engine

    from pos_loyalty.persistence.migrate import current_revision, head_revision

    engine = create_engine(f"sqlite:///{path}")
    try:
        return current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def first_day_of(url: str) -> dt.date:
    from zoneinfo import ZoneInfo

    raw = connect_raw(url)
    first = raw.conn.execute("SELECT min(created_at) FROM customers").fetchone()[0]
    raw.close()
    moment = G._as_utc(first)
    return moment.astimezone(ZoneInfo(S.TIMEZONE)).date()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--size", type=G.parse_size, default="quick",
                        help="quick (10k customers / 50k sales, the default), medium, full (1M / 5M), or CUSTOMERS/TRANSACTIONS")
    parser.add_argument("--pg-size", type=G.parse_size, default=None, help="size of the PostgreSQL data (default: quick)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench", help="where the generated databases live")
    parser.add_argument("--fresh", action="store_true", help="generate the SQLite data again even if it exists")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of requests of every measurement")
    parser.add_argument("--rounds", type=int, default=4,
                        help="turns the product and its HTTP floor take at each measurement (default 4: each goes first as often)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds is at least 1")
    customers, transactions = args.size
    budget = Budget.for_size(customers, args.scale)
    args.workdir.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    started = time.perf_counter()
    report = Report()
    report.data = {"started_at": dt.datetime.now(dt.timezone.utc).isoformat(), "machine": machine(),
                   "size": {"customers": customers, "transactions": transactions}, "budget": budget.__dict__,
                   "load_average_at_start": list(load_average()), "python_reference_ms": [python_reference_ms()]}
    say(f"machine: {report.data['machine']}; load average {report.data['load_average_at_start']}")
    size_note = "" if customers >= 1_000_000 else " (full size)"

    db_path = args.workdir / f"loyalty-{customers}-{transactions}.db"
    report.data["sqlite_data"] = build_sqlite(db_path, customers, transactions, fresh=args.fresh)
    url = f"sqlite:///{db_path}"
    first_day = first_day_of(url)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"{stamp}-{customers}-{transactions}.json"

    def save() -> None:  # after each database, so a later failure loses nothing measured
        out.write_text(json.dumps(report.data, indent=2, default=_jsonable))

    sqlite_results = run_database("sqlite", url, args.workdir, budget, report, full_suite=True, first_day=first_day,
                                  rounds=args.rounds)
    report.data["sqlite"] = sqlite_results
    save()
    tabulate(report, "sqlite", sqlite_results, size_note)

    if not args.skip_postgres:
        pg_customers, pg_transactions = args.pg_size or G.SIZES["quick"]
        pg_url = create_pg_database()
        if pg_url:
            try:
                say(f"postgresql: generating {pg_customers:,} customers / {pg_transactions:,} transactions")
                end = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
                stats = G.generate(pg_url, G.Plan(pg_customers, pg_transactions, end=end), progress=lambda line: say(f"  {line}"))
                report.data["postgresql_data"] = {"stats": stats.as_dict(), "invariants": G.check_invariants(pg_url, sample=100)}
                pg_budget = Budget.for_size(pg_customers, args.scale)
                pg_results = run_database("postgresql", pg_url, args.workdir, pg_budget, report, full_suite=False,
                                          first_day=first_day_of(pg_url), rounds=args.rounds)
                report.data["postgresql"] = pg_results
                save()
                tabulate(report, "postgresql", pg_results, size_note)
            finally:
                drop_pg_database(pg_url)

    report.data["seconds"] = round(time.perf_counter() - started, 1)
    report.data["load_average_at_end"] = list(load_average())
    report.data["python_reference_ms"].append(python_reference_ms())
    report.data["table"] = [r.__dict__ for r in report.rows]
    save()
    (RESULTS / f"{stamp}-{customers}-{transactions}.md").write_text(render_table(report.rows, markdown=True) + "\n")
    print(render_table(report.rows, markdown=False))
    gen = report.data["sqlite_data"]["stats"]
    print(f"\ndata: {customers:,} customers, {gen['rows']['transactions']:,} transactions, {gen['total_rows']:,} rows, "
          f"generated at {gen['rows_per_second']:,} rows/s ({gen['rows_per_cpu_second']:,} per CPU second); "
          f"machine: {report.data['machine']['nproc']} x {report.data['machine']['cpu_model']}; "
          f"load average {report.data['load_average_at_start'][0]} at start, {report.data['load_average_at_end'][0]} at end; "
          f"python reference loop {report.data['python_reference_ms'][0]} ms at start, {report.data['python_reference_ms'][1]} ms at end")
    print(f"results: {out.relative_to(ROOT)}")
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, Timings):
        return value.summary()
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)
