"""``SaleSchema.load``'s fast path answers exactly what marshmallow answers.

``_sale_fast`` loads the usual sale body in plain Python and answers None when not sure; the
override then leaves the body to marshmallow. For bodies around the valid shape (valid values and
nearly valid ones: wrong types, bools, floats, numbers as odd strings, boundary lengths, unknown
and missing keys, None, NUL characters), whatever the fast path answers must be what marshmallow's
own ``Schema.load`` gives, to the types of the values, and ``SaleSchema().load`` must give the
same result or the same errors as marshmallow's load.
"""
from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from marshmallow import EXCLUDE, INCLUDE, Schema, ValidationError

from pos_loyalty.api.schemas import MAX_MINOR, SaleSchema, _sale_fast

SCHEMA = SaleSchema()


def outcome(load):
    """("ok", result) or ("error", messages)."""
    try:
        return "ok", load()
    except ValidationError as err:
        return "error", err.messages


def assert_same(got, expected, path="body"):
    """Equal, with the same type at every level (1 is not True, nor Decimal(1)), keys in the same
    order, and times with the same offset (equal datetimes may differ in their zone)."""
    assert type(got) is type(expected), f"{path}: {type(got).__name__} != {type(expected).__name__}"
    if isinstance(expected, dict):
        assert list(got) == list(expected), path
        for key in expected:
            assert_same(got[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), path
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_same(g, e, f"{path}.{i}")
    elif isinstance(expected, dt.datetime):
        assert got.replace(tzinfo=None) == expected.replace(tzinfo=None), path
        assert type(got.tzinfo) is type(expected.tzinfo) and got.tzinfo == expected.tzinfo, path
        assert got.utcoffset() == expected.utcoffset(), path
    else:
        assert got == expected, path


# -- bodies around the valid shape -----------------------------------------------------------------


ODD = st.sampled_from([None, True, False, 0, 1, 1.0, 0.5, math.nan, math.inf, "", [], {}, b"abc", ["x"], {"a": 1}])
TEXT = st.text(alphabet=st.sampled_from("aZ09 -_.:é\n\t\x00\u0661"), max_size=8)
OFFSETS = st.timedeltas(min_value=dt.timedelta(hours=-23, minutes=-59), max_value=dt.timedelta(hours=23, minutes=59))
AWARE = st.builds(lambda d, off: d.replace(tzinfo=dt.timezone(off)), st.datetimes(), OFFSETS)
UNKNOWN = st.sampled_from(["foo", "SKU", "lines ", "quantity_milli", "x\x00"])


def bodies(odds: int) -> st.SearchStrategy:
    """Sale bodies whose every value is valid but one time in ``odds``; a body has some forty
    values, so that rare odds give mostly valid bodies, and frequent ones nearly valid bodies."""

    def rarely() -> st.SearchStrategy:  # odds // 3: Hypothesis favours the ends of a range, not it
        return st.integers(0, odds - 1).map(lambda k: k == odds // 3)

    def mostly(valid: st.SearchStrategy, nearly: st.SearchStrategy) -> st.SearchStrategy:
        return rarely().flatmap(lambda odd: nearly if odd else valid)

    def text(lo: int, hi: int) -> st.SearchStrategy:
        valid = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=max(lo, 1), max_size=min(hi, 20))
        edges = st.sampled_from(sorted({0, 1, lo, max(lo - 1, 0), hi, hi + 1})).map(lambda n: "x" * n)
        return mostly(valid, st.one_of(edges, TEXT, ODD, valid.map(lambda s: s + "\x00")))

    @st.composite
    def near(draw, required: dict, optional: dict) -> dict:
        """A dict of these fields, now and then without one of them or with a key too many."""
        body = draw(st.fixed_dictionaries(required, optional=optional))
        if draw(rarely()) and body:
            del body[draw(st.sampled_from(sorted(body)))]
        if draw(rarely()):
            body[draw(UNKNOWN)] = draw(st.one_of(TEXT, ODD))
        return body

    ids = mostly(
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,20}", fullmatch=True),
        st.one_of(st.sampled_from(["a" * 64, "a" * 65, "a" * 64 + "\n", "-a", "a b", "ab\n", "ab\x00", "é", ""]), TEXT, ODD),
    )
    currencies = mostly(st.sampled_from(["EUR", "CHF", "GBP"]),
                        st.one_of(st.sampled_from(["eur", "EURO", "EU", "EUR\n", " EUR", "EU\x00", "ÉUR"]), TEXT, ODD))
    times = mostly(
        st.one_of(AWARE.map(dt.datetime.isoformat), AWARE.map(lambda d: d.isoformat(sep=" ", timespec="seconds")),
                  st.sampled_from(["2026-06-15T10:00:00Z", "2026-06-15T10:00:00+00:00", "2026-06-15T10:00:00.123456+02:00"])),
        st.one_of(st.datetimes().map(dt.datetime.isoformat),  # naive: refused
                  st.sampled_from(["2026-06-15", "2026-06-15T10:00:00+02:00\x00", "2026-06-15T25:00:00Z", "yesterday", "x" * 101]),
                  TEXT, ODD),
    )
    quantities = mostly(
        st.one_of(st.integers(1, 5), st.sampled_from(["1", "2", "0.5", "0.25", "1.125", "12", "0.001", "1000000", "1000000.000"])),
        st.one_of(
            st.integers(-2, 3), st.sampled_from([10**6, 10**6 + 1, 10**9, 2**63]),
            st.from_regex(r"[+\- ]?[0-9]{0,8}(\.[0-9]{0,5})?([eE][+-]?[0-9]{1,2})?[ \n]?", fullmatch=True),
            st.sampled_from(["1_000", "\u0661", "NaN", "Infinity", "-0", "0", "0.000", "0.0001", "1000000.001",
                             "0000001", "00000001", "1.", ".5", "1\x00", "1\n"]),
            st.floats(allow_nan=True, allow_infinity=True), ODD,
        ),
    )
    money = mostly(
        st.integers(0, 10**6),
        st.one_of(st.sampled_from([-1, 0, 1, MAX_MINOR, MAX_MINOR + 1, 2**63]), st.floats(0, 1000),
                  st.sampled_from(["1", "100", "1.0"]), ODD),
    )
    reward_ids = mostly(st.integers(1, 100), st.one_of(st.sampled_from([0, -1, 1, 2**31 - 1, 2**31]), ODD))
    lines = mostly(
        near(
            {"sku": text(1, 64), "description": text(1, 200), "quantity": quantities, "unit_price": money},
            {"category": st.one_of(st.none(), text(1, 64)), "line_discount": money},
        ),
        st.one_of(ODD, st.lists(ODD, max_size=2)),
    )
    return mostly(
        near(
            {
                "id": ids,
                "occurred_at": times,
                "currency": currencies,
                "lines": mostly(st.lists(lines, min_size=1, max_size=12), st.one_of(st.just([]), ODD)),
            },
            {
                "card_number": st.one_of(st.none(), text(1, 32)),
                "cashier": st.one_of(st.none(), text(0, 100)),
                "rewards": mostly(st.lists(reward_ids, max_size=4), st.one_of(st.lists(reward_ids, min_size=19, max_size=21), ODD)),
            },
        ),
        st.one_of(ODD, st.lists(ODD, max_size=2)),
    )


def typical_sale(lines: int = 10, **extra) -> dict:
    """What a till sends: ten lines, a card, quantities as strings, prices in cents."""
    return {
        "id": "till-3-000123",
        "occurred_at": "2026-06-15T10:42:17.123456+00:00",
        "currency": "EUR",
        "card_number": "2990000123456",
        "cashier": "bench",
        "lines": [
            {"sku": f"SKU-{1000 + i}", "description": f"Product {i}, 500 g", "category": ("dairy", "bakery", "produce")[i % 3],
             "quantity": ("1", "2", "0.5", "1")[i % 4], "unit_price": 129 + 37 * i}
            for i in range(lines)
        ],
        **extra,
    }


def assert_fast_path_agrees(body) -> str:
    """The fast path's answer, when it has one, is marshmallow's; the override's answer (result or
    errors) is marshmallow's. Says which way the body went."""
    result, expected = outcome(lambda: Schema.load(SCHEMA, body))  # marshmallow's own, without the override
    fast = _sale_fast(SCHEMA, body)
    if fast is not None:
        assert result == "ok", f"the fast path took a body marshmallow refuses: {expected}"
        assert_same(fast, expected)
    got_result, got = outcome(lambda: SCHEMA.load(body))
    assert got_result == result
    if result == "ok":
        assert_same(got, expected)
    else:
        assert got == expected
    return f"marshmallow: {result}, fast path: {'taken' if fast is not None else 'not sure'}"


@settings(max_examples=1000, deadline=None)
@given(st.one_of(bodies(1000), bodies(60), bodies(8)))
def test_fast_path_answers_what_marshmallow_answers(body):
    event(assert_fast_path_agrees(body))


def changed(body: dict, key: str, value, line: int | None = None) -> dict:
    """``body`` with one value changed (in a line when ``line`` is given); DROP removes the key."""
    body = {**body, "lines": [dict(ln) for ln in body["lines"]]}
    target = body if line is None else body["lines"][line]
    if value is DROP:
        target.pop(key, None)
    else:
        target[key] = value
    return body


class _Drop:
    def __repr__(self) -> str:  # the same in every xdist worker: a test id
        return "DROP"


DROP = _Drop()
LIMITS = {  # each value next to a limit or a rule, in an otherwise usual sale
    "id": ["x" * 64, "x" * 65, "x" * 64 + "\n", "ab\n", "", "-a", "a b", "a\x00", None, 1, DROP],
    "occurred_at": ["2026-06-15T10:00:00", "2026-06-15T10:00:00Z", "2026-06-15 10:00:00+02:00", "2026-06-15T10:00:00Z\x00",
                    "2026-06-15", "", None, 1_781_000_000, DROP],
    "currency": ["EUR\n", "EU", "EURO", "eur", "", None, DROP],
    "card_number": ["", "x", "x" * 32, "x" * 33, "1\x00", None, 1, DROP],
    "cashier": ["", "x" * 100, "x" * 101, "\x00", None, 1, DROP],
    "lines": [[], [typical_sale()["lines"][0]] * 500, [typical_sale()["lines"][0]] * 501, None, {}, "x", DROP],
    "rewards": [[], list(range(1, 21)), list(range(1, 22)), [0], [1], [2**31 - 1], [2**31], [True], [1.0], ["1"], None, DROP],
    "sku": ["", "x", "x" * 64, "x" * 65, "x\x00", None, 1, DROP],
    "description": ["", "x" * 200, "x" * 201, None, DROP],
    "category": ["", "x", "x" * 64, "x" * 65, None, 1, DROP],
    "quantity": ["1000000", "1000000.000", "1000000.001", 1_000_000, 1_000_001, "0", "0.000", "0.001", "0.0005", 0, -1,
                 "0000001", "00000001", "1.", ".5", "1.0000", "1e3", " 1", "1 ", "1\n", "+1", "-1", "1_0", "\u0661", "",
                 0.5, 1.0, math.nan, True, False, None, "NaN", "Infinity", DROP],
    "unit_price": [0, -1, MAX_MINOR, MAX_MINOR + 1, True, False, 1.0, "1", None, DROP],
    "line_discount": [0, -1, MAX_MINOR, MAX_MINOR + 1, True, 1.0, "1", None, DROP],
    "unknown": ["x", None],
}
LINE_KEYS = {"sku", "description", "category", "quantity", "unit_price", "line_discount"}


@pytest.mark.parametrize(
    ("line", "key", "value"),
    [(1 if key in LINE_KEYS else None, key, value) for key, values in LIMITS.items() for value in values]
    + [(1, "unknown", value) for value in LIMITS["unknown"]],
    ids=lambda v: repr(v)[:30],
)
def test_limits_are_marshmallow_s(line, key, value):
    assert_fast_path_agrees(changed(typical_sale(lines=3), key, value, line=line))


def test_the_till_s_usual_sale_takes_the_fast_path():
    for body in (typical_sale(), typical_sale(rewards=[7]), typical_sale(lines=1, card_number=None, cashier=None)):
        fast = _sale_fast(SCHEMA, body)
        assert fast is not None
        assert_same(fast, Schema.load(SCHEMA, body))
    assert [line["quantity"] for line in _sale_fast(SCHEMA, typical_sale())["lines"][:4]] == [1000, 2000, 500, 1000]


@pytest.mark.parametrize(("options", "arguments"), [
    ({"partial": True}, {}), ({"only": ("id", "occurred_at", "currency", "lines")}, {}), ({"many": True}, {}),
    ({}, {"partial": True}), ({}, {"many": True}), ({}, {"unknown": EXCLUDE}), ({}, {"unknown": INCLUDE}),
])
def test_other_loads_are_marshmallow_s(options, arguments):
    """Loads that change what a body means (partial, only, many, unknown) are all marshmallow's."""
    schema = SaleSchema(**options)
    body = typical_sale()
    del body["cashier"]
    body["till_note"] = "x"
    for sale in (body, {k: v for k, v in body.items() if k != "till_note"}):
        assert outcome(lambda: schema.load(sale, **arguments)) == outcome(lambda: Schema.load(schema, sale, **arguments))
