"""Points are the same to the last point as the exact-fraction rules.

``compute_earning`` and ``split_proportionally`` work in integers for speed. The rules they must
keep are the plain ``Fraction`` versions below, copied from the implementation they replaced:
every line's exact points as a fraction, one floor per part for the whole sale, and each line's
share fixed by the largest remainder. For any programme, basket and day, the integer versions
must give exactly the same base, promotion and tier points, line shares, eligible spend and bonuses.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace
from fractions import Fraction
from typing import Sequence

from hypothesis import example, given, settings
from hypothesis import strategies as st

from pos_loyalty.demo import CATALOGUE, DEPOSIT, programme_settings
from pos_loyalty.domain.earning import (
    MILLI,
    Bonus,
    Earning,
    Line,
    compute_earning,
    promotion_bonuses,
    split_proportionally,
)
from pos_loyalty.domain.programme import Programme, Promotion, Tier

DAY = dt.date(2026, 6, 15)  # a Monday

# -- the exact-fraction rules, as they were -------------------------------------------------------


def reference_split_proportionally(total: int, weights: Sequence[int | Fraction]) -> list[int]:
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


def reference_best_promotion_multiplier(promotions: Sequence[Promotion], day: dt.date, line: Line) -> Fraction:
    best = Fraction(1)
    for promo in promotions:
        if promo.runs_on(day) and promo.covers(line.sku, line.category) and promo.multiplier > best:
            best = promo.multiplier
    return best


def reference_compute_earning(
    lines: Sequence[Line],
    programme: Programme,
    *,
    tier: Tier,
    day: dt.date,
    extra_bonuses: Sequence[Bonus] = (),
) -> Earning:
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
        p = b * reference_best_promotion_multiplier(programme.promotions, day, line)
        base_exact.append(b)
        promo_exact.append(p)
        tier_exact.append(p * tier.multiplier)
    base = math.floor(sum(base_exact))
    with_promo = math.floor(sum(promo_exact))
    total = math.floor(sum(tier_exact))
    shares = reference_split_proportionally(total, tier_exact)
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


def assert_same_points(lines, programme, tier, day, extra_bonuses=()) -> Earning:
    got = compute_earning(lines, programme, tier=tier, day=day, extra_bonuses=extra_bonuses)
    want = reference_compute_earning(lines, programme, tier=tier, day=day, extra_bonuses=extra_bonuses)
    assert (got.base, got.promotion, got.tier) == (want.base, want.promotion, want.tier)
    assert [ln.points for ln in got.lines] == [ln.points for ln in want.lines]
    assert got.lines == want.lines  # nothing else about a line changes
    assert got.eligible_spend == want.eligible_spend
    assert got.bonuses == want.bonuses
    assert got == want
    assert all(type(n) is int for n in (got.base, got.promotion, got.tier, got.eligible_spend))
    assert all(type(ln.points) is int for ln in got.lines)
    return got


# -- sharing a whole number out --------------------------------------------------------------------

weights = st.one_of(
    st.integers(-10**6, 10**6),
    st.integers(0, 1000),
    st.just(0),
    st.just(Fraction(0)),
    st.fractions(min_value=-100, max_value=100, max_denominator=10_000),
    st.fractions(min_value=0, max_value=10**6, max_denominator=10**9),
)


@settings(max_examples=500, deadline=None)
@given(st.integers(-10**9, 10**9), st.lists(weights, max_size=12))
@example(1, [1, 1, 1])
@example(2, [Fraction(1, 3), Fraction(1, 3), Fraction(1, 3)])
@example(7, [Fraction(1, 2), 1, Fraction(3, 4), 0])
@example(-1, [1, 1])
@example(-5, [2, 3, 3])
@example(5, [1, -1])
@example(5, [3, -1, 1])
@example(4, [-1, -2, -2])
@example(0, [])
def test_a_total_is_shared_out_exactly_as_by_the_fraction_rule(total, weights):
    parts = split_proportionally(total, weights)
    assert parts == reference_split_proportionally(total, weights)
    assert all(type(p) is int for p in parts)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**12), st.lists(st.integers(0, 10**30), min_size=1, max_size=12))
def test_huge_weights_are_shared_out_exactly_as_by_the_fraction_rule(total, weights):
    assert split_proportionally(total, weights) == reference_split_proportionally(total, weights)


# -- the points of a basket, on any programme ---------------------------------------------------------

SKUS = ["COF", "TEA", "BAN", "CIG", "SOUR", "EGGS"]
CATEGORIES = ["drinks", "fruit", "tobacco", "organic", "deli"]

four_decimals = st.integers(0, 100 * 10_000).map(lambda n: Fraction(n, 10_000))
usual = st.sampled_from([Fraction(1), Fraction(1, 2), Fraction(5, 4), Fraction(3, 2), Fraction(2), Fraction(3), Fraction(3333, 10_000)])
any_fraction = st.fractions(min_value=0, max_value=100, max_denominator=10**6)
multipliers = st.one_of(usual, four_decimals, any_fraction)
at_least_one = st.one_of(usual.filter(lambda m: m >= 1), st.integers(10_000, 100 * 10_000).map(lambda n: Fraction(n, 10_000)))


@st.composite
def promotions(draw):
    starts = DAY + dt.timedelta(days=draw(st.integers(-10, 10)))
    return Promotion(
        name=draw(st.sampled_from(["Double", "Triple", "Weekend", "Cheese week"])),
        starts_on=starts,
        ends_on=starts + dt.timedelta(days=draw(st.integers(0, 10))),
        weekdays=draw(st.frozensets(st.integers(0, 6), max_size=3)),
        multiplier=draw(st.one_of(at_least_one, multipliers)),
        bonus_points=draw(st.sampled_from([0, 0, 25, 50, 500])),
        min_spend=draw(st.integers(0, 5_000)),
        categories=draw(st.frozensets(st.sampled_from(CATEGORIES), max_size=2)),
        skus=draw(st.frozensets(st.sampled_from(SKUS), max_size=2)),
    )


@st.composite
def programmes(draw):
    return Programme(
        points_per_unit=draw(st.one_of(st.just(1), st.integers(0, 20), st.integers(0, 10_000))),
        unit_minor=draw(st.one_of(st.just(100), st.integers(1, 1000), st.integers(1, 10**7))),
        excluded_categories=draw(st.frozensets(st.sampled_from(CATEGORIES + ["deposits"]), max_size=3)),
        category_multipliers=draw(st.dictionaries(st.sampled_from(CATEGORIES), multipliers, max_size=4)),
        sku_multipliers=draw(st.dictionaries(st.sampled_from(SKUS), multipliers, max_size=3)),
        promotions=tuple(draw(st.lists(promotions(), max_size=4))),
    )


@st.composite
def lines_of(draw, items):
    """Numbered lines from (sku, category, unit_price, quantity_milli) items, with discounts,
    reward discounts, and lines paid down to nothing."""
    lines = []
    for i, (sku, category, price, quantity) in enumerate(items, start=1):
        line = Line(i, sku, sku, category, quantity, price)
        discount = draw(st.one_of(st.just(0), st.integers(0, line.gross)))
        net = line.gross - discount
        reward = draw(st.one_of(st.just(0), st.just(net), st.integers(0, net)))
        lines.append(replace(line, line_discount=discount, reward_discount=reward))
    return lines


quantities = st.one_of(st.integers(1, 12).map(lambda n: n * MILLI), st.integers(1, 20 * MILLI))
items = st.tuples(st.sampled_from(SKUS), st.sampled_from(CATEGORIES + [None]), st.integers(0, 100_000), quantities)
baskets = st.lists(items, min_size=1, max_size=12).flatmap(lines_of)
extra_bonuses = st.lists(
    st.sampled_from([Bonus("welcome", 50, "Welcome bonus"), Bonus("birthday", 100, "Birthday bonus")]), max_size=2
)


@settings(max_examples=300, deadline=None)
@given(
    baskets,
    programmes(),
    st.one_of(at_least_one, multipliers),
    st.integers(-7, 21).map(lambda d: DAY + dt.timedelta(days=d)),
    extra_bonuses,
)
def test_every_basket_earns_the_same_points_as_by_the_fraction_rules(lines, programme, tier_multiplier, day, bonuses):
    assert_same_points(lines, programme, Tier("t", "T", 0, tier_multiplier), day, bonuses)


# -- the demo shop, as its manager set it up -------------------------------------------------------

DEMO_TODAY = dt.date(2026, 6, 13)
DEMO = Programme.from_dict(programme_settings(DEMO_TODAY, with_promotions=True))


@st.composite
def demo_baskets(draw):
    products = draw(st.lists(st.sampled_from(CATALOGUE + (DEPOSIT,)), min_size=1, max_size=12))
    items = []
    for p in products:
        if p.weighed:
            quantity = draw(st.integers(*p.weighed))  # grams are thousandths of a kilo
        else:
            quantity = draw(st.integers(1, 6)) * MILLI
        items.append((p.sku, p.category, p.unit_price, quantity))
    return draw(lines_of(items))


@settings(max_examples=300, deadline=None)
@given(
    demo_baskets(),
    st.sampled_from(DEMO.tiers),
    st.integers(-200, 200).map(lambda d: DEMO_TODAY + dt.timedelta(days=d)),
)
def test_demo_shop_checkouts_earn_the_same_points_to_the_last_point(lines, tier, day):
    assert_same_points(lines, DEMO, tier, day)


def test_a_ten_line_saturday_basket_for_a_silver_member():
    """Coffee Saturdays (x2 on coffee), organic x2, household x0.5, sourdough x3, Silver x1.25,
    a deposit that earns nothing and a weighed cheese that brings the Cheese week bonus."""
    items = [
        ("BAK-SOUR", "bakery", 420, 1000), ("BAK-ROLL", "bakery", 45, 4000), ("DAI-MILK", "dairy", 129, 2000),
        ("ORG-EGGS", "organic", 349, 1000), ("PRO-APPL", "produce", 299, 1234), ("DEL-GOUD", "deli", 2290, 715),
        ("COF-BEAN", "coffee", 1190, 1000), ("DRK-WATR", "drinks", 89, 6000), ("HOU-PAPR", "household", 349, 1000),
        ("DEP-BOTL", "deposits", 25, 6000),
    ]
    lines = [Line(i, s, s, c, q, p, line_discount=10 if i == 3 else 0) for i, (s, c, p, q) in enumerate(items, 1)]
    earning = assert_same_points(lines, DEMO, DEMO.tier_by_code("silver"), DEMO_TODAY)
    assert earning.line_points == sum(ln.points for ln in earning.lines)
    assert earning.lines[-1].points == 0  # the deposit
    assert [b.reason for b in earning.bonuses] == ["Cheese counter week"]


def test_a_line_with_its_points_keeps_every_other_field():
    """``Line.with_points`` lists the fields by position: a field added to ``Line`` must be added there."""
    import dataclasses

    line = Line(7, "SKU", "Cheese", "dairy", 1_250, 399, 20, 15, 3)
    assert line.with_points(42) == dataclasses.replace(line, points=42)
    assert [f.name for f in dataclasses.fields(Line)][-1] == "points"
