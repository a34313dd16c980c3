"""``init`` and ``serve``."""
from __future__ import annotations

import logging
import signal
import sys
from contextlib import ExitStack
from pathlib import Path

import click

from ..config import SQLITE_PREFIX
from . import Context, main, pass_ctx

log = logging.getLogger("pos_loyalty.server")


def describe(settings) -> str:
    """Where this till keeps its data, printed at start-up (the database password masked).

    Paths are printed absolute, resolved from the directory the command was started in: a
    relative ``var/demo`` says nothing to whoever reads a supervisor's log later, or runs the
    next command from elsewhere and wonders where the customers went."""
    database = absolute_sqlite_url(settings) if settings.is_sqlite else settings.masked_database_url
    return f"data directory: {settings.data_dir.resolve()}\ndatabase: {database}"


def absolute_sqlite_url(settings) -> str:
    """The SQLite database's URL with the file's path resolved as it is opened: relative to the
    current directory. (A SQLite URL has no password to mask.)"""
    url = settings.effective_database_url
    path, sep, query = url[len(SQLITE_PREFIX):].partition("?")
    return f"{SQLITE_PREFIX}{Path(path).resolve()}{sep}{query}"


def say(text: str) -> None:
    """Print a line and flush it at once, so a supervisor or a pipe sees it while we run."""
    click.echo(text)
    sys.stdout.flush()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def require_current_schema(services) -> None:
    """Refuse to work on a database we cannot reach or whose schema is not the newest."""
    from ..persistence.revision import current_revision, head_revision  # without loading Alembic

    try:
        revision = current_revision(services.db.reader)
    except Exception as exc:  # unreachable, wrong password, not a database: say which and why
        raise click.ClickException(f"could not open the database: {_first_line(exc)}") from None
    head = head_revision()
    if revision != head:
        raise click.ClickException(
            f"the database schema is at revision {revision or 'none (empty database)'}, not {head}; "
            "run `pos-loyalty init` first"
        )


@main.command()
@pass_ctx
def init(ctx: Context) -> None:
    """Create the database, or upgrade it to the newest schema. Safe to run again, and by several
    tills at once: they take turns (``persistence.setup_lock``)."""
    from ..persistence.setup_lock import init_lock

    say(describe(ctx.settings))
    waiting = lambda: say("another `pos-loyalty init` is preparing this database; waiting for it to finish…")  # noqa: E731
    with ExitStack() as turn:
        turn.callback(ctx.services.db.dispose)
        try:
            turn.enter_context(init_lock(ctx.services.db.writer, on_wait=waiting))
        except Exception as exc:  # a database we cannot reach: say which and why
            raise click.ClickException(f"could not prepare the database: {_first_line(exc)}") from None
        _upgrade(ctx)
        _store_first_programme(ctx)
        _build_report_summaries(ctx)


def _upgrade(ctx: Context) -> None:
    from ..persistence.migrate import upgrade_to_head

    db = ctx.services.db
    try:
        before, after = upgrade_to_head(db.writer)
    except Exception as exc:  # a database we cannot write: say which and why
        raise click.ClickException(f"could not prepare the database: {_first_line(exc)}") from None
    finally:
        db.dispose()
    if before == after:
        say(f"schema already current (revision {after})")
    elif before is None:
        say(f"database created (revision {after})")
    else:
        say(f"schema upgraded from {before} to {after}")


def _store_first_programme(ctx: Context) -> None:
    """The built-in programme saved as version 1 if none is stored, so every sale records a version."""
    from ..services.programme import store_first_programme

    try:
        saved = store_first_programme(ctx.services.shop)
    finally:
        ctx.services.db.dispose()
    if saved is not None:
        say(f"programme version {saved.version_id} saved: the built-in defaults, until a manager changes them")


def _build_report_summaries(ctx: Context) -> None:
    """The manager's reports read summaries of the whole history; building them reads all of it
    (minutes for a chain-sized database), so it happens here, while no till is waiting, and not
    on the first report the manager opens during trading."""
    from ..services.reports import refresh_summaries

    try:
        done = refresh_summaries(ctx.services.shop, rebuild=False)
        if not done["current"]:
            say("building the report summaries from the whole history (once; may take minutes on a large database)…")
            refresh_summaries(ctx.services.shop, rebuild=True)
        say("report summaries current")
    except Exception as exc:  # the schema is done; reports still answer from the base tables
        say(f"could not build the report summaries ({_first_line(exc)}); reports will read the whole history until the next `pos-loyalty init`")
    finally:
        ctx.services.db.dispose()


def _listen(app, host: str, port: int, threads: int):
    """A waitress server bound to host:port; returns it and the (host, port) pairs it listens on."""
    from waitress import create_server

    from ..app import MAX_BODY_BYTES
    from ..wsgi_logging import QueueDepthLog

    try:
        server = create_server(
            app, host=host, port=port, threads=threads, ident="pos-loyalty", max_request_body_size=MAX_BODY_BYTES
        )
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise click.ClickException(f"cannot listen on {host}:{port}: {reason}") from None
    server.task_dispatcher.queue_logger = QueueDepthLog()  # a line a minute, not one per queued request
    listening = getattr(server, "effective_listen", None) or [(server.effective_host, server.effective_port)]
    return server, listening


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@main.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1: this machine only; or the host setting).")
@click.option("--port", type=click.IntRange(0, 65535),
              help="Port to listen on (default 8080, or the port setting; 0 picks a free port).")
@pass_ctx
def serve(ctx: Context, host: str | None, port: int | None) -> None:
    """Serve the till API, the cashier screen and the manager panel under waitress.

    Logs one line per request (card numbers masked) to standard error; stops cleanly on SIGTERM
    or Ctrl-C.
    """
    from ..app import create_app
    from ..jobs import DailyJobs
    from ..wsgi_logging import RequestLog

    settings = ctx.settings
    host = settings.host if host is None else host
    port = settings.port if port is None else port
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its "Context impl ..." says nothing to the shop
    say(describe(settings))
    app = create_app(settings)
    services = app.extensions["pos_loyalty"]
    try:
        require_current_schema(services)
        server, listening = _listen(RequestLog(app), host, port, settings.threads)
    except click.ClickException:
        services.db.dispose()
        raise
    for address, bound_port in listening:
        base = _url(address, bound_port)
        say(f"panel: {base}/   API: {base}/api/v1/")

    def stop(signum, _frame):
        log.info("stopping on signal %s", signum)
        app.extensions["pos_loyalty_web"].stop()  # end open cashier-screen streams so threads can stop
        raise SystemExit(0)  # waitress's loop takes this as the sign to shut down

    jobs = DailyJobs(services) if settings.run_daily_expiry else None
    signal.signal(signal.SIGTERM, stop)
    checkpoints = services.db.start_background_checkpoints()
    if jobs:
        jobs.start()
    try:
        server.run()
    finally:
        if jobs:
            jobs.stop()
        if checkpoints:
            checkpoints.stop()
        services.db.dispose()
        say("stopped")
