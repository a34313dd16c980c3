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
from .programme import Programme, Promotion, Tier, name_key

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

    def with_points(self, points: int) -> "Line":
        """This line with its points: ``dataclasses.replace`` without its introspection per call."""
        return Line(self.line_no, self.sku, self.description, self.category, self.quantity_milli, self.unit_price,
                    self.line_discount, self.reward_discount, points)

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
    Integers only: Fraction weights are first scaled by the lcm of their denominators to whole
    numbers in the same proportions.
    """
    if isinstance(total, int):
        if all(type(w) is int for w in weights):
            return _largest_remainder(total, weights)
        if all(isinstance(w, (int, Fraction)) for w in weights):
            common = math.lcm(*[w.denominator for w in weights])
            return _largest_remainder(total, [w.numerator * (common // w.denominator) for w in weights])
    return _split_exact(total, weights)


def _largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """``split_proportionally`` for whole-number weights: line i's exact share is ``total*w_i/W``;
    its part is ``total*w_i // W`` and its remainder ``total*w_i % W`` (over a positive ``W``)."""
    weight_sum = sum(weights)
    if total == 0 or weight_sum == 0:
        return [0] * len(weights)
    scaled = total
    if weight_sum < 0:  # total*w/W == (-total)*w/(-W): divide by a positive sum so % is the floor's remainder
        scaled, weight_sum = -total, -weight_sum
    parts, remainders = [], []
    for w in weights:
        part, remainder = divmod(scaled * w, weight_sum)
        parts.append(part)
        remainders.append(remainder)
    left = total - sum(parts)
    if left:
        # largest remainder first; the sort is stable, so equal remainders keep line order
        for i in sorted(range(len(parts)), key=remainders.__getitem__, reverse=True)[:left]:
            parts[i] += 1
    return parts


def _split_exact(total, weights) -> list[int]:
    """Weights (or a total) that are not ``int``/``Fraction``: the same rule in ``Fraction`` arithmetic."""
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
    reward never takes the total below zero: it is capped at what is left to pay.

    A reward that would take nothing off (the same percent-off twice when the first left nothing
    to discount, an amount off a basket already at zero, a free item priced at zero) is refused:
    its points would buy the customer nothing."""
    lines = list(lines)
    applied = []
    for i, reward in enumerate(rewards):
        eligible = [j for j, ln in enumerate(lines) if programme.earns(ln.category) and ln.paid > 0]
        remaining = sum(lines[j].paid for j in eligible)
        if reward.kind == "free_item":
            matches = [j for j in eligible if reward.sku is not None and name_key(lines[j].sku) == name_key(reward.sku)]
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
        if discount <= 0:
            raise InvalidInput(
                f"the reward {reward.name!r} would take nothing off this basket (nothing it applies to is left to pay), "
                f"so it would cost {reward.points_cost} points for nothing",
                field=f"rewards.{i}",
            )
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


WELCOME, BIRTHDAY = "welcome", "birthday"
VISIT_BONUSES = (WELCOME, BIRTHDAY)  # the causes of the bonuses a visit earns, not its basket


def visit_bonuses(programme: Programme, *, welcome_due: bool, birthday_due: bool) -> list[Bonus]:
    """The welcome and birthday bonuses a visit earns, as the programme sets them."""
    bonuses = []
    if welcome_due and programme.welcome_bonus:
        bonuses.append(Bonus(WELCOME, programme.welcome_bonus, "Welcome bonus"))
    if birthday_due and programme.birthday_bonus:
        bonuses.append(Bonus(BIRTHDAY, programme.birthday_bonus, "Birthday bonus"))
    return bonuses


def best_promotion_multiplier(promotions: Sequence[Promotion], day: dt.date, line: Line) -> Fraction:
    """Promotion multipliers do not stack: the best one running today for this line applies."""
    for promo in multiplying_promotions(promotions, day):
        if promo.covers(line.sku, line.category):
            return promo.multiplier
    return Fraction(1)


def multiplying_promotions(promotions: Sequence[Promotion], day: dt.date) -> list[Promotion]:
    """The promotions running on ``day`` that raise the multiplier above 1, best first (a stable
    sort: of equal multipliers the earlier promotion comes first). The first that covers a line is
    its best multiplier."""
    running = [promo for promo in promotions if promo.multiplier > 1 and promo.runs_on(day)]
    if len(running) > 1:
        running.sort(key=lambda promo: promo.multiplier, reverse=True)
    return running


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
    # Integer arithmetic only. Line i's exact parts (Fractions) are
    #   base_i  = paid * points_per_unit / unit_minor * product multiplier = base_num_i / base_den
    #   promo_i = base_i * promotion multiplier                             = promo_num_i / promo_den
    #   tier_i  = promo_i * tier multiplier                                 = tier_num_i / tier_den
    # with one denominator per part for all lines (lcm of the lines' multiplier denominators), so
    # floor(sum of a part) is sum(numerators) // denominator, and the tier numerators are the
    # exact tier parts scaled by one positive number: the same proportions to split by.
    rate_num, rate_den = programme.points_per_unit, programme.unit_minor
    if type(rate_num) is not int or type(rate_den) is not int or rate_den <= 0:
        rate = Fraction(rate_num, rate_den)  # unit_minor 0 raises ZeroDivisionError, as it always did
        rate_num, rate_den = rate.numerator, rate.denominator
    promotions = [
        (promo, promo.multiplier.numerator, promo.multiplier.denominator)
        for promo in multiplying_promotions(programme.promotions, day)
    ]
    earns, product_multiplier = programme.earns, programme.product_multiplier
    earning = []  # (line index, paid * points_per_unit * product numerator, its denominator, promotion num, den)
    eligible_spend = 0
    for i, line in enumerate(lines):
        category = line.category
        if not earns(category):
            continue
        paid = line.paid
        if paid <= 0:
            continue
        eligible_spend += paid
        sku = line.sku
        product = product_multiplier(sku, category)
        multiplier_num = multiplier_den = 1
        for promo, num, den in promotions:  # best first: the first that covers the line applies
            if promo.covers(sku, category):
                multiplier_num, multiplier_den = num, den
                break
        earning.append((i, paid * rate_num * product.numerator, product.denominator, multiplier_num, multiplier_den))
    products_lcm = math.lcm(*{row[2] for row in earning})
    promos_lcm = math.lcm(*{row[4] for row in earning})
    base_den = rate_den * products_lcm
    promo_den = base_den * promos_lcm
    tier_den = promo_den * tier.multiplier.denominator
    tier_num = tier.multiplier.numerator
    base_sum = promo_sum = 0
    tier_nums = [0] * len(lines)
    for i, scaled_paid, product_den, line_promo_num, line_promo_den in earning:
        b = scaled_paid * (products_lcm // product_den)
        p = b * line_promo_num * (promos_lcm // line_promo_den)
        base_sum += b
        promo_sum += p
        tier_nums[i] = p * tier_num
    base = base_sum // base_den
    with_promo = promo_sum // promo_den
    total = sum(tier_nums) // tier_den
    shares = _largest_remainder(total, tier_nums)
    paid_lines = [line.with_points(share) for line, share in zip(lines, shares)]
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
