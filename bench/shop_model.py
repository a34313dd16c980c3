"""The shop the benchmark data describes: its catalogue, programme, rewards and customers' names.

A delicatessen-grocer like the demo shop (``pos_loyalty.demo``), widened to a few hundred
products, with a programme that has run for the whole history: tiers, a welcome and a birthday
bonus, category and product multipliers, and promotions every year.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from pos_loyalty.demo import (
    ALLERGIES,
    CASHIERS,
    CATALOGUE,
    DEPOSIT,
    DIETARY,
    ENGLISH_FIRST,
    ENGLISH_LAST,
    GERMAN_FIRST,
    GERMAN_LAST,
    PACKAGING,
    PREFERRED,
    SERVICE_NOTES,
    STAFF_NOTES,
    ascii_fold,
    programme_settings,
)
from pos_loyalty.domain.programme import Programme

__all__ = [
    "ALLERGIES", "CASHIERS", "DIETARY", "ENGLISH_FIRST", "ENGLISH_LAST", "GERMAN_FIRST", "GERMAN_LAST",
    "PACKAGING", "PREFERRED", "SERVICE_NOTES", "STAFF_NOTES", "ascii_fold",
    "Item", "catalogue", "programme_data", "rewards", "TIMEZONE", "CURRENCY", "LOCALE", "CARD_PREFIX",
]

TIMEZONE = "Europe/Berlin"
CURRENCY = "EUR"
LOCALE = "de_DE"
CARD_PREFIX = "27"
OPENING_HOURS = (8, 20)  # local; closed on Sundays
VARIANTS = ("", " (large)", ", organic", ", value pack", " (regional)", ", premium", " (small)", ", family size")
PRICE_FACTORS = (100, 160, 135, 250, 110, 180, 70, 300)  # percent of the base price


@dataclass(frozen=True)
class Item:
    sku: str
    description: str
    category: str
    unit_price: int  # minor units; per kg for weighed goods
    weighed: tuple[int, int] | None  # grams


def catalogue() -> list[Item]:
    """Every demo product in up to eight variants: a few hundred SKUs. The first variant keeps the
    demo's SKU, so its multipliers and free-item rewards apply."""
    items = []
    for product in (*CATALOGUE, DEPOSIT):
        variants = 1 if product.category in ("deposits", "tobacco") else len(VARIANTS)
        for k in range(variants):
            sku = product.sku if k == 0 else f"{product.sku}-{k}"
            items.append(Item(sku, product.description + VARIANTS[k], product.category,
                              max(1, product.unit_price * PRICE_FACTORS[k] // 100), product.weighed))
    return items


def programme_data(start: dt.date, end: dt.date) -> dict[str, Any]:
    """The earn rules that applied for the whole history, with each year's promotions."""
    promotions: list[dict[str, Any]] = [
        {"name": "Coffee Saturdays", "starts_on": start.isoformat(), "ends_on": end.isoformat(), "weekdays": [5],
         "multiplier": "2", "categories": ["coffee"]},
    ]
    for year in range(start.year, end.year + 1):
        promotions += [
            {"name": f"Fruit & veg fortnight {year}", "starts_on": f"{year}-04-10", "ends_on": f"{year}-04-23",
             "multiplier": "3", "categories": ["produce"]},
            {"name": f"Cheese counter week {year}", "starts_on": f"{year}-10-05", "ends_on": f"{year}-10-11",
             "bonus_points": 50, "min_spend": 1500, "categories": ["deli"]},
            {"name": f"Christmas double points {year}", "starts_on": f"{year}-12-15", "ends_on": f"{year}-12-24",
             "multiplier": "2"},
        ]
    # The demo shop's rules, with a promotion calendar spanning the whole history.
    data = {**programme_settings(end, with_promotions=False), "promotions": promotions}
    return Programme.from_dict(data).to_dict()  # checked, and in the form the product stores


def rewards() -> list[dict[str, Any]]:
    """The rewards catalogue (ids 1..n in this order); none is limited by date."""
    return [
        {"name": "Free butter croissant", "kind": "free_item", "sku": "BAK-CROI", "points_cost": 80, "tiers": None},
        {"name": "Free coffee to go", "kind": "free_item", "sku": "COF-CUP", "points_cost": 150, "tiers": None},
        {"name": "€2 off your shopping", "kind": "amount_off", "amount": 200, "points_cost": 200, "tiers": None},
        {"name": "€5 off your shopping", "kind": "amount_off", "amount": 500, "points_cost": 500, "tiers": None},
        {"name": "10% off your basket (up to €10)", "kind": "percent_off", "percent": 10, "cap": 1000,
         "points_cost": 700, "tiers": None},
        {"name": "€10 off for Gold members", "kind": "amount_off", "amount": 1000, "points_cost": 900, "tiers": ["gold"]},
    ]


def multiplier_e4(value: str | Fraction) -> int:
    """A programme multiplier in ten-thousandths (they have at most four decimals)."""
    frac = Fraction(value)
    scaled = frac * 10_000
    assert scaled.denominator == 1, value
    return int(scaled)
