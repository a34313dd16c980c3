"""Reading and changing the loyalty programme (earn rules, tiers, bonuses, expiry) and rewards."""
from __future__ import annotations

import datetime as dt
from typing import Any

from ..domain.earning import RewardOffer
from ..domain.errors import InvalidInput, NotFound
from ..domain.programme import DEFAULT_PROGRAMME, Programme
from .context import Shop, UnitOfWork


_parsed: dict[tuple[int, str], Programme] = {}  # versions never change once written


def _parse(row) -> Programme:
    key = (row.id, repr(sorted(row.data.items())))
    programme = _parsed.get(key)
    if programme is None:
        programme = _parsed[key] = Programme.from_dict(row.data, version_id=row.id)
    return programme


def current_programme(uow: UnitOfWork) -> Programme:
    """The newest saved version; the built-in defaults until a manager saves one."""
    row = uow.programmes.latest()
    return DEFAULT_PROGRAMME if row is None else _parse(row)


def programme_version(uow: UnitOfWork, version_id: int | None) -> Programme:
    if version_id is None:
        return DEFAULT_PROGRAMME
    return _parse(uow.programmes.get(version_id))


def get_programme(shop: Shop) -> Programme:
    with shop.uow(read_only=True) as uow:
        return current_programme(uow)


def save_programme(shop: Shop, data: dict[str, Any], *, actor: str) -> Programme:
    """Check and save a new version; the next sale on any till uses it. Past awards keep theirs."""
    programme = Programme.from_dict(data)
    with shop.uow() as uow:
        before = current_programme(uow)
        row = uow.programmes.add(programme.to_dict(), created_by=actor)
        uow.audit.record(actor, "programme.save", "programme", str(row.id), before.to_dict(), programme.to_dict())
        uow.commit()
        return Programme.from_dict(row.data, version_id=row.id)


# -- rewards ---------------------------------------------------------------------------------------

REWARD_KINDS = ("amount_off", "percent_off", "free_item")


def offer_of(row) -> RewardOffer:
    return RewardOffer(
        id=row.id,
        name=row.name,
        kind=row.kind,
        points_cost=row.points_cost,
        amount=row.amount,
        percent=row.percent,
        cap=row.cap,
        sku=row.sku,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        tiers=frozenset(row.tiers or ()),
        active=row.active,
    )


def reward_dict(row) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "points_cost": row.points_cost,
        "amount": row.amount,
        "percent": row.percent,
        "cap": row.cap,
        "sku": row.sku,
        "valid_from": row.valid_from,
        "valid_to": row.valid_to,
        "tiers": list(row.tiers or []),
        "active": row.active,
    }


def check_reward(fields: dict[str, Any], programme: Programme) -> dict[str, Any]:
    kind = fields.get("kind")
    if kind not in REWARD_KINDS:
        raise InvalidInput(f"the kind is one of {', '.join(REWARD_KINDS)}", field="kind")
    if kind == "amount_off" and not (fields.get("amount") or 0) > 0:
        raise InvalidInput("an amount-off reward needs an amount above zero (minor units)", field="amount")
    if kind == "percent_off" and not 1 <= (fields.get("percent") or 0) <= 100:
        raise InvalidInput("a percent-off reward needs a percent from 1 to 100", field="percent")
    if kind == "free_item" and not (fields.get("sku") or "").strip():
        raise InvalidInput("a free-item reward names the SKU it gives", field="sku")
    if (fields.get("points_cost") or 0) <= 0:
        raise InvalidInput("the points cost is above zero", field="points_cost")
    vf, vt = fields.get("valid_from"), fields.get("valid_to")
    if vf and vt and vt < vf:
        raise InvalidInput("the reward stops being valid before it starts", field="valid_to")
    codes = {t.code for t in programme.tiers}
    for code in fields.get("tiers") or []:
        if code not in codes:
            raise InvalidInput(f"there is no tier {code!r}", field="tiers")
    clean = {k: fields.get(k) for k in ("name", "kind", "amount", "percent", "cap", "sku", "points_cost", "valid_from", "valid_to")}
    clean["tiers"] = list(fields.get("tiers") or []) or None
    clean["active"] = fields.get("active", True)
    return clean


def add_reward(shop: Shop, fields: dict[str, Any], *, actor: str) -> dict[str, Any]:
    with shop.uow() as uow:
        clean = check_reward(fields, current_programme(uow))
        row = uow.rewards.add(created_at=shop.now(), **clean)
        uow.audit.record(actor, "reward.add", "reward", str(row.id), None, _jsonable(reward_dict(row)))
        uow.commit()
        return reward_dict(row)


def update_reward(shop: Shop, reward_id: int, fields: dict[str, Any], *, actor: str) -> dict[str, Any]:
    with shop.uow() as uow:
        row = uow.rewards.get(reward_id)
        if row is None:
            raise NotFound(f"there is no reward {reward_id}", field="reward_id")
        before = reward_dict(row)
        clean = check_reward({**before, **fields}, current_programme(uow))
        for key, value in clean.items():
            setattr(row, key, value)
        uow.audit.record(actor, "reward.update", "reward", str(row.id), _jsonable(before), _jsonable(reward_dict(row)))
        uow.commit()
        return reward_dict(row)


def list_rewards(shop: Shop, *, active_only: bool = False) -> list[dict[str, Any]]:
    with shop.uow(read_only=True) as uow:
        return [reward_dict(r) for r in uow.rewards.all(active_only=active_only)]


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in d.items()}
