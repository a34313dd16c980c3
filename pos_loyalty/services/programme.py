"""Reading and changing the loyalty programme (earn rules, tiers, bonuses, expiry) and rewards."""
from __future__ import annotations

import datetime as dt
from typing import Any

from ..domain.earning import Earning, Line, RewardOffer, compute_earning, visit_bonuses
from ..domain.errors import InvalidInput, NotFound
from ..domain.programme import DEFAULT_PROGRAMME, Programme
from .context import Shop, UnitOfWork


def _version(uow: UnitOfWork, version_id: int) -> Programme:
    """A saved version, parsed once per database (versions never change once written)."""
    parsed = uow.memo.setdefault("programme versions", {})
    programme = parsed.get(version_id)
    if programme is None:
        row = uow.programmes.row(version_id)
        programme = parsed[version_id] = Programme.from_dict(row.data, version_id=row.id, stored=True)
    return programme


def current_programme(uow: UnitOfWork) -> Programme:
    """The newest saved version; the built-in defaults until a manager saves one."""
    row = uow.programmes.latest()
    return programme_as_of(uow, None if row is None else row.id)


def programme_as_of(uow: UnitOfWork, latest_id: int | None) -> Programme:
    """The current programme, given the newest version's id read already (with the card's holder)."""
    return DEFAULT_PROGRAMME if latest_id is None else _version(uow, latest_id)


def programme_version(uow: UnitOfWork, version_id: int | None) -> Programme:
    if version_id is None:
        return DEFAULT_PROGRAMME
    return _version(uow, version_id)


def preview_earning(
    programme: Programme, lines: list[Line], *, day: dt.date, tier_code: str, welcome: bool, birthday: bool
) -> Earning:
    """What a sample basket would earn under rules not yet saved: a pure calculation, nothing written."""
    tier = programme.tier_by_code(tier_code) or programme.tiers[0]
    bonuses = visit_bonuses(programme, welcome_due=welcome, birthday_due=birthday)
    return compute_earning(lines, programme, tier=tier, day=day, extra_bonuses=bonuses)


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


FIRST_VERSION_BY = "pos-loyalty init"


def store_first_programme(shop: Shop) -> Programme | None:
    """Save the built-in defaults as the first version on a database that has none, so the very
    first sale records the version it was computed under (a null version ties an award to no
    stored rules). None when a version is stored already: running it again changes nothing."""
    with shop.uow() as uow:
        if uow.programmes.latest() is not None:
            return None
        row = uow.programmes.add(DEFAULT_PROGRAMME.to_dict(), created_by=FIRST_VERSION_BY)
        uow.audit.record(FIRST_VERSION_BY, "programme.save", "programme", str(row.id), None, DEFAULT_PROGRAMME.to_dict())
        uow.commit()
        return Programme.from_dict(row.data, version_id=row.id)


def only_first_programme_stored(uow: UnitOfWork) -> bool:
    """Whether the one version stored is the defaults ``store_first_programme`` saved: a database
    no one has set up yet (``demo --if-empty`` may still fill it)."""
    rows = uow.programmes.history(limit=2)
    return len(rows) == 1 and rows[0].created_by == FIRST_VERSION_BY


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


MAX_POINTS_COST = 2**31 - 1  # the column is a 32-bit integer on PostgreSQL
MAX_MINOR = 10**11


def _whole(fields: dict[str, Any], key: str, *, maximum: int) -> int | None:
    value = fields.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise InvalidInput(f"must be a whole number from 0 to {maximum}", field=key)
    return value


def check_reward(fields: dict[str, Any], programme: Programme, *, check_tiers: bool = True) -> dict[str, Any]:
    """Check a reward as the catalogue will keep it; raises InvalidInput naming the field."""
    name = (fields.get("name") or "").strip() if isinstance(fields.get("name"), str) else ""
    if not name or len(name) > 120:
        raise InvalidInput("a reward needs a name of up to 120 characters", field="name")
    sku = fields.get("sku")
    if sku is not None and (not isinstance(sku, str) or len(sku.strip()) > 64):
        raise InvalidInput("a SKU has up to 64 characters", field="sku")
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
    for key, maximum in (("amount", MAX_MINOR), ("cap", MAX_MINOR), ("points_cost", MAX_POINTS_COST)):
        _whole(fields, key, maximum=maximum)
    vf, vt = fields.get("valid_from"), fields.get("valid_to")
    if vf and vt and vt < vf:
        raise InvalidInput("the reward stops being valid before it starts", field="valid_to")
    if check_tiers:
        codes = {t.code for t in programme.tiers}
        for code in fields.get("tiers") or []:
            if code not in codes:
                raise InvalidInput(f"there is no tier {code!r}", field="tiers")
    clean = {k: fields.get(k) for k in ("kind", "amount", "percent", "cap", "sku", "points_cost", "valid_from", "valid_to")}
    clean["name"] = name
    clean["sku"] = sku.strip() if isinstance(sku, str) and sku.strip() else None
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
        # A reward tied to a tier that has since gone can still be switched off or renamed.
        clean = check_reward({**before, **fields}, current_programme(uow), check_tiers="tiers" in fields)
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


# -- history ---------------------------------------------------------------------------------------

SETTING_NAMES = {
    "points_per_unit": "earn rate",
    "unit_minor": "earn rate",
    "excluded_categories": "excluded categories",
    "category_multipliers": "category multipliers",
    "sku_multipliers": "product multipliers",
    "promotions": "promotions",
    "tiers": "tiers",
    "welcome_bonus": "welcome bonus",
    "birthday_bonus": "birthday bonus",
    "birthday_window_days": "birthday week",
    "expiry_months": "expiry",
    "claim_window_days": "claim window",
    "cashier_goodwill_limit": "goodwill limits",
    "manager_goodwill_limit": "goodwill limits",
    "point_value_minor": "point value",
}


def programme_history(shop: Shop, *, limit: int = 20) -> list[dict[str, Any]]:
    """The saved programme versions, newest first: when, by whom, and which settings changed."""
    with shop.uow(read_only=True) as uow:
        rows = uow.programmes.history(limit=limit + 1)
        versions = [(row.id, row.created_at, row.created_by, row.data) for row in rows]
    history = []
    for i, (version_id, saved_at, saved_by, data) in enumerate(versions[:limit]):
        previous = versions[i + 1][3] if i + 1 < len(versions) else None
        if previous is None:
            changed = ["first version"] if i + 1 == len(versions) else []
        else:
            keys = [key for key in SETTING_NAMES if data.get(key) != previous.get(key)]
            changed = list(dict.fromkeys(SETTING_NAMES[key] for key in keys))
        history.append({"version_id": version_id, "saved_at": saved_at, "saved_by": saved_by, "changed": changed})
    return history
