"""A copy of a till's SQLite database, taken while it serves.

A till's points are money-like and its disk can die. Copying ``loyalty.db`` with ``cp`` while the
service runs is not a backup: in WAL mode the newest sales are in ``loyalty.db-wal``, and a file
copied while a checkpoint writes into it can be torn. ``backup_sqlite`` uses SQLite's online
backup API on a read-only connection instead: one read transaction, so the copy is the database as
it was at one moment (every sale committed by then, none half), while the tills go on selling (in
WAL mode a reader never holds up a writer). It writes a hidden file beside the target, locked so
that two backups to one name cannot mix (a second is refused), and renames it into place once the
copy has passed SQLite's check of its structure (``quick_check``): a backup file under its own
name is always whole.

It must run as the user the service runs as (the database file's owner) or as root: when the
service is stopped, a reader creates ``loyalty.db-wal`` and ``-shm``, and created by another user
they would keep the service from opening its database (SQLite gives root's to the file's owner).

PostgreSQL (several tills, one store database) is backed up with the server's own ``pg_dump``.
"""
from __future__ import annotations

import fcntl
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
    source_path, target = Path(source), Path(target)
    try:
        _check(source_path, target, overwrite)
    except OSError as exc:
        raise BackupRefused(f"cannot read {exc.filename or source}: {exc.strerror}") from None
    partial = target.with_name(f".{target.name}.partial")
    try:
        fd = os.open(partial, os.O_RDWR | os.O_CREAT, 0o600)  # it holds customers' data
    except OSError as exc:
        raise BackupRefused(f"cannot write {target}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupRefused(f"another backup to {target} is running; wait for it, or choose another name") from None
        published = False
        try:
            os.ftruncate(fd, 0)  # (what a backup killed half-way left here)
            made = _copy(source_path, partial)
            os.replace(partial, target)
            published = True
            _sync_directory(target.parent)
        except sqlite3.Error as exc:
            raise BackupRefused(f"the database could not be copied: {exc}") from None
        except OSError as exc:
            raise BackupRefused(f"cannot write {target}: {exc.strerror}") from None
        finally:
            if not published:  # (once renamed, the name may already be the next backup's)
                for leftover in (partial, *(partial.with_name(partial.name + end) for end in ("-journal", "-wal"))):
                    if leftover.exists():
                        leftover.unlink()
    finally:
        os.close(fd)
    return BackupMade(target, target.stat().st_size, *made)


def _check(source: Path, target: Path, overwrite: bool) -> None:
    if not source.is_file():
        raise BackupRefused(f"there is no database at {source}")
    if os.geteuid() not in (0, source.stat().st_uid):
        raise BackupRefused(
            f"run the backup as the user the service runs as (the owner of {source}), or as root: "
            "files SQLite makes beside the database for another user would keep the service from opening it"
        )
    if target.is_dir():
        raise BackupRefused(f"{target} is a directory; give the backup file's name")
    if target.resolve().parent == source.resolve().parent and target.name.startswith(source.name):
        raise BackupRefused("the backup cannot be the database itself, nor a file SQLite keeps beside it")
    if target.exists() and not overwrite:
        raise BackupRefused(f"{target} exists already; choose another name (or --force to replace it)")


def _copy(source: Path, partial: Path) -> tuple:
    src = None
    try:
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
        dst = sqlite3.connect(partial)
        try:
            # no -shm beside the copy while it is briefly a WAL database (the source's header): a
            # network share or a USB stick may not map one
            dst.execute("PRAGMA locking_mode=EXCLUSIVE")
            src.backup(dst)  # every page in one step: one read transaction, one moment
            dst.execute("PRAGMA journal_mode=DELETE")  # a single file, whatever the source's mode
            problems = [row[0] for row in dst.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise BackupRefused(f"the copy failed SQLite's check: {problems[0]}")
            made = _describe(dst)
        finally:
            dst.close()
    except sqlite3.OperationalError as exc:
        if "readonly" in str(exc) or "unable to open" in str(exc):
            raise BackupRefused(
                f"the database could not be read ({exc}): with the service stopped, the backup needs to write "
                f"beside {source}; run it as the user the service runs as"
            ) from None
        raise
    finally:
        if src is not None:
            src.close()
    return made


def _sync_directory(directory: Path) -> None:
    """The rename on disk, so a power cut (or a stick pulled out) right after keeps the new file."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # (some file systems cannot sync a directory)
        pass
    finally:
        os.close(fd)


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
