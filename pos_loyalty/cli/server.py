"""``init`` and ``serve``."""
from __future__ import annotations

import logging
import signal
import threading

import click

from . import Context, main, pass_ctx

log = logging.getLogger("pos_loyalty.server")


def describe(settings) -> str:
    return f"data directory: {settings.data_dir}\ndatabase: {settings.masked_database_url}"


@main.command()
@pass_ctx
def init(ctx: Context) -> None:
    """Create the database, or upgrade it to the newest schema. Safe to run again."""
    from ..persistence.migrate import upgrade_to_head

    click.echo(describe(ctx.settings))
    try:
        before, after = upgrade_to_head(ctx.services.db.writer)
    except Exception as exc:  # a database we cannot reach or write: say which and why
        raise click.ClickException(f"could not prepare the database: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from None
    if before == after:
        click.echo(f"schema already current (revision {after})")
    elif before is None:
        click.echo(f"database created (revision {after})")
    else:
        click.echo(f"schema upgraded from {before} to {after}")


@main.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1, or the host setting).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port to listen on (default 8080, or the port setting).")
@pass_ctx
def serve(ctx: Context, host: str | None, port: int | None) -> None:
    """Serve the till API, the cashier screen and the manager panel under waitress."""
    from waitress import create_server

    from ..app import create_app
    from ..jobs import DailyJobs
    from ..persistence.migrate import current_revision, head_revision
    from ..wsgi_logging import RequestLog

    settings = ctx.settings
    host = host or settings.host
    port = port or settings.port
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    services = app.extensions["pos_loyalty"]
    revision = current_revision(services.db.reader)
    if revision != head_revision():
        raise click.ClickException(
            f"the database schema is at {revision or 'nothing'}, not {head_revision()}; run `pos-loyalty init` first"
        )
    jobs = DailyJobs(services) if settings.run_daily_expiry else None
    server = create_server(RequestLog(app), host=host, port=port, threads=settings.threads, ident="pos-loyalty")
    click.echo(describe(settings))
    click.echo(f"panel: http://{host}:{server.effective_port}/   API: http://{host}:{server.effective_port}/api/v1/", nl=True)

    def stop(signum, _frame):
        log.info("stopping on signal %s", signum)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    if jobs:
        jobs.start()
    try:
        server.run()
    finally:
        if jobs:
            jobs.stop()
        services.db.dispose()
        click.echo("stopped")
