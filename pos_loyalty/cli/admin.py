"""Tills, staff, the programme and the expiry run, from the command line."""
from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click

from . import Context, fail_cleanly, main, pass_ctx


@main.group()
def till() -> None:
    """Register and revoke tills (each gets a bearer token for the API)."""


@till.command("add")
@click.argument("name")
@pass_ctx
@fail_cleanly
def till_add(ctx: Context, name: str) -> None:
    """Register a till; its token is the last line printed (shown only once)."""
    from ..services.access import add_till

    identity, token = add_till(ctx.shop, name)
    click.echo(f"till {identity.name!r} registered; give its sales software this bearer token:")
    click.echo(token)


@till.command("revoke")
@click.argument("name")
@pass_ctx
@fail_cleanly
def till_revoke(ctx: Context, name: str) -> None:
    """Revoke a till's token at once."""
    from ..services.access import revoke_till

    revoke_till(ctx.shop, name)
    click.echo(f"till {name!r} revoked; its token no longer works")


@main.group()
def users() -> None:
    """Staff logins for the cashier screen and the manager panel."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(["manager", "cashier"]), required=True)
@pass_ctx
@fail_cleanly
def users_add(ctx: Context, username: str, role: str) -> None:
    """Add a user; asks for the password (or reads it from standard input when piped)."""
    from ..services.access import add_user

    if sys.stdin.isatty():
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    add_user(ctx.shop, username, password, role)
    click.echo(f"user {username!r} added as {role}")


@main.command()
@pass_ctx
@fail_cleanly
def expire(ctx: Context) -> None:
    """Expire points past their date (the server also does this daily)."""
    from ..services.points import expire_points

    result = expire_points(ctx.shop)
    click.echo(f"{result['points']} points expired for {result['customers']} customers")


@main.group()
def programme() -> None:
    """Show or load the earn rules, tiers, bonuses and expiry policy."""


@programme.command("show")
@pass_ctx
def programme_show(ctx: Context) -> None:
    """Print the current programme as JSON."""
    from ..services.programme import get_programme

    p = get_programme(ctx.shop)
    click.echo(json.dumps({"version": p.version_id, **p.to_dict()}, indent=2))


@programme.command("load")
@click.argument("file", type=click.File("r"))
@click.option("--user", default="cli", show_default=True, help="Who makes the change (for the audit log).")
@pass_ctx
@fail_cleanly
def programme_load(ctx: Context, file, user: str) -> None:
    """Save FILE (JSON, as printed by `programme show`) as the new programme version."""
    from ..services.programme import save_programme

    try:
        data = json.load(file)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{file.name} is not valid JSON: {exc}") from None
    data.pop("version", None)
    saved = save_programme(ctx.shop, data, actor=user)
    click.echo(f"programme version {saved.version_id} saved; the next sale on every till uses it")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@pass_ctx
def backup(ctx: Context, file: Path, force: bool) -> None:
    """Copy the till's SQLite database to FILE, safely while the till serves: every sale committed
    by then, checked, readable by its owner only."""
    from sqlalchemy.engine import make_url

    from ..config import ConfigError, load_settings
    from ..persistence.backup import BackupRefused, backup_sqlite

    try:  # (not ctx.settings: preparing the data directory is the service's business, not a backup's)
        settings = load_settings(config_file=ctx.config_file)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if not settings.is_sqlite:
        raise click.ClickException(
            "this till's database is the store's PostgreSQL, which all its tills share: back it up on the "
            f"database server with pg_dump (pg_dump --format=custom --file=loyalty.dump {make_url(settings.effective_database_url).database})"
        )
    signal.signal(signal.SIGTERM, _stop)  # (a shutdown mid-copy: the half-made file is removed on the way out)
    try:
        made = backup_sqlite(make_url(settings.effective_database_url).database, file, overwrite=force)
    except BackupRefused as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"backup written: {made.path} ({made.bytes / 1_000_000:.1f} MB, schema {made.revision or 'none'}; "
        f"{made.customers} customers, {made.transactions} transactions, {made.ledger_entries} ledger entries)"
    )


def _stop(signum, _frame) -> None:
    raise SystemExit(128 + signum)
