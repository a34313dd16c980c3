"""Engines for the till's database.

SQLite (the embedded default): WAL journal, foreign keys on, a busy timeout, and write
transactions that take the write lock up front with ``BEGIN IMMEDIATE`` so two writers queue
instead of failing half-way. Readers use a second engine whose transactions start deferred, so a
card lookup never waits for the write lock. PostgreSQL (several tills, one store database) uses
one engine; writers lock the customer row they change (``SELECT ... FOR UPDATE``).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

BUSY_TIMEOUT_MS = 10_000


@dataclass
class Database:
    """The engines one service uses, and the in-process lock that queues SQLite writers."""

    writer: Engine
    reader: Engine
    is_sqlite: bool
    write_lock: threading.Lock | None = field(default=None)
    sessions: dict = field(default_factory=dict, repr=False)  # (read_only) -> sessionmaker, made once

    def dispose(self) -> None:
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()


def _sqlite_engine(url: str, *, immediate: bool, synchronous: str) -> Engine:
    engine = create_engine(
        url,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        pool_size=8,
        max_overflow=16,
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
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

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
        return Database(
            writer=_sqlite_engine(url, immediate=True, synchronous=sqlite_synchronous),
            reader=_sqlite_engine(url, immediate=False, synchronous=sqlite_synchronous),
            is_sqlite=True,
            write_lock=threading.Lock(),
        )
    engine = create_engine(url, pool_size=8, max_overflow=16, pool_pre_ping=True)
    return Database(writer=engine, reader=engine, is_sqlite=False)
