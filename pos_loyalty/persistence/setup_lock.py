"""One ``pos-loyalty init`` at a time on a database.

The shop's service file runs ``pos-loyalty init`` before every start (README, "Running a till"),
so after a power cut, or an upgrade rolled out to every till, the tills of a store that share one
PostgreSQL database all run it at once. Unqueued, the first created the tables while the others
failed on the same ``CREATE TABLE`` (their service then did not start), and two could each find
no programme stored and both save the defaults as a first version.

``init_lock`` queues them: on PostgreSQL a session advisory lock on a connection of its own
(released by the server when the process dies, and within about a minute when its host does:
the connection asks the server for TCP keepalives), on a SQLite file an ``flock`` on a file
beside it (released by the kernel likewise). Whoever comes second waits, then finds the schema
current and the programme stored, and changes nothing.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from typing import Callable, Iterator

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

# pg_advisory_lock's key: any fixed bigint; advisory locks are per database, so stores sharing one
# PostgreSQL server do not queue for each other
INIT_LOCK_KEY = 0x706F_736C_696E_6974  # "poslinit"
# how soon the server gives up on the lock holder's host: 30 s idle, then 3 probes 10 s apart
# (the defaults leave a host that lost power holding the lock for about two hours)
KEEPALIVES = ("SET tcp_keepalives_idle = 30", "SET tcp_keepalives_interval = 10", "SET tcp_keepalives_count = 3")


@contextmanager
def init_lock(engine: Engine, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the database's set-up lock for the block; ``on_wait`` is called once if another
    holds it (to say so) before waiting for it."""
    if engine.dialect.name == "postgresql":
        with _pg_lock(engine, on_wait):
            yield
    elif engine.url.database not in (None, "", ":memory:"):
        with _file_lock(engine.url.database + ".init-lock", on_wait):
            yield
    else:  # an in-memory database has no one to share it with
        yield


@contextmanager
def _pg_lock(engine: Engine, on_wait: Callable[[], None] | None) -> Iterator[None]:
    # a connection of its own, not the writer's pool: init disposes of that pool between its steps
    own = create_engine(engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with own.connect() as conn:
            for statement in KEEPALIVES:
                conn.execute(text(statement))
            if not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": INIT_LOCK_KEY}).scalar():
                if on_wait is not None:
                    on_wait()
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": INIT_LOCK_KEY})
            try:
                yield
            finally:
                try:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": INIT_LOCK_KEY})
                except Exception:  # the connection is gone: the server released its lock with it
                    conn.invalidate()
    finally:
        own.dispose()


@contextmanager
def _file_lock(path: str, on_wait: Callable[[], None] | None) -> Iterator[None]:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except PermissionError:  # left by someone else (an init run with sudo): flock needs only to read it
        fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
