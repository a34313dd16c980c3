"""``customers import`` and ``customers export`` (CSV)."""
from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
from pathlib import Path

import click

from . import Context, fail_cleanly, main, pass_ctx


@main.group()
def customers() -> None:
    """Bring customers in from a CSV file, or write them all out to one."""


@contextlib.contextmanager
def database_errors(outcome: str):
    """A database that cannot be reached, or has no tables yet: one line, not a traceback."""
    from sqlalchemy.exc import DBAPIError

    try:
        yield
    except DBAPIError as exc:
        first = str(exc.orig or exc).strip().splitlines()[0]
        raise click.ClickException(
            f"the database refused: {first}; {outcome} (is it reachable, and has `pos-loyalty init` been run?)"
        ) from None


def read_rows(path: Path) -> tuple[list[str], list[dict]]:
    """The header and the rows of a CSV file (UTF-8, with or without a BOM; comma, semicolon or
    tab). Every record after the header is a row, blank ones too, so row numbers match the
    spreadsheet's (the import skips blank rows)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            text = fh.read()
    except IsADirectoryError:
        raise click.ClickException(f"{path} is a directory, not a CSV file") from None
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise click.ClickException(
            f"{path} is not UTF-8 text (byte {exc.start}); save it as \"CSV UTF-8\" and try again"
        ) from None
    header_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=max(",;\t", key=header_line.count), strict=True)
    try:
        records = list(reader)
    except csv.Error as exc:
        raise click.ClickException(f"{path} is not a readable CSV file (line {reader.line_num}): {exc}") from None
    if not records:
        return [], []
    header = [name.strip().lower() for name in records[0]]
    rows = []
    for record in records[1:]:
        row: dict = {name: (record[i] if i < len(record) else "") for i, name in enumerate(header)}
        if len(record) > len(header):
            row[None] = record[len(header):]
        rows.append(row)
    return header, rows


@customers.command("import")
@click.argument("file", type=click.Path(dir_okay=True, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check every row and report, writing nothing.")
@pass_ctx
@fail_cleanly
def customers_import(ctx: Context, file: Path, dry_run: bool) -> None:
    """Enrol the customers in a CSV FILE, with opening balances.

    The first line of FILE names the columns.

    \b
    Columns: name, email, phone, birthday (YYYY-MM-DD), preferred_name, language,
    marketing_consent (true/false, yes/no, 1/0), card_number (empty: one is issued),
    opening_balance (whole points, 0 or more; an exported file's "balance" also works),
    and optionally allergies and dietary (separated by ";") and staff_notes.

    Rows that break a rule are reported with their row number and left out; all the others are
    imported together, or, if anything unexpected goes wrong, none at all. Exits with status 1
    when a row was rejected.
    """
    from ..domain.errors import LoyaltyError
    from ..services.customers import check_import_columns, import_customers

    columns, rows = read_rows(file)
    try:
        check_import_columns(columns)
    except LoyaltyError as exc:
        raise click.ClickException(f"{file}: {exc.message}; nothing was imported") from None
    with database_errors("nothing was imported"), click.progressbar(
        length=len(rows), label="checking customers" if dry_run else "importing customers", file=sys.stderr
    ) as bar:
        summary = import_customers(ctx.shop, rows, progress=bar.update, dry_run=dry_run)
    verb = "would be imported" if dry_run else "imported"
    click.echo(f"{_count(summary.accepted, 'customer')} {verb}, with {_count(summary.opening_points, 'point')} of opening balances")
    click.echo(f"{_count(summary.rejected_rows, 'row')} rejected" + (":" if summary.rejected else ""))
    for problem in summary.rejected:
        where = f", {problem.field}" if problem.field else ""
        click.echo(f"  row {problem.row}{where}: {problem.message}")
    if dry_run:
        click.echo("dry run: nothing was written")
    if summary.rejected:
        sys.exit(1)


@customers.command("export")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--user", default="cli", show_default=True, help="Who takes the export (for the audit log).")
@pass_ctx
@fail_cleanly
def customers_export(ctx: Context, file: Path, user: str) -> None:
    """Write every customer to FILE (CSV) with their balance.

    The columns are those `customers import` reads, with "balance" for the opening balance;
    erased customers are left out. FILE "-" writes to standard output. The audit log notes the
    export: who, how many customers, and the file.
    """
    from ..services.customers import EXPORT_COLUMNS, export_customers

    to = "standard output" if str(file) == "-" else str(file.resolve())
    with database_errors("nothing was exported"):
        rows = export_customers(ctx.shop, actor=user, to=to)
    if str(file) == "-":
        writer = csv.DictWriter(sys.stdout, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        return
    partial = file.with_name(file.name + ".partial")
    try:
        with open(partial, "w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=EXPORT_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(partial, file)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise click.ClickException(f"cannot write {file}: {exc.strerror or exc}") from None
    click.echo(f"{_count(len(rows), 'customer')} exported to {file}")


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" + ("" if n == 1 else "s")
