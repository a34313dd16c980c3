"""Timing, percentiles, the machine's description, and an HTTP load generator on loopback.

Every loop here is bounded twice: by a number of requests and by a number of seconds, whichever
comes first.
"""
from __future__ import annotations

import http.client
import itertools
import os
import platform
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

Request = tuple[str, str, bytes | None]  # method, path, body


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of ``values`` (any order); None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


@dataclass
class Timings:
    """Latencies in seconds, and how many answers were not what was asked for."""

    seconds: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def count(self) -> int:
        return len(self.seconds)

    def ms(self, p: float) -> float | None:
        value = percentile(self.seconds, p)
        return None if value is None else value * 1000

    @property
    def per_second(self) -> float | None:
        return self.count / self.elapsed if self.elapsed else None

    def summary(self) -> dict:
        return {
            "count": self.count, "errors": self.errors, "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "p50_ms": _round(self.ms(50)), "p90_ms": _round(self.ms(90)), "p99_ms": _round(self.ms(99)),
            "max_ms": _round(max(self.seconds) * 1000 if self.seconds else None),
            "per_second": _round(self.per_second), "elapsed_s": _round(self.elapsed), "load_average": list(self.load),
        }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def load_average() -> tuple[float, float, float]:
    return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]


def time_calls(call: Callable[[int], object], *, count: int, max_seconds: float, warm_up: int = 5) -> Timings:
    """Run ``call(i)`` one after another: its latency each time."""
    for i in range(warm_up):
        call(-1 - i)
    timings = Timings()
    started = time.perf_counter()
    deadline = started + max_seconds
    for i in range(count):
        t0 = time.perf_counter()
        call(i)
        t1 = time.perf_counter()
        timings.seconds.append(t1 - t0)
        if t1 > deadline:
            break
    timings.elapsed = time.perf_counter() - started
    timings.load = load_average()
    return timings


def python_reference_ms() -> float:
    """How fast this machine runs plain Python right now: the best of five runs of a fixed loop
    (``sum(range(100_000))``), in milliseconds; lower is faster. Every figure here that is CPU-bound
    scales with it, so it tells runs on a busy machine from runs on an idle one."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        sum(range(100_000))
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000, 3)


def machine() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    memory_kb = 0
    try:
        with open("/proc/meminfo") as fh:
            memory_kb = int(next(line.split()[1] for line in fh if line.startswith("MemTotal")))
    except (OSError, StopIteration, ValueError):
        pass
    return {
        "nproc": os.cpu_count(), "cpu_model": model, "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "kernel": platform.release(), "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
    }


def rss_mb(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak, from /proc."""
    values = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = round(int(rest.split()[0]) / 1024, 1)
    return {"rss_mb": values.get("VmRSS", 0.0), "peak_rss_mb": values.get("VmHWM", 0.0)}


# -- HTTP on loopback ------------------------------------------------------------------------------


class Client:
    """One keep-alive connection, as one till (or one screen) holds it."""

    def __init__(self, port: int, headers: dict[str, str] | None = None, timeout: float = 30.0) -> None:
        self.port = port
        self.headers = headers or {}
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def send(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
        """(status, body bytes, response headers); reconnects once if the server closed the connection."""
        all_headers = {**self.headers, **(headers or {})}
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=all_headers)
                response = self.conn.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return response.status, data, response.headers
            except (ConnectionError, http.client.RemoteDisconnected, http.client.CannotSendRequest):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def one_till(port: int, headers: dict[str, str], requests: Callable[[int], Request], *, count: int, max_seconds: float,
             ok: Iterable[int] = (200, 201), warm_up: int = 5) -> Timings:
    """Requests one after another on one connection: the latency a single till sees."""
    client = Client(port, headers)
    good = set(ok)
    timings = Timings()
    try:
        for i in range(warm_up):
            client.send(*requests(-1 - i))
        started = time.perf_counter()
        deadline = started + max_seconds
        for i in range(count):
            method, path, body = requests(i)
            t0 = time.perf_counter()
            status, _, _ = client.send(method, path, body)
            t1 = time.perf_counter()
            timings.seconds.append(t1 - t0)
            timings.statuses[status] = timings.statuses.get(status, 0) + 1
            timings.errors += status not in good
            if t1 > deadline:
                break
        timings.elapsed = time.perf_counter() - started
    finally:
        client.close()
    timings.load = load_average()
    return timings


def many_tills(port: int, headers: dict[str, str], requests: Callable[[int], Request], *, clients: int, count: int,
               max_seconds: float, ok: Iterable[int] = (200, 201)) -> Timings:
    """``clients`` connections sending as fast as the answers come back, ``count`` requests in all
    (or until ``max_seconds``): throughput, and the latency each request saw under that load."""
    good = set(ok)
    numbers = itertools.count()
    lock = threading.Lock()
    timings = Timings()
    ready = threading.Barrier(clients + 1)
    deadline = [0.0]

    def work() -> None:
        client = Client(port, headers)
        mine: list[float] = []
        statuses: dict[int, int] = {}
        errors = 0
        try:
            client.send(*requests(-1 - threading.get_ident() % 1000))  # connect and warm up before the clock starts
            ready.wait()
            while True:
                with lock:
                    i = next(numbers)
                if i >= count or time.perf_counter() > deadline[0]:
                    break
                method, path, body = requests(i)
                t0 = time.perf_counter()
                status, _, _ = client.send(method, path, body)
                mine.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1
                errors += status not in good
        finally:
            client.close()
            with lock:
                timings.seconds.extend(mine)
                timings.errors += errors
                for status, n in statuses.items():
                    timings.statuses[status] = timings.statuses.get(status, 0) + n

    threads = [threading.Thread(target=work, name=f"till {n}", daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + max_seconds + 60  # until everyone is connected
    ready.wait(timeout=60)
    started = time.perf_counter()
    deadline[0] = started + max_seconds
    for thread in threads:
        thread.join(timeout=max_seconds + 120)
    timings.elapsed = time.perf_counter() - started
    timings.load = load_average()
    return timings
