"""Reading the panel's forms: text in, plain values out, and a message for each field at fault.

A form travels to the templates as ``{"values": {...}, "errors": {field: message}}`` (what
``_forms.html`` expects): what was typed is kept, so a refused form comes back as it was sent.
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from babel.numbers import get_currency_precision
from flask import current_app

from pos_loyalty.domain.errors import LoyaltyError

ID = "int(max=2147483647)"  # URL converter: a number past the database's ids is no record (404), not a fault
WHOLE = re.compile(r"^[+-]?\d{1,12}\Z")
MONEY = re.compile(r"^\d{1,10}([.,]\d+)?\Z")
QUANTITY = re.compile(r"^\d{1,6}([.,]\d{1,3})?\Z")


class FormProblem(Exception):
    """One field of a form is not right; the form is shown again with the message beside it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def empty_form(values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"values": dict(values or {}), "errors": {}}


def sentence(text: str) -> str:
    """A service's message as a sentence: ``is not an email address`` -> ``This is not an email address.``"""
    text = text.strip()
    if text.startswith(("is ", "are ", "must ")):
        text = "this " + text
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def problem_of(
    exc: LoyaltyError | FormProblem, fields: Mapping[str, str], known: set[str] | frozenset[str], default: str = "form"
) -> tuple[str, str]:
    """The form field a refusal is about (the service's name mapped to the form's), and its message.
    A refusal about no field the form shows is shown above the form."""
    field = exc.field if isinstance(exc, FormProblem) else (exc.field or default)
    field = fields.get(field, field)
    return (field if field in known else default), sentence(exc.message)


def currency() -> str:
    return current_app.extensions["pos_loyalty"].shop.currency


def whole_number(
    text: str | None, field: str, *, required: bool = True, signed: bool = False, maximum: int | None = None
) -> int | None:
    text = (text or "").strip()
    if not text:
        if required:
            raise FormProblem(field, "Give a whole number.")
        return None
    if not WHOLE.match(text) or (not signed and text.startswith("-")):
        raise FormProblem(field, "Give a whole number, like 20." if signed else "Give a whole number, 0 or more, like 20.")
    number = int(text)
    if maximum is not None and abs(number) > maximum:
        raise FormProblem(field, f"Give a number up to {maximum:,}.")
    return number


def money(text: str | None, field: str, *, required: bool = True) -> int | None:
    """``2.50`` or ``2,50`` in the shop's currency -> 250 minor units (no float on the way)."""
    text = (text or "").strip().replace(" ", "")
    if not text:
        if required:
            raise FormProblem(field, "Give an amount, like 2.50.")
        return None
    digits = get_currency_precision(currency())
    if not MONEY.match(text):
        raise FormProblem(field, "Give an amount, like 2.50.")
    try:
        amount = Decimal(text.replace(",", "."))
    except InvalidOperation:  # pragma: no cover - the pattern already refused it
        raise FormProblem(field, "Give an amount, like 2.50.") from None
    minor = amount.scaleb(digits)
    if minor != minor.to_integral_value():
        raise FormProblem(field, f"Give at most {digits} decimals." if digits else "Give a whole amount.")
    return int(minor)


def money_text(minor: int | None) -> str:
    """Minor units as a form shows them for editing: ``250`` -> ``2.50``."""
    if minor is None:
        return ""
    digits = get_currency_precision(currency())
    return f"{Decimal(minor).scaleb(-digits):.{digits}f}"


def quantity_milli(text: str | None, field: str) -> int:
    """``2`` -> 2000, ``0.5`` -> 500: a quantity in thousandths, as the till sends it."""
    text = (text or "").strip()
    if not QUANTITY.match(text):
        raise FormProblem(field, "Give a quantity like 1 or 0.5.")
    milli = int(Decimal(text.replace(",", ".")) * 1000)
    if milli <= 0:
        raise FormProblem(field, "Give a quantity above zero.")
    return milli


def day(text: str | None, field: str, *, required: bool = False) -> dt.date | None:
    text = (text or "").strip()
    if not text:
        if required:
            raise FormProblem(field, "Give a date.")
        return None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise FormProblem(field, "Give a date like 2026-12-24.")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise FormProblem(field, "There is no such day.") from None


def names(text: str | None) -> list[str]:
    """``tobacco, lottery`` -> ``["tobacco", "lottery"]`` (commas or semicolons; blanks dropped)."""
    return [part.strip() for part in re.split(r"[,;]", text or "") if part.strip()]
