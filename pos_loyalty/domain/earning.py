"""Pricing a basket, applying rewards, and working out the points it earns or a return reverses.

Everything is integer arithmetic on minor units and points, with ``Fraction`` for rates and
multipliers. A transaction's points are floored once; each line's share is then fixed by the
largest-remainder method so the shares add up exactly to the total, and a return reverses the
share of the quantity returned, cumulatively, so returning a line in pieces reverses exactly what
it earned.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Mapping, Sequence

from .errors import InvalidInput
from .programme import Programme, Promotion, Tier

MILLI = 1000


@dataclass(frozen=True)
class Line:
    line_no: int
    sku: str
    description: str
    category: str | None
    quantity_milli: int
    unit_price: int
    line_discount: int = 0
    reward_discount: int = 0
    points: int = 0

    @property
    def gross(self) -> int:
        """Quantity times unit price, rounded half up to the minor unit (weighed goods)."""
        return (self.unit_price * self.quantity_milli + MILLI // 2) // MILLI

    @property
    def net(self) -> int:
        return self.gross - self.line_discount

    @property
    def paid(self) -> int:
        return self.net - self.reward_discount


def check_lines(lines: Sequence[Line]) -> None:
    if not lines:
        raise InvalidInput("a transaction has at least one line", field="lines")
    for i, line in enumerate(lines):
        if line.quantity_milli <= 0:
            raise InvalidInput("the quantity must be above zero", field=f"lines.{i}.quantity")
        if line.unit_price < 0:
            raise InvalidInput("the unit price cannot be negative", field=f"lines.{i}.unit_price")
        if not 0 <= line.line_discount <= line.gross:
            raise InvalidInput(
                f"the line discount must be between 0 and the line amount {line.gross}", field=f"lines.{i}.line_discount"
            )


def split_proportionally(total: int, weights: Sequence[int | Fraction]) -> list[int]:
    """Share a whole number out in proportion to the weights; the parts add up exactly to ``total``.

    Largest remainder first; ties go to the earlier line, so the split is deterministic.
    """
    weight_sum = sum(weights)
    if total == 0 or weight_sum == 0:
        return [0] * len(weights)
    exact = [Fraction(total) * Fraction(w) / Fraction(weight_sum) for w in weights]
    parts = [math.floor(x) for x in exact]
    left = total - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[:left]:
        parts[i] += 1
    return parts


# -- rewards ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RewardOffer:
    """A reward from the catalogue, as the rules see it."""

    id: int
    name: str
    kind: str  # amount_off | percent_off | free_item
    points_cost: int
    amount: int | None = None
    percent: int | None = None
    cap: int | None = None
    sku: str | None = None
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    tiers: frozenset[str] = frozenset()
    active: bool = True

    def available(self, day: dt.date, tier_code: str | None) -> bool:
        return (
            self.active
            and (self.valid_from is None or self.valid_from <= day)
            and (self.valid_to is None or day <= self.valid_to)
            and (not self.tiers or tier_code in self.tiers)
        )


@dataclass(frozen=True)
class AppliedReward:
    reward_id: int
    name: str
    points: int
    discount: int


def apply_rewards(
    lines: Sequence[Line], rewards: Sequence[RewardOffer], programme: Programme
) -> tuple[list[Line], list[AppliedReward]]:
    """Take each reward's discount off the basket. Excluded categories are never discounted and a
    reward never takes the total below zero: it is capped at what is left to pay."""
    lines = list(lines)
    applied = []
    for i, reward in enumerate(rewards):
        eligible = [j for j, ln in enumerate(lines) if programme.earns(ln.category) and ln.paid > 0]
        remaining = sum(lines[j].paid for j in eligible)
        if reward.kind == "free_item":
            matches = [j for j in eligible if lines[j].sku == reward.sku]
            if not matches:
                raise InvalidInput(f"the reward {reward.name!r} needs {reward.sku} in the basket", field=f"rewards.{i}")
            j = matches[0]
            one_unit = lines[j].unit_price if lines[j].quantity_milli >= MILLI else lines[j].gross
            discount = min(one_unit, lines[j].paid)
            lines[j] = replace(lines[j], reward_discount=lines[j].reward_discount + discount)
        else:
            if reward.kind == "amount_off":
                wanted = reward.amount or 0
            else:
                wanted = remaining * (reward.percent or 0) // 100
                if reward.cap is not None:
                    wanted = min(wanted, reward.cap)
            discount = min(wanted, remaining)
            shares = split_proportionally(discount, [lines[j].paid for j in eligible])
            for j, share in zip(eligible, shares):
                lines[j] = replace(lines[j], reward_discount=lines[j].reward_discount + share)
        applied.append(AppliedReward(reward.id, reward.name, reward.points_cost, discount))
    return lines, applied


# -- earning ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bonus:
    cause: str  # welcome | birthday | promotion
    points: int
    reason: str


@dataclass(frozen=True)
class Earning:
    lines: list[Line]  # with each line's share of the floored points
    base: int
    promotion: int
    tier: int
    bonuses: tuple[Bonus, ...] = ()
    eligible_spend: int = 0

    @property
    def line_points(self) -> int:
        return self.base + self.promotion + self.tier

    @property
    def total(self) -> int:
        return self.line_points + sum(b.points for b in self.bonuses)


def visit_bonuses(programme: Programme, *, welcome_due: bool, birthday_due: bool) -> list[Bonus]:
    """The welcome and birthday bonuses a visit earns, as the programme sets them."""
    bonuses = []
    if welcome_due and programme.welcome_bonus:
        bonuses.append(Bonus("welcome", programme.welcome_bonus, "Welcome bonus"))
    if birthday_due and programme.birthday_bonus:
        bonuses.append(Bonus("birthday", programme.birthday_bonus, "Birthday bonus"))
    return bonuses


def best_promotion_multiplier(promotions: Sequence[Promotion], day: dt.date, line: Line) -> Fraction:
    """Promotion multipliers do not stack: the best one running today for this line applies."""
    best = Fraction(1)
    for promo in promotions:
        if promo.runs_on(day) and promo.covers(line.sku, line.category) and promo.multiplier > best:
            best = promo.multiplier
    return best


def promotion_bonuses(
    lines: Sequence[Line], programme: Programme, day: dt.date, returned_milli: Mapping[int, int] | None = None
) -> list[Bonus]:
    """Fixed bonuses of promotions running on ``day`` whose minimum eligible spend the basket reaches.

    With ``returned_milli`` (line_no -> quantity returned so far) only what the customer kept counts,
    so a return that takes the sale below a promotion's minimum spend loses its bonus.
    """
    returned_milli = returned_milli or {}
    bonuses = []
    for promo in programme.promotions:
        if not promo.bonus_points or not promo.runs_on(day):
            continue
        spend = sum(
            kept_spend(ln, returned_milli.get(ln.line_no, 0))
            for ln in lines
            if programme.earns(ln.category) and promo.covers(ln.sku, ln.category)
        )
        if spend > 0 and spend >= promo.min_spend:
            bonuses.append(Bonus("promotion", promo.bonus_points, promo.name))
    return bonuses


def compute_earning(
    lines: Sequence[Line],
    programme: Programme,
    *,
    tier: Tier,
    day: dt.date,
    extra_bonuses: Sequence[Bonus] = (),
) -> Earning:
    """The points a paid basket earns, split into base, promotion and tier parts.

    ``day`` is the shop's local date of the sale (promotions are dated in the shop's time).
    Each part is the difference of floors of running sums, so the parts add up to one floor of
    the whole and no line or part is rounded on its own.
    """
    rate = Fraction(programme.points_per_unit, programme.unit_minor)
    base_exact, promo_exact, tier_exact = [], [], []
    eligible_spend = 0
    for line in lines:
        if not programme.earns(line.category) or line.paid <= 0:
            base_exact.append(Fraction(0))
            promo_exact.append(Fraction(0))
            tier_exact.append(Fraction(0))
            continue
        eligible_spend += line.paid
        b = line.paid * rate * programme.product_multiplier(line.sku, line.category)
        p = b * best_promotion_multiplier(programme.promotions, day, line)
        base_exact.append(b)
        promo_exact.append(p)
        tier_exact.append(p * tier.multiplier)
    base = math.floor(sum(base_exact))
    with_promo = math.floor(sum(promo_exact))
    total = math.floor(sum(tier_exact))
    shares = split_proportionally(total, tier_exact)
    paid_lines = [replace(line, points=share) for line, share in zip(lines, shares)]
    bonuses = tuple(promotion_bonuses(lines, programme, day)) + tuple(extra_bonuses)
    return Earning(
        lines=paid_lines,
        base=base,
        promotion=with_promo - base,
        tier=total - with_promo,
        bonuses=bonuses,
        eligible_spend=eligible_spend,
    )


# -- returns ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReturnedLine:
    original: Line
    quantity_milli: int
    paid: int  # the part of what was paid for the line that this return covers
    points: int  # the part of the line's points this return reverses
    eligible: bool


def share_of(amount: int, part_before: int, part_after: int, whole: int) -> int:
    """The piece of ``amount`` that goes with raising a returned quantity from before to after.

    Cumulative floors: returning a line in any number of pieces gives back exactly ``amount``.
    """
    return amount * part_after // whole - amount * part_before // whole


def return_lines(
    original: Sequence[Line],
    already_returned: dict[int, int],
    requested: Sequence[tuple[str, int]],
    programme: Programme,
) -> list[ReturnedLine]:
    """Match (sku, quantity) requests to the sale's lines, oldest line first, and price them.

    ``already_returned`` maps line_no to quantity_milli returned before. Returning more than
    was bought is refused.
    """
    returned = dict(already_returned)
    result: list[ReturnedLine] = []
    for i, (sku, qty) in enumerate(requested):
        if qty <= 0:
            raise InvalidInput("the quantity must be above zero", field=f"lines.{i}.quantity")
        candidates = [ln for ln in original if ln.sku == sku]
        if not candidates:
            raise InvalidInput(f"{sku} was not bought in this transaction", field=f"lines.{i}.sku")
        bought = sum(ln.quantity_milli for ln in candidates)
        already = sum(returned.get(ln.line_no, 0) for ln in candidates)
        left = qty
        for line in candidates:
            if left == 0:
                break
            before = returned.get(line.line_no, 0)
            take = min(left, line.quantity_milli - before)
            if take <= 0:
                continue
            after = before + take
            result.append(
                ReturnedLine(
                    original=line,
                    quantity_milli=take,
                    paid=share_of(line.paid, before, after, line.quantity_milli),
                    points=share_of(line.points, before, after, line.quantity_milli),
                    eligible=programme.earns(line.category),
                )
            )
            returned[line.line_no] = after
            left -= take
        if left:
            raise InvalidInput(
                f"cannot return more {sku} than was bought ({format_quantity(bought)} bought, {format_quantity(already)} already returned)",
                field=f"lines.{i}.quantity",
            )
    return result


def format_quantity(milli: int) -> str:
    """``1500`` -> ``"1.5"``, ``2000`` -> ``"2"``: a quantity as the till writes it."""
    whole, frac = divmod(milli, MILLI)
    return str(whole) if not frac else f"{whole}.{frac:03d}".rstrip("0")


def kept_spend(line: Line, returned_milli: int) -> int:
    """What is still paid for a line once ``returned_milli`` of it came back: what was paid, less
    the refunds (the same cumulative shares the returns gave back)."""
    return line.paid - share_of(line.paid, 0, returned_milli, line.quantity_milli)
