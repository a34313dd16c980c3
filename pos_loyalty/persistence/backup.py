"""A copy of a till's SQLite database, taken while it serves.

A till's points are money-like and its disk can die. Copying ``loyalty.db`` with ``cp`` while the
service runs is not a backup: in WAL mode the newest sales are in ``loyalty.db-wal``, and a file
copied while a checkpoint writes into it can be torn. ``backup_sqlite`` uses SQLite's online
backup API on a read-only connection instead: one read transaction, so the copy is the database as
it was at one moment (every sale committed by then, none half), while the tills go on selling (in
WAL mode a reader never holds up a writer). It writes next to the target and renames when the copy
has passed SQLite's check of its structure (``quick_check``), so a backup file under its own name
is always whole.

PostgreSQL (several tills, one store database) is backed up with the server's own ``pg_dump``.
"""
from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path


class BackupRefused(Exception):
    """The backup was not taken; the message says why, in a sentence for whoever runs it."""


@dataclass(frozen=True)
class BackupMade:
    path: Path
    bytes: int
    revision: str | None
    customers: int
    transactions: int
    ledger_entries: int


def backup_sqlite(source: str, target: Path, *, overwrite: bool = False) -> BackupMade:
    """Copy the SQLite database at ``source`` to ``target`` (readable by its owner only)."""
    target = Path(target)
    if not Path(source).is_file():
        raise BackupRefused(f"there is no database at {source}")
    if target.exists() and not overwrite:
        raise BackupRefused(f"{target} exists already; choose another name (or --force to replace it)")
    if target.resolve() == Path(source).resolve():
        raise BackupRefused("the backup cannot be the database itself")
    partial = target.with_name(f".{target.name}.partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds customers' data
    except OSError as exc:
        raise BackupRefused(f"cannot write {target}: {exc.strerror}") from None
    os.close(fd)
    try:
        src = sqlite3.connect(f"{Path(source).resolve().as_uri()}?mode=ro", uri=True, timeout=10)
        try:
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst)  # every page in one step: one read transaction, one moment
                dst.execute("PRAGMA journal_mode=DELETE")  # a single file, whatever the source's mode
                problems = [row[0] for row in dst.execute("PRAGMA quick_check")]
                if problems != ["ok"]:
                    raise BackupRefused(f"the copy failed SQLite's check: {problems[0]}")
                made = _describe(dst)
            finally:
                dst.close()
        finally:
            src.close()
        os.replace(partial, target)
    except sqlite3.Error as exc:
        raise BackupRefused(f"the database could not be copied: {exc}") from None
    except OSError as exc:
        raise BackupRefused(f"cannot write {target}: {exc.strerror}") from None
    finally:
        if partial.exists():
            partial.unlink()
    return BackupMade(target, target.stat().st_size, *made)


def _describe(conn: sqlite3.Connection) -> tuple:
    def one(sql: str):
        try:
            row = conn.execute(sql).fetchone()
        except sqlite3.OperationalError:  # not a pos-loyalty database (yet): copied all the same
            return None
        return row[0] if row else None

    return (
        one("SELECT version_num FROM alembic_version"),
        one("SELECT count(*) FROM customers") or 0,
        one("SELECT count(*) FROM transactions") or 0,
        one("SELECT count(*) FROM ledger_entries") or 0,
    )
