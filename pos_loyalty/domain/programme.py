"""The loyalty programme a manager configures: earn rules, promotions, tiers, bonuses, expiry.

A programme is saved as a new version every time it changes; each sale records the version it
was computed under, so every past award can be explained and a policy change never rewrites
points already earned. Multipliers are exact decimals (``Fraction``), never floats.

Categories and SKUs are matched by ``name_key``: trimmed and without regard to case. A manager
types them into the programme and every till sends its own spelling; "Tobacco" or " tobacco" from
a till must not earn points on goods the programme excludes as "tobacco". The line keeps what the
till sent; only the comparison forgives.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from .errors import InvalidInput

MAX_MULTIPLIER = Fraction(100)
ONE = Fraction(1)


def name_key(name: str) -> str:
    """What a category or SKU is compared by: no surrounding spaces, no case (``casefold``, so
    "STRASSE" and "straße" are one name too)."""
    return name.strip().casefold()


def _keyed(multipliers: dict[str, Fraction]) -> dict[str, Fraction]:
    return {name_key(name): value for name, value in multipliers.items()}


def parse_multiplier(value: Any, where: str) -> Fraction:
    """``"1.5"`` or ``2`` -> Fraction; at most four decimals, between 0 and 100."""
    if isinstance(value, bool) or isinstance(value, float):
        raise InvalidInput("a multiplier is written as a decimal string like \"1.5\"", field=where)
    text = str(value).strip()
    try:
        frac = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise InvalidInput(f"{text!r} is not a number", field=where) from None
    if "/" in text or (frac * 10_000).denominator != 1:
        raise InvalidInput("a multiplier has at most four decimals", field=where)
    if frac < 0 or frac > MAX_MULTIPLIER:
        raise InvalidInput("a multiplier is between 0 and 100", field=where)
    return frac


def format_multiplier(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    whole, rest = divmod(value.numerator * 10_000 // value.denominator, 10_000)
    return f"{whole}.{rest:04d}".rstrip("0")


def _int(data: dict, key: str, where: str, *, default: int | None = None, minimum: int = 0, maximum: int = 10**9) -> int:
    value = data.get(key, default)
    if value is None and default is None:
        raise InvalidInput("is required", field=f"{where}{key}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("must be a whole number", field=f"{where}{key}")
    if not minimum <= value <= maximum:
        raise InvalidInput(f"must be between {minimum} and {maximum}", field=f"{where}{key}")
    return value


def _date(value: Any, where: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput("must be a date like 2026-12-24", field=where) from None


def _strings(value: Any, where: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, (list, tuple, set, frozenset)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InvalidInput("must be a list of names", field=where)
    return frozenset(v.strip() for v in value)


@dataclass(frozen=True)
class Promotion:
    name: str
    starts_on: dt.date
    ends_on: dt.date
    weekdays: frozenset[int] = frozenset()  # 0 = Monday; empty = every day
    multiplier: Fraction = Fraction(1)
    bonus_points: int = 0
    min_spend: int = 0  # minor units of eligible spend, for the fixed bonus
    categories: frozenset[str] = frozenset()  # empty = every eligible line
    skus: frozenset[str] = frozenset()
    _category_keys: frozenset[str] = field(init=False, repr=False, compare=False)
    _sku_keys: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_category_keys", frozenset(map(name_key, self.categories)))
        object.__setattr__(self, "_sku_keys", frozenset(map(name_key, self.skus)))

    def runs_on(self, day: dt.date) -> bool:
        return self.starts_on <= day <= self.ends_on and (not self.weekdays or day.weekday() in self.weekdays)

    def covers(self, sku: str, category: str | None) -> bool:
        if not self.categories and not self.skus:
            return True
        return name_key(sku) in self._sku_keys or (category is not None and name_key(category) in self._category_keys)


@dataclass(frozen=True)
class Tier:
    code: str
    name: str
    min_spend: int  # rolling twelve-month eligible spend, minor units
    multiplier: Fraction = Fraction(1)


@dataclass(frozen=True)
class Programme:
    version_id: int | None = None
    points_per_unit: int = 1
    unit_minor: int = 100  # points_per_unit points for every unit_minor of eligible spend
    excluded_categories: frozenset[str] = frozenset({"tobacco", "gift-cards", "lottery", "deposits"})
    category_multipliers: dict[str, Fraction] = field(default_factory=dict)
    sku_multipliers: dict[str, Fraction] = field(default_factory=dict)
    promotions: tuple[Promotion, ...] = ()
    tiers: tuple[Tier, ...] = (Tier("member", "Member", 0),)
    welcome_bonus: int = 0
    birthday_bonus: int = 0
    birthday_window_days: int = 3  # the birthday week: this many days either side
    expiry_months: int | None = 12  # None: points never expire
    claim_window_days: int = 14
    cashier_goodwill_limit: int = 100
    manager_goodwill_limit: int = 100_000
    point_value_minor: Fraction = Fraction(1)  # what one point is worth, in minor units
    # the names above by ``name_key``, for the rules to look up (the names as typed are stored)
    _excluded_keys: frozenset[str] = field(init=False, repr=False, compare=False)
    _category_keys: dict[str, Fraction] = field(init=False, repr=False, compare=False)
    _sku_keys: dict[str, Fraction] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_excluded_keys", frozenset(map(name_key, self.excluded_categories)))
        object.__setattr__(self, "_category_keys", _keyed(self.category_multipliers))
        object.__setattr__(self, "_sku_keys", _keyed(self.sku_multipliers))

    # -- rules -------------------------------------------------------------------------------
    def product_multiplier(self, sku: str, category: str | None) -> Fraction:
        if self._sku_keys and (multiplier := self._sku_keys.get(name_key(sku))) is not None:
            return multiplier
        if category is not None and self._category_keys and (multiplier := self._category_keys.get(name_key(category))) is not None:
            return multiplier
        return ONE

    def earns(self, category: str | None) -> bool:
        return category is None or name_key(category) not in self._excluded_keys

    def tier_for(self, rolling_spend: int) -> Tier:
        current = self.tiers[0]
        for tier in self.tiers:
            if rolling_spend >= tier.min_spend:
                current = tier
        return current

    def next_tier(self, rolling_spend: int) -> Tier | None:
        for tier in self.tiers:
            if tier.min_spend > rolling_spend:
                return tier
        return None

    def tier_by_code(self, code: str) -> Tier | None:
        return next((t for t in self.tiers if t.code == code), None)

    # -- storage -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "points_per_unit": self.points_per_unit,
            "unit_minor": self.unit_minor,
            "excluded_categories": sorted(self.excluded_categories),
            "category_multipliers": {k: format_multiplier(v) for k, v in sorted(self.category_multipliers.items())},
            "sku_multipliers": {k: format_multiplier(v) for k, v in sorted(self.sku_multipliers.items())},
            "promotions": [
                {
                    "name": p.name,
                    "starts_on": p.starts_on.isoformat(),
                    "ends_on": p.ends_on.isoformat(),
                    "weekdays": sorted(p.weekdays),
                    "multiplier": format_multiplier(p.multiplier),
                    "bonus_points": p.bonus_points,
                    "min_spend": p.min_spend,
                    "categories": sorted(p.categories),
                    "skus": sorted(p.skus),
                }
                for p in self.promotions
            ],
            "tiers": [
                {"code": t.code, "name": t.name, "min_spend": t.min_spend, "multiplier": format_multiplier(t.multiplier)}
                for t in self.tiers
            ],
            "welcome_bonus": self.welcome_bonus,
            "birthday_bonus": self.birthday_bonus,
            "birthday_window_days": self.birthday_window_days,
            "expiry_months": self.expiry_months,
            "claim_window_days": self.claim_window_days,
            "cashier_goodwill_limit": self.cashier_goodwill_limit,
            "manager_goodwill_limit": self.manager_goodwill_limit,
            "point_value_minor": format_multiplier(self.point_value_minor),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], version_id: int | None = None, *, stored: bool = False) -> "Programme":
        """Build and check a programme; raises InvalidInput naming the field at fault.

        ``stored``: a version read back from the database. It was checked when it was saved, by
        the rules of then; a check added since (two multipliers for one name in different case)
        must not stop it loading, or no sale made under it could be returned."""
        if not isinstance(data, dict):
            raise InvalidInput("the programme must be an object", field="programme")
        known = set(cls().to_dict())
        unknown = set(data) - known
        if unknown:
            raise InvalidInput(f"unknown setting {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
        d = {**cls().to_dict(), **data}

        def multipliers(key: str) -> dict[str, Fraction]:
            raw = d.get(key) or {}
            if not isinstance(raw, dict):
                raise InvalidInput("must map names to multipliers", field=key)
            parsed = {str(k).strip(): parse_multiplier(v, f"{key}.{k}") for k, v in raw.items()}
            if not stored:
                seen: dict[str, str] = {}
                for name in sorted(parsed):
                    if (other := seen.setdefault(name_key(name), name)) != name:
                        raise InvalidInput(
                            f"{other!r} and {name!r} are the same name (case and spaces are ignored): keep one", field=key
                        )
            return parsed

        promotions = []
        for i, p in enumerate(d.get("promotions") or []):
            where = f"promotions.{i}."
            if not isinstance(p, dict):
                raise InvalidInput("must be an object", field=f"promotions.{i}")
            name = str(p.get("name") or "").strip()
            if not name:
                raise InvalidInput("a promotion needs a name", field=where + "name")
            starts, ends = _date(p.get("starts_on"), where + "starts_on"), _date(p.get("ends_on"), where + "ends_on")
            if ends < starts:
                raise InvalidInput("the promotion ends before it starts", field=where + "ends_on")
            weekdays = p.get("weekdays") or []
            if not isinstance(weekdays, list) or not all(isinstance(w, int) and not isinstance(w, bool) and 0 <= w <= 6 for w in weekdays):
                raise InvalidInput("weekdays are numbers 0 (Monday) to 6 (Sunday)", field=where + "weekdays")
            multiplier = parse_multiplier(p.get("multiplier", "1"), where + "multiplier")
            if multiplier < 1:
                raise InvalidInput("a promotion multiplier is at least 1", field=where + "multiplier")
            bonus = _int(p, "bonus_points", where, default=0)
            if multiplier == 1 and bonus == 0:
                raise InvalidInput("a promotion gives a multiplier above 1 or a bonus", field=where + "multiplier")
            promotions.append(
                Promotion(
                    name=name,
                    starts_on=starts,
                    ends_on=ends,
                    weekdays=frozenset(weekdays),
                    multiplier=multiplier,
                    bonus_points=bonus,
                    min_spend=_int(p, "min_spend", where, default=0),
                    categories=_strings(p.get("categories"), where + "categories"),
                    skus=_strings(p.get("skus"), where + "skus"),
                )
            )

        tiers = []
        for i, t in enumerate(d.get("tiers") or []):
            where = f"tiers.{i}."
            if not isinstance(t, dict):
                raise InvalidInput("must be an object", field=f"tiers.{i}")
            code, name = str(t.get("code") or "").strip(), str(t.get("name") or "").strip()
            if not code or not name:
                raise InvalidInput("a tier needs a code and a name", field=where + "name")
            multiplier = parse_multiplier(t.get("multiplier", "1"), where + "multiplier")
            if multiplier < 1:
                raise InvalidInput("a tier multiplier is at least 1", field=where + "multiplier")
            tiers.append(Tier(code, name, _int(t, "min_spend", where, default=0), multiplier))
        if not tiers:
            raise InvalidInput("at least one tier is needed (the one every member starts in)", field="tiers")
        if tiers[0].min_spend != 0:
            raise InvalidInput("the first tier starts at a spend of 0", field="tiers.0.min_spend")
        for i in range(1, len(tiers)):
            if tiers[i].min_spend <= tiers[i - 1].min_spend:
                raise InvalidInput("tiers are listed by rising spend", field=f"tiers.{i}.min_spend")
        if len({t.code for t in tiers}) != len(tiers):
            raise InvalidInput("tier codes must differ", field="tiers")

        expiry = d.get("expiry_months")
        if expiry is not None:
            expiry = _int(d, "expiry_months", "", minimum=1, maximum=120)
        point_value = parse_multiplier(d.get("point_value_minor", "1"), "point_value_minor")

        return cls(
            version_id=version_id,
            points_per_unit=_int(d, "points_per_unit", "", minimum=0, maximum=10_000),
            unit_minor=_int(d, "unit_minor", "", minimum=1, maximum=10**7),
            excluded_categories=_strings(d.get("excluded_categories"), "excluded_categories"),
            category_multipliers=multipliers("category_multipliers"),
            sku_multipliers=multipliers("sku_multipliers"),
            promotions=tuple(promotions),
            tiers=tuple(tiers),
            welcome_bonus=_int(d, "welcome_bonus", "", maximum=1_000_000),
            birthday_bonus=_int(d, "birthday_bonus", "", maximum=1_000_000),
            birthday_window_days=_int(d, "birthday_window_days", "", maximum=15),
            expiry_months=expiry,
            claim_window_days=_int(d, "claim_window_days", "", maximum=365),
            cashier_goodwill_limit=_int(d, "cashier_goodwill_limit", "", maximum=1_000_000),
            manager_goodwill_limit=_int(d, "manager_goodwill_limit", "", maximum=100_000_000),
            point_value_minor=point_value,
        )


DEFAULT_PROGRAMME = Programme()
