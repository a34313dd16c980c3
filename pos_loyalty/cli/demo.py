"""``demo``: a believable demo shop."""
from __future__ import annotations

import dataclasses

import click

from . import Context, fail_cleanly, main, pass_ctx
from .server import describe, require_current_schema, say


@main.command()
@click.option("--if-empty", is_flag=True,
              help="Do nothing (successfully) if the database already holds shop data; for `make run`.")
@pass_ctx
@fail_cleanly
def demo(ctx: Context, if_empty: bool) -> None:
    """Fill an EMPTY database with a demo shop: a few hundred customers and a year of trading.

    Creates a manager and a cashier login and a till token, and prints them (only this once).
    """
    from ..app import build_services
    from ..demo import build_demo_shop, what_the_shop_holds

    settings = ctx.settings
    say(describe(settings))
    # The demo writes thousands of small transactions: on SQLite, let the WAL be synced at
    # checkpoints rather than on every commit (a crash here loses only demo data).
    services = build_services(dataclasses.replace(settings, sqlite_synchronous="NORMAL"))
    try:
        require_current_schema(services)
        held = what_the_shop_holds(services.shop)
        if held and if_empty:
            say(f"the database already holds shop data ({', '.join(held)}); no demo data added")
            return
        made = build_demo_shop(services.shop, on_step=lambda text: say(f"making the demo shop: {text} ..."))
    finally:
        services.db.dispose()

    say(
        f"demo shop ready: {made.customers} customers, {made.sales} sales ({made.anonymous_sales} without a card), "
        f"{made.returns} returns, {made.redemptions} rewards redeemed, {made.ratings} visit ratings "
        f"({made.open_follow_ups} follow-ups open)"
    )
    base = f"http://{settings.host}:{settings.port}"
    say(f"\nstart it with `pos-loyalty serve`, then open {base}/ and log in as:")
    for username, password in made.logins.items():
        say(f"  {username:<8} password: {password}")
    say(f"the till {made.till_name!r} sends this bearer token to {base}/api/v1/ (shown only now):")
    say(f"  {made.till_token}")
