"""Small builders so tests read as the shop's story."""
from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from pos_loyalty.domain.programme import DEFAULT_PROGRAMME
from pos_loyalty.services.programme import add_reward, save_programme

_ids = itertools.count(1)


def line(sku: str = "COF", price: int = 250, qty: Any = 1, *, category: str | None = "drinks", description: str | None = None, discount: int = 0) -> dict:
    return {
        "sku": sku,
        "description": description or f"Item {sku}",
        "category": category,
        "quantity": qty,
        "unit_price": price,
        "line_discount": discount,
    }


def sale(*lines: dict, card: str | None = None, rewards: list[int] | None = None, at: dt.datetime | None = None, id: str | None = None, cashier: str = "anna") -> dict:
    body = {
        "id": id or f"S-{next(_ids)}",
        "occurred_at": (at or dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.timezone.utc)).isoformat(),
        "currency": "EUR",
        "cashier": cashier,
        "lines": list(lines) or [line()],
    }
    if card:
        body["card_number"] = card
    if rewards:
        body["rewards"] = rewards
    return body


def return_of(*items: tuple[str, Any], at: dt.datetime | None = None, id: str | None = None) -> dict:
    return {
        "id": id or f"R-{next(_ids)}",
        "occurred_at": (at or dt.datetime(2026, 6, 16, 12, 0, tzinfo=dt.timezone.utc)).isoformat(),
        "lines": [{"sku": sku, "quantity": qty} for sku, qty in items],
    }


def enrol(api, name: str = "Anna Schmidt", **fields: Any) -> dict:
    r = api.post("/customers", json={"name": name, **fields})
    assert r.status_code == 201, r.get_json()
    customer = r.get_json()
    customer["card"] = customer["cards"][0]["number"]
    return customer


def programme(shop, **changes: Any):
    """Save the default programme with some settings changed."""
    return save_programme(shop, {**DEFAULT_PROGRAMME.to_dict(), **changes}, actor="manager")


def reward(shop, name: str = "Free coffee", *, kind: str = "free_item", points_cost: int = 100, **fields: Any) -> dict:
    if kind == "free_item":
        fields.setdefault("sku", "COF")
    return add_reward(shop, {"name": name, "kind": kind, "points_cost": points_cost, **fields}, actor="manager")


def adjust(api, customer_id: int, points: int, reason: str = "goodwill") -> dict:
    r = api.post(f"/customers/{customer_id}/adjustments", json={"points": points, "reason": reason, "user": "anna"})
    assert r.status_code == 201, r.get_json()
    return r.get_json()
