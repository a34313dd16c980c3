"""The ``pos-loyalty`` command: set up, serve and look after a till's loyalty service."""
from __future__ import annotations

import sys

import click

from ..config import ConfigError, ensure_data_dir, load_settings


class Context:
    """Settings and services, built on first use so ``--help`` needs no database."""

    def __init__(self, config_file: str | None) -> None:
        self.config_file = config_file
        self._settings = None
        self._services = None

    @property
    def settings(self):
        if self._settings is None:
            try:
                self._settings = ensure_data_dir(load_settings(config_file=self.config_file))
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from None
        return self._settings

    @property
    def services(self):
        if self._services is None:
            from ..app import build_services

            self._services = build_services(self.settings)
        return self._services

    @property
    def shop(self):
        return self.services.shop


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", type=click.Path(dir_okay=False), envvar="POS_LOYALTY_CONFIG",
              help="A TOML settings file (also POS_LOYALTY_CONFIG).")
@click.version_option(package_name="pos-loyalty")
@click.pass_context
def main(click_ctx: click.Context, config_file: str | None) -> None:
    """pos-loyalty: customer loyalty at the till."""
    click_ctx.obj = Context(config_file)


def fail_cleanly(fn):
    """Turn the shop's own errors into one clear line and exit status 1, never a traceback."""
    import functools

    from ..domain.errors import LoyaltyError

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LoyaltyError as exc:
            where = f"{exc.field}: " if exc.field else ""
            raise click.ClickException(f"{where}{exc.message}") from None

    return wrapper


from . import admin, counter, customers, demo, server  # noqa: E402,F401  (register the commands)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
