"""The earning rules on their own: no database, no till, just the arithmetic the receipt explains."""
from __future__ import annotations

import datetime as dt
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pos_loyalty.domain.earning import (
    MILLI,
    Bonus,
    Line,
    RewardOffer,
    apply_rewards,
    compute_earning,
    kept_spend,
    promotion_bonuses,
    return_lines,
    split_proportionally,
)
from pos_loyalty.domain.errors import InvalidInput
from pos_loyalty.domain.programme import Programme, Promotion, Tier

DAY = dt.date(2026, 6, 15)  # a Monday
MEMBER = Tier("member", "Member", 0)
GOLD = Tier("gold", "Gold", 10_000, Fraction(3, 2))
SHOP = Programme()


def basket(*items: tuple) -> list[Line]:
    """(sku, unit_price, quantity_milli[, category]) -> numbered lines."""
    return [Line(i, it[0], it[0], it[3] if len(it) > 3 else "drinks", it[2], it[1]) for i, it in enumerate(items, start=1)]


def earned(lines, programme=SHOP, tier=MEMBER, day=DAY):
    return compute_earning(lines, programme, tier=tier, day=day)


# -- sharing a whole number out ------------------------------------------------------------------


def test_split_proportionally_gives_ties_to_the_earlier_line():
    assert split_proportionally(1, [1, 1, 1]) == [1, 0, 0]
    assert split_proportionally(2, [1, 1, 1]) == [1, 1, 0]
    assert split_proportionally(10, [1, 2, 3, 4]) == [1, 2, 3, 4]
    assert split_proportionally(5, [0, 0]) == [0, 0]
    assert split_proportionally(0, [3, 4]) == [0, 0]


@given(st.integers(0, 10**9), st.lists(st.integers(0, 10**6), min_size=1, max_size=12))
def test_split_proportionally_adds_up_exactly_and_never_strays_a_whole_unit(total, weights):
    parts = split_proportionally(total, weights)
    if sum(weights) == 0:
        assert parts == [0] * len(weights)
        return
    assert sum(parts) == total
    for part, weight in zip(parts, weights):
        exact = Fraction(total * weight, sum(weights))
        assert exact - 1 < part < exact + 1
    assert split_proportionally(total, weights) == parts


# -- weighed goods ---------------------------------------------------------------------------------


def test_weighed_goods_are_priced_rounding_half_up_to_the_cent():
    assert Line(1, "BAN", "Bananas", "fruit", 755, 199).gross == 150  # 150.245
    assert Line(1, "BAN", "Bananas", "fruit", 1510, 199).gross == 300  # 300.49
    assert Line(1, "CHS", "Cheese", "deli", 500, 1001).gross == 501  # 500.5 rounds up
    assert Line(1, "CHS", "Cheese", "deli", 250, 1002).gross == 251  # 250.5 rounds up
    assert Line(1, "CHS", "Cheese", "deli", 250, 1001, line_discount=1).paid == 249


# -- the points of a basket --------------------------------------------------------------------------


def test_points_are_floored_once_for_the_whole_sale_not_line_by_line():
    result = earned(basket(("A", 50, MILLI), ("B", 50, MILLI), ("C", 50, MILLI)))
    assert result.total == 1  # 1.50 paid: one point, not three times nothing
    assert [ln.points for ln in result.lines] == [1, 0, 0]


def test_excluded_categories_and_free_lines_earn_nothing():
    result = earned(basket(("CIG", 800, MILLI, "tobacco"), ("COF", 300, MILLI), ("GIFT", 0, MILLI)))
    assert result.total == 3
    assert [ln.points for ln in result.lines] == [0, 3, 0]
    assert result.eligible_spend == 300


def test_excluded_goods_earn_nothing_however_the_till_spells_their_category():
    result = earned(basket(("CIG", 800, MILLI, "Tobacco"), ("CIG2", 800, MILLI, " tobacco "), ("LOT", 200, MILLI, "LOTTERY"), ("COF", 300, MILLI)))
    assert [ln.points for ln in result.lines] == [0, 0, 0, 3]
    assert result.eligible_spend == 300
    assert [ln.category for ln in result.lines] == ["Tobacco", " tobacco ", "LOTTERY", "drinks"]  # the line keeps what was sent
    assert not SHOP.earns("TOBACCO") and not SHOP.earns("Gift-Cards\t") and SHOP.earns("drinks") and SHOP.earns(None)


def test_multipliers_and_promotions_match_categories_and_skus_whatever_their_case():
    programme = Programme(
        category_multipliers={"Organic": Fraction(2)},
        sku_multipliers={"bak-sour": Fraction(3)},
        promotions=(Promotion("Wine week", DAY, DAY, bonus_points=50, categories=frozenset({"Wine"}), skus=frozenset({"cof"})),),
    )
    assert programme.product_multiplier("APL", " organic") == 2
    assert programme.product_multiplier("BAK-SOUR ", "bakery") == 3
    assert programme.product_multiplier("APL", "fruit") == 1
    assert programme.promotions[0].covers("RED", "WINE") and programme.promotions[0].covers("COF", None)
    assert not programme.promotions[0].covers("TEA", "drinks")
    result = earned(basket(("APL", 100, MILLI, "ORGANIC"), ("BAK-Sour", 100, MILLI, "bakery")), programme)
    assert [ln.points for ln in result.lines] == [2, 3]


def test_a_programme_naming_one_category_twice_in_different_case_is_refused_but_a_stored_one_still_loads():
    ambiguous = {**Programme().to_dict(), "category_multipliers": {"Wine": "2", "wine ": "3"}}
    with pytest.raises(InvalidInput) as refused:
        Programme.from_dict(ambiguous)
    assert refused.value.field == "category_multipliers"
    assert "'Wine' and 'wine' are the same name" in refused.value.message
    with pytest.raises(InvalidInput) as refused:
        Programme.from_dict({**Programme().to_dict(), "sku_multipliers": {"COF": "2", "cof": "2"}})
    assert refused.value.field == "sku_multipliers"
    assert Programme.from_dict(ambiguous, version_id=7, stored=True).version_id == 7  # saved before the rule: sales under it can still be returned


def test_the_best_running_promotion_applies_and_the_tier_multiplies_on_top():
    programme = Programme(
        promotions=(
            Promotion("Double Monday", DAY, DAY, multiplier=Fraction(2)),
            Promotion("Triple coffee", DAY, DAY, multiplier=Fraction(3), skus=frozenset({"COF"})),
            Promotion("Next week", DAY + dt.timedelta(days=7), DAY + dt.timedelta(days=7), multiplier=Fraction(10)),
        )
    )
    result = earned(basket(("COF", 100, MILLI), ("BRD", 100, MILLI, "bakery")), programme, tier=GOLD)
    assert (result.base, result.promotion, result.tier) == (2, 3, 2)  # 2 -> 3 + 2 = 5 -> 7.5
    assert result.total == 7


def test_a_promotion_bonus_counts_only_the_eligible_spend_it_covers():
    programme = Programme(promotions=(Promotion("Wine week", DAY, DAY, bonus_points=50, min_spend=2000, categories=frozenset({"wine"})),))
    small = basket(("RED", 1500, MILLI, "wine"), ("COF", 1000, MILLI))
    assert promotion_bonuses(small, programme, DAY) == []
    big = basket(("RED", 1500, MILLI, "wine"), ("WHT", 500, MILLI, "wine"))
    assert promotion_bonuses(big, programme, DAY) == [Bonus("promotion", 50, "Wine week")]
    assert promotion_bonuses(big, programme, DAY + dt.timedelta(days=1)) == []
    assert earned(big, programme).total == 20 + 50


def test_what_is_kept_after_returns_decides_whether_the_promotion_bonus_stays():
    programme = Programme(promotions=(Promotion("Spend 20", DAY, DAY, bonus_points=50, min_spend=2000),))
    sale = basket(("WINE", 1500, MILLI), ("COF", 250, 3 * MILLI))
    assert promotion_bonuses(sale, programme, DAY, {2: MILLI}) == [Bonus("promotion", 50, "Spend 20")]  # 20.00 kept
    assert promotion_bonuses(sale, programme, DAY, {2: 2 * MILLI}) == []  # 17.50 kept
    assert kept_spend(sale[1], 0) == 750
    assert kept_spend(sale[1], MILLI) + kept_spend(sale[1], 2 * MILLI) + kept_spend(sale[1], 3 * MILLI) == 500 + 250 + 0


money = st.integers(0, 100_000)
quantities = st.integers(1, 20 * MILLI)
multipliers = st.fractions(min_value=0, max_value=100, max_denominator=10_000)
at_least_one = st.fractions(min_value=1, max_value=100, max_denominator=10_000)
categories = st.sampled_from(["drinks", "fruit", "tobacco", None])


@st.composite
def baskets(draw):
    items = draw(st.lists(st.tuples(st.sampled_from(["COF", "TEA", "BAN", "CIG"]), money, quantities, categories), min_size=1, max_size=8))
    lines = []
    for i, (sku, price, qty, category) in enumerate(items, start=1):
        gross = (price * qty + MILLI // 2) // MILLI
        lines.append(Line(i, sku, sku, category, qty, price, draw(st.integers(0, gross))))
    return lines


@st.composite
def programmes(draw):
    return Programme(
        points_per_unit=draw(st.integers(0, 20)),
        unit_minor=draw(st.integers(1, 1000)),
        category_multipliers={"fruit": draw(multipliers)},
        sku_multipliers={"COF": draw(multipliers)},
        promotions=(Promotion("Promo", DAY, DAY, multiplier=draw(at_least_one), categories=frozenset({"drinks"})),),
    )


@settings(max_examples=100, deadline=None)
@given(baskets(), programmes(), at_least_one)
def test_base_promotion_and_tier_parts_always_add_up_to_the_points_of_the_lines(lines, programme, tier_multiplier):
    result = earned(lines, programme, tier=Tier("t", "T", 0, tier_multiplier))
    assert result.base >= 0 and result.promotion >= 0 and result.tier >= 0
    assert result.base + result.promotion + result.tier == result.line_points == sum(ln.points for ln in result.lines)
    assert all(ln.points == 0 for ln in result.lines if not programme.earns(ln.category) or ln.paid == 0)
    exact = sum(
        ln.paid * Fraction(programme.points_per_unit, programme.unit_minor) * programme.product_multiplier(ln.sku, ln.category)
        * (programme.promotions[0].multiplier if ln.category == "drinks" else 1) * tier_multiplier
        for ln in lines
        if programme.earns(ln.category)
    )
    assert result.line_points == int(exact)  # one floor of the exact whole


# -- rewards -----------------------------------------------------------------------------------------


def offer(kind: str, **fields) -> RewardOffer:
    return RewardOffer(id=1, name=fields.pop("name", kind), kind=kind, points_cost=10, **fields)


def test_a_free_item_needs_its_product_in_the_basket():
    with pytest.raises(InvalidInput) as refused:
        apply_rewards(basket(("TEA", 200, MILLI)), [offer("free_item", sku="COF", name="Free coffee")], SHOP)
    assert refused.value.field == "rewards.0"
    assert refused.value.status == 422
    lines, applied = apply_rewards(basket(("COF", 250, 2 * MILLI)), [offer("free_item", sku="COF")], SHOP)
    assert applied[0].discount == 250 and lines[0].paid == 250


def test_a_reward_never_discounts_an_excluded_category():
    lines, applied = apply_rewards(basket(("CIG", 800, MILLI, "tobacco"), ("COF", 300, MILLI)), [offer("amount_off", amount=2000)], SHOP)
    assert [ln.reward_discount for ln in lines] == [0, 300]
    assert applied[0].discount == 300
    with pytest.raises(InvalidInput):
        apply_rewards(basket(("CIG", 800, MILLI, "tobacco")), [offer("free_item", sku="CIG")], SHOP)


def test_percent_off_is_capped_and_shared_over_the_lines():
    lines, applied = apply_rewards(basket(("TV", 50_000, MILLI, "tv"), ("COF", 300, MILLI)), [offer("percent_off", percent=10, cap=150)], SHOP)
    assert applied[0].discount == 150
    assert sum(ln.reward_discount for ln in lines) == 150


reward_offers = st.one_of(
    st.builds(lambda a: offer("amount_off", amount=a), st.integers(0, 200_000)),
    st.builds(lambda p, c: offer("percent_off", percent=p, cap=c), st.integers(0, 100), st.none() | st.integers(0, 50_000)),
)


@settings(max_examples=100, deadline=None)
@given(baskets(), st.lists(reward_offers, max_size=4))
def test_rewards_never_leave_a_line_below_zero_nor_touch_excluded_lines_nor_cost_points_for_nothing(lines, offers):
    try:
        discounted, applied = apply_rewards(lines, offers, SHOP)
    except InvalidInput as refused:  # the first reward that would take nothing off, and only it
        first = int(refused.field.removeprefix("rewards."))
        assert "would take nothing off" in refused.message
        _, before = apply_rewards(lines, offers[:first], SHOP)
        assert all(a.discount > 0 for a in before)
        return
    assert all(ln.paid >= 0 for ln in discounted)
    assert all(ln.reward_discount == 0 for ln in discounted if not SHOP.earns(ln.category))
    assert sum(ln.reward_discount for ln in discounted) == sum(a.discount for a in applied)
    assert all(a.discount > 0 for a in applied)


def test_a_reward_that_would_take_nothing_off_is_refused_rather_than_charged():
    everything = offer("percent_off", percent=100, name="Everything free")
    lines, applied = apply_rewards(basket(("COF", 300, MILLI)), [everything], SHOP)
    assert applied[0].discount == 300 and lines[0].paid == 0
    with pytest.raises(InvalidInput) as refused:
        apply_rewards(basket(("COF", 300, MILLI)), [everything, everything], SHOP)  # the second has nothing left to take
    assert refused.value.field == "rewards.1"
    assert refused.value.message == (
        "the reward 'Everything free' would take nothing off this basket (nothing it applies to is left to pay), "
        "so it would cost 10 points for nothing"
    )
    for basket_, reward in (
        (basket(("CIG", 800, MILLI, "tobacco")), offer("amount_off", amount=500)),  # only excluded goods
        (basket(("GUM", 5, MILLI)), offer("percent_off", percent=10)),  # 10% of 5 cents is 0
        (basket(("COF", 0, MILLI)), offer("free_item", sku="COF")),  # a free item priced at nothing
    ):
        with pytest.raises(InvalidInput) as refused:
            apply_rewards(basket_, [reward], SHOP)
        assert refused.value.field == "rewards.0"


def test_a_free_item_matches_its_product_whatever_the_case_of_its_sku():
    lines, applied = apply_rewards(basket(("cof", 250, MILLI)), [offer("free_item", sku="COF")], SHOP)
    assert applied[0].discount == 250 and lines[0].sku == "cof"


# -- returns -----------------------------------------------------------------------------------------


def test_a_line_returned_in_pieces_gives_back_exactly_its_points_and_what_was_paid():
    sale = earned(basket(("COF", 333, 3 * MILLI), ("TEA", 150, MILLI))).lines
    assert [ln.points for ln in sale] == [10, 1]
    returned: dict[int, int] = {}
    points = paid = 0
    for _ in range(3):
        (piece,) = return_lines(sale, returned, [("COF", MILLI)], SHOP)
        returned[1] = returned.get(1, 0) + piece.quantity_milli
        points += piece.points
        paid += piece.paid
    assert (points, paid) == (10, 999)
    with pytest.raises(InvalidInput) as refused:
        return_lines(sale, returned, [("COF", MILLI)], SHOP)
    assert refused.value.field == "lines.0.quantity"
    assert "3 bought, 3 already returned" in refused.value.message


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 100_000), st.integers(1, 10 * MILLI), st.data())
def test_any_pieces_of_a_line_give_back_exactly_the_whole_line(points, paid, quantity, data):
    line = Line(1, "BAN", "Bananas", "fruit", quantity, paid, points=points)
    assert line.paid == (paid * quantity + MILLI // 2) // MILLI
    returned: dict[int, int] = {}
    total_points = total_paid = 0
    while returned.get(1, 0) < quantity:
        piece = data.draw(st.integers(1, quantity - returned.get(1, 0)))
        (back,) = return_lines([line], returned, [("BAN", piece)], SHOP)
        returned[1] = returned.get(1, 0) + piece
        total_points += back.points
        total_paid += back.paid
        assert kept_spend(line, returned[1]) == line.paid - total_paid
    assert (total_points, total_paid) == (line.points, line.paid)


def test_a_sku_bought_on_two_lines_is_returned_from_the_first_line_first():
    sale = earned(basket(("COF", 250, MILLI), ("TEA", 150, MILLI), ("COF", 250, 2 * MILLI))).lines
    pieces = return_lines(sale, {}, [("COF", 2 * MILLI)], SHOP)
    assert [(p.original.line_no, p.quantity_milli) for p in pieces] == [(1, MILLI), (3, MILLI)]
    with pytest.raises(InvalidInput) as refused:
        return_lines(sale, {}, [("TEA", MILLI), ("COF", 4 * MILLI)], SHOP)
    assert refused.value.field == "lines.1.quantity"
    with pytest.raises(InvalidInput) as refused:
        return_lines(sale, {}, [("MILK", MILLI)], SHOP)
    assert refused.value.field == "lines.0.sku"
