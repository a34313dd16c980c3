"""The counter's hardware from the command line: receipts, the printer, the scanner."""
from __future__ import annotations

import sys

import click

from . import Context, fail_cleanly, main, pass_ctx


@main.group()
def receipt() -> None:
    """Look at receipts."""


@receipt.command("show")
@click.argument("transaction_id")
@click.option("--columns", type=click.Choice(["32", "42", "48"]), help="Paper width in characters (default: the printer_columns setting).")
@click.option("--loyalty-only", is_flag=True, help="Only the customer's points statement.")
@pass_ctx
@fail_cleanly
def receipt_show(ctx: Context, transaction_id: str, columns: str | None, loyalty_only: bool) -> None:
    """Render a recorded transaction's receipt as text in the terminal."""
    from dataclasses import replace

    from ..services.receipts import loyalty_block_for, receipt_for

    options = ctx.services.receipt_options
    if columns:
        options = replace(options, columns=int(columns))
    if loyalty_only:
        block = loyalty_block_for(ctx.shop, transaction_id, options)
        click.echo(block.as_text() if block else "(an anonymous sale has no loyalty statement)")
    else:
        click.echo(receipt_for(ctx.shop, transaction_id, options).as_text())


@main.group()
def printer() -> None:
    """The receipt printer (setting printer_url)."""


def _printer_url(ctx: Context) -> str:
    url = ctx.settings.printer_url
    if not url:
        raise click.ClickException("no receipt printer is configured; set printer_url (e.g. tcp://192.168.1.50:9100)")
    return url


@printer.command("test")
@pass_ctx
def printer_test(ctx: Context) -> None:
    """Print a test page: full width ruler, € and accents, barcodes, a QR code."""
    from drivers.printer import PrinterError, print_receipt, test_page

    url = _printer_url(ctx)
    try:
        print_receipt(test_page(ctx.settings.shop_name, ctx.settings.printer_columns), url, profile=ctx.settings.printer_profile)
    except PrinterError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"test page sent to {url}")


@printer.command("status")
@pass_ctx
def printer_status_cmd(ctx: Context) -> None:
    """Ask the printer whether it is online and has paper."""
    from drivers.printer import printer_status

    status = printer_status(_printer_url(ctx), profile=ctx.settings.printer_profile)
    click.echo(", ".join(f"{k}: {v}" for k, v in status.items()))


@main.group()
def scanner() -> None:
    """The serial / USB-CDC barcode scanner (setting scanner_url)."""


@scanner.command("listen")
@click.option("--url", help="A pyserial URL or device path (default: the scanner_url setting).")
@click.option("--baudrate", type=int, default=None, help="The scanner's speed (default: the scanner_baudrate setting, 9600).")
@pass_ctx
def scanner_listen(ctx: Context, url: str | None, baudrate: int | None) -> None:
    """Print scans as they arrive (Ctrl-C to stop), for setting a scanner up."""
    from drivers.scanner import ScannerError, listen

    url = url or ctx.settings.scanner_url
    if not url:
        raise click.ClickException("say which scanner: --url /dev/ttyACM0, or set scanner_url")
    click.echo(f"listening on {url}; scan something (Ctrl-C to stop)")
    try:
        listen(url, sys.stdout, store_prefix=ctx.settings.card_prefix, baudrate=baudrate or ctx.settings.scanner_baudrate)
    except ScannerError as exc:
        raise click.ClickException(str(exc)) from None
