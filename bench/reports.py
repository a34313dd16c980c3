"""The manager's reports over the whole history, each beside one plain pass over the table it
reads (the same rows, summed without grouping: the least any report over them can cost); and the
daily expiry run the server does at start-up and every day. Before the reports, the time the
report summaries take to catch up (the first time: to be built from the whole history)."""
from __future__ import annotations

import datetime as dt
import time
from typing import Any, Callable

from pos_loyalty.services import reports as R
from pos_loyalty.services.points import expire_points

from .floors import RawDatabase
from .measure import load_average


def _timed(call: Callable[[], Any], repeat: int) -> dict[str, Any]:
    runs = []
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = call()
        runs.append(time.perf_counter() - t0)
    return {"runs_s": [round(r, 4) for r in runs], "first_s": round(runs[0], 4), "median_s": round(sorted(runs)[len(runs) // 2], 4),
            "best_s": round(min(runs), 4), "load_average": list(load_average()), "_result": result}


LAPSING_PAGE = 200  # web.manager.reports.ACTION_ROWS_SHOWN


def time_reports(shop, raw: RawDatabase, first_day: dt.date, *, repeat: int) -> dict[str, Any]:
    today = shop.local_date()
    end = today + dt.timedelta(days=1)
    now = shop.now()
    q = raw._sql
    stamp = raw._now

    def scan(sql: str, *params) -> Callable[[], Any]:
        return lambda: raw.conn.execute(q(sql), params).fetchall()

    cases = {
        "points_outstanding": (
            lambda: R.points_outstanding(shop),
            scan("SELECT (SELECT sum(balance) FROM customers), count(*), sum(points) FROM ledger_entries "
                 "WHERE expires_at > ? AND expires_at <= ? AND points > 0", stamp(now), stamp(now + dt.timedelta(days=30))),
        ),
        "earned_versus_spent_by_month": (
            lambda: R.earned_versus_spent(shop, first_day, end),
            scan("SELECT count(*), sum(points) FROM ledger_entries WHERE created_at >= ? AND created_at < ?",
                 stamp(dt.datetime.combine(first_day, dt.time(), tzinfo=shop.timezone)),
                 stamp(dt.datetime.combine(end, dt.time(), tzinfo=shop.timezone))),
        ),
        "retention_by_cohort": (
            lambda: R.customer_activity(shop, first_day, end),
            scan("SELECT count(customer_id), max(occurred_at) FROM transactions WHERE kind = 'sale'"),
        ),
        "lapsing_customers": (  # the list as the manager's page asks for it: its count and first rows
            lambda: R.lapsing_page(shop, limit=LAPSING_PAGE)[0],
            scan("SELECT count(customer_id), max(occurred_at) FROM transactions WHERE kind = 'sale'"),
        ),
        "lapsing_customers_every_row_for_the_csv": (
            lambda: R.lapsing_customers(shop),
            scan("SELECT count(customer_id), max(occurred_at) FROM transactions WHERE kind = 'sale'"),
        ),
    }
    out: dict[str, Any] = {}
    # The reports read summaries (migration 0003) that triggers queue new rows for; the generated
    # data arrives all queued, so the first refresh builds them from the whole history. Timed on
    # its own, then every report below folds in only what the load before it wrote.
    # (kept beside the first report: bench/run.py tabulates every entry of this dict as a report)
    built = _timed(lambda: R.refresh_summaries(shop, rebuild=True), 1)
    built["result"] = built.pop("_result")
    for name, (report, floor) in cases.items():
        timed = _timed(report, repeat)
        result = timed.pop("_result")
        floor_timed = _timed(floor, repeat)
        floor_timed.pop("_result")
        timed["floor"] = floor_timed
        timed["rows"] = len(result) if isinstance(result, list) else len(result.get("rows", []))
        out[name] = timed
    out["points_outstanding"]["summaries_built_first"] = built
    return out


def time_expiry(shop, *, twice: bool = True) -> dict[str, Any]:
    """The expiry run: what fell due since the data's last run; then again with nothing due (what
    every start-up and every day costs when there is nothing to do)."""
    first = _timed(lambda: expire_points(shop), 1)
    out = {"due": {**first, "result": first.pop("_result")}}
    if twice:
        second = _timed(lambda: expire_points(shop), 1)
        out["nothing_due"] = {**second, "result": second.pop("_result")}
    return out
