"""How the screens write numbers, money and dates."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from babel.numbers import format_currency
from flask import Flask, current_app


def points(value: int) -> str:
    return f"{value:,}"


def money(minor: int, currency: str | None = None) -> str:
    """Integer minor units (in the shop's currency unless told), written the shop's way, never via a float."""
    shop = current_app.extensions["pos_loyalty"].shop
    return format_currency(Decimal(minor) / 100, currency or shop.currency, locale=shop.locale)


def day(value: dt.date | dt.datetime | None) -> str:
    if value is None:
        return ""
    return f"{value.day} {value:%b %Y}"


def moment(value: dt.datetime | None) -> str:
    """A stored (UTC) moment in the shop's time zone."""
    if value is None:
        return ""
    local = value.astimezone(current_app.extensions["pos_loyalty"].shop.timezone)
    return f"{local.day} {local:%b %Y %H:%M}"


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(points=points, money=money, day=day, moment=moment)
