"""Engines for the till's database.

SQLite (the embedded default): WAL journal, foreign keys on, a busy timeout, and write
transactions that take the write lock up front with ``BEGIN IMMEDIATE`` so two writers queue
instead of failing half-way. Readers use a second engine whose transactions start deferred, so a
card lookup never waits for the write lock. PostgreSQL (several tills, one store database) uses
one engine; writers lock the customer row they change (``SELECT ... FOR UPDATE``). On both, a unit
of work keeps its connection parked for the next (``Parking``).
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from .. import jsoncodec

# JSON columns (a sale's stored answer, the programme's versions, audit payloads) in and out by
# orjson, compact and in UTF-8; rows written earlier by the standard library read the same
JSON_CODEC = {"json_serializer": jsoncodec.dumps, "json_deserializer": jsoncodec.loads}

BUSY_TIMEOUT_MS = 10_000
SQLITE_POOL_SIZE = 8
PG_POOL_SIZE = 8
PG_PARKED_FRESH_FOR = 2.0  # seconds a parked PostgreSQL connection is used without a ping (Parking)
SQLITE_BEGIN = {True: "BEGIN IMMEDIATE", False: "BEGIN"}  # (takes the write lock up front?) -> statement
log = logging.getLogger("pos_loyalty.db")


class FairLock:
    """A lock that goes to the writers in the order they asked for it: the releasing thread hands
    it to the longest waiter. With sixteen tills queueing for SQLite's one writer, a plain lock let
    some sales wait several turns (the slowest 1 % took 2.5 times the median)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._queued = threading.Condition(self._guard)
        self._waiters: deque[threading.Lock] = deque()
        self._held = False

    def acquire(self) -> bool:
        with self._guard:
            if not self._held:
                self._held = True
                return True
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
            self._queued.notify_all()
        try:
            turn.acquire()  # released by the holder, handing the lock over
        except BaseException:  # interrupted while waiting (Ctrl-C in a command): leave no turn behind
            with self._guard:
                if turn in self._waiters:
                    self._waiters.remove(turn)
                    raise
            self.release()  # it was handed over meanwhile: pass it on
            raise
        return True

    def wait_for_waiters(self, count: int, timeout: float | None = None) -> bool:
        """Until ``count`` threads wait for the lock (or the timeout): for tests and diagnostics."""
        with self._queued:
            return self._queued.wait_for(lambda: len(self._waiters) >= count, timeout)

    def release(self) -> None:
        with self._guard:
            if self._waiters:
                self._waiters.popleft().release()  # still held: now by the next in line
            else:
                self._held = False

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class Parking:
    """Pooled connections kept between units of work, at most ``limit`` of them.

    SQLAlchemy's pool checks a connection out and back in (with its events, its queue's lock and
    a rollback) around every unit of work: ~10 µs of Python each, twice a sale in the till's
    busiest process; and on PostgreSQL each checkout also pings the server (``pool_pre_ping``),
    a round trip of its own. A unit of work takes a parked connection instead and leaves it here
    when it ends, rolled back as the pool would. The connections stay checked out of the pool
    meanwhile, so the pool still bounds how many there are. ``pop`` and ``append`` on a list are
    atomic, so threads share a parking without a lock of its own (units of work leaving at once
    may park a few more than ``limit``, one a thread at most; SQLite's writers use theirs under the
    write lock).

    ``fresh_for`` (PostgreSQL): a connection parked longer than that many seconds goes back to the
    pool instead, whose ping finds out whether the server still has it; one used that recently is
    taken as it is (the sale's unit of work after its till-token check, a busy store's next
    checkout). A connection the server dropped within that moment fails its unit of work, which
    then sends it and every other parked one back to the pool (``empty``), so the next unit of
    work pings again. A file on the till's own disk has no such failure: SQLite's connections are
    kept however long.
    """

    def __init__(self, limit: int, *, fresh_for: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.fresh_for = fresh_for
        self.clock = clock
        self._connections: list = []  # (pool connection, when it was parked)

    def __len__(self) -> int:
        return len(self._connections)

    def take(self):
        """The connection parked last (a pool's ``_ConnectionFairy``), or None: none is parked, or
        it was parked too long ago and has gone back to the pool to be pinged."""
        try:
            fairy, parked_at = self._connections.pop()
        except IndexError:
            return None
        if self.fresh_for is not None and self.clock() - parked_at > self.fresh_for:
            fairy.close()
            return None
        return fairy

    def leave(self, fairy) -> bool:
        """Park ``fairy`` (its transaction ended); False if the parking is full."""
        if len(self._connections) >= self.limit:
            return False
        self._connections.append((fairy, self.clock()))
        return True

    def empty(self) -> None:
        """Every parked connection back to its pool (before the pool is disposed; and on
        PostgreSQL after a connection turned out dropped, so that the pool pings the rest)."""
        while True:
            try:
                fairy, _ = self._connections.pop()
            except IndexError:
                return
            fairy.close()


@dataclass
class Database:
    """The engines one service uses, and the in-process lock that queues SQLite writers."""

    writer: Engine
    reader: Engine
    is_sqlite: bool
    write_lock: FairLock | None = field(default=None)
    sqlite_options: dict = field(default_factory=dict, repr=False)  # read by new SQLite connections
    memo: dict = field(default_factory=dict, repr=False)  # the services' memory of immutable rows (uow.memo)
    # connections kept between units of work: on SQLite the writers' one (they take turns under
    # ``write_lock``) and the readers' (one for each server thread that reads at once); on
    # PostgreSQL one parking for both, whose connections are pinged after a moment unused
    parked_writer: Parking | None = field(default=None, repr=False)
    parked_readers: Parking | None = field(default=None, repr=False)

    def begin_statement(self, read_only: bool) -> str | None:
        """What a unit of work sends to begin its transaction on the driver's connection: SQLite's
        writers take the write lock up front; PostgreSQL's driver begins by itself."""
        if not self.is_sqlite:
            return None
        return SQLITE_BEGIN[not read_only]

    def start_background_checkpoints(self, interval: float = 1.0, on_run: Callable[[tuple], None] | None = None) -> "WalCheckpointer | None":
        """Take SQLite's WAL checkpoints off the checkout: by default the commit that fills the WAL
        past 1,000 pages copies it back into the database file itself, which puts 1-100 ms into
        that one sale (the checkout's p99). Here the server's writers never checkpoint; a thread of
        its own does, every ``interval`` seconds, without waiting for readers or writers."""
        if not self.is_sqlite or self.writer.url.database in (None, "", ":memory:"):
            return None
        self.sqlite_options["manual_checkpoints"] = True
        self.parked_writer.empty()
        self.writer.dispose()  # connections already pooled were opened checkpointing on commit
        checkpointer = WalCheckpointer(self.writer.url.database, interval, on_run)
        checkpointer.start()
        return checkpointer

    def dispose(self) -> None:
        for parking in (self.parked_writer, self.parked_readers):
            if parking is not None:
                parking.empty()
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()


class WalCheckpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection every ``interval`` seconds
    until stopped, and once more at the stop. ``on_run`` gets each result (busy, WAL frames,
    frames checkpointed); a test waits on it instead of sleeping."""

    def __init__(self, path: str, interval: float, on_run: Callable[[tuple], None] | None = None) -> None:
        self.path = path
        self.interval = interval
        self.on_run = on_run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pos-loyalty-wal-checkpoints", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def checkpoint(self, conn: sqlite3.Connection) -> tuple:
        return tuple(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        try:
            while True:
                stopping = self._stop.wait(self.interval)
                try:
                    result = self.checkpoint(conn)
                except sqlite3.Error:  # keep going: the next round copies what this one could not
                    log.exception("WAL checkpoint failed")
                    result = None
                if self.on_run is not None and result is not None:
                    self.on_run(result)
                if stopping:
                    return
        finally:
            conn.close()


def _sqlite_engine(url: str, *, immediate: bool, synchronous: str, options: dict | None = None) -> Engine:
    engine = create_engine(
        url,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        pool_size=SQLITE_POOL_SIZE,
        max_overflow=16,
        **JSON_CODEC,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised by every test
        # Let SQLAlchemy, not the driver, decide when a transaction begins.
        dbapi_conn.isolation_level = None
        # SQLite's own lower() knows only ASCII; searching "ülker" must find "Ülker".
        dbapi_conn.create_function("lower", 1, lambda s: s.lower() if isinstance(s, str) else s, deterministic=True)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA secure_delete=ON")  # an erased customer's data is overwritten, not left in free pages
        if options and options.get("manual_checkpoints"):
            cur.execute("PRAGMA wal_autocheckpoint=0")  # a WalCheckpointer thread does it, not a till's commit
        cur.close()

    begin = SQLITE_BEGIN[immediate]

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # On the driver's connection itself: through SQLAlchemy's execution this was a third of
        # the cost of a short read transaction. A unit of work may have begun it there already
        # (uow.py) before its session wrapped the connection: then it is begun.
        driver = conn.connection.driver_connection
        if not driver.in_transaction:
            driver.execute(begin)

    return engine


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here; say so explicitly for SQLAlchemy."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def connect(url: str, *, sqlite_synchronous: str = "FULL") -> Database:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        options: dict = {}
        return Database(
            writer=_sqlite_engine(url, immediate=True, synchronous=sqlite_synchronous, options=options),
            reader=_sqlite_engine(url, immediate=False, synchronous=sqlite_synchronous),
            is_sqlite=True,
            write_lock=FairLock(),
            sqlite_options=options,
            parked_writer=Parking(1),
            parked_readers=Parking(SQLITE_POOL_SIZE),
        )
    engine = create_engine(url, pool_size=PG_POOL_SIZE, max_overflow=16, pool_pre_ping=True, **JSON_CODEC)
    parked = Parking(PG_POOL_SIZE, fresh_for=PG_PARKED_FRESH_FOR)
    return Database(writer=engine, reader=engine, is_sqlite=False, parked_writer=parked, parked_readers=parked)
