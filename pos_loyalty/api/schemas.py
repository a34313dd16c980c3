"""Marshmallow schemas: they validate what the till sends and document the API (OpenAPI)."""
from __future__ import annotations

import decimal
import re
from typing import Any, Callable

from marshmallow import Schema, ValidationError, fields, missing, pre_load, validate, validates, validates_schema
from marshmallow.decorators import POST_DUMP, PRE_DUMP

from ..domain.earning import MILLI
from ..services.customers import PREFERENCE_KEYS

MAX_MINOR = 10**11  # a billion in major units: far beyond any till's sale
MAX_QUANTITY = decimal.Decimal(1_000_000)
# (\Z, not $: "$" also matches before a final newline, and "abc\n" is not an id)
ID = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}\Z", error="use 1 to 64 letters, digits, '.', '_', ':' or '-'")
CARD = validate.Length(min=1, max=32)
OCCURRED_AT = {
    "description": "When it happened, by the till's clock, with its UTC offset. Refused (422 naming this field) if "
                   "before 2000-01-01 or more than 24 hours ahead of the shop's clock: a till whose clock is not set.",
}


def _nul_errors(value, path: str, errors: dict[str, list[str]]) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            errors[path or "body"] = ["Text may not contain NUL characters."]
    elif isinstance(value, dict):
        for key, item in value.items():
            _nul_errors(str(key), f"{path}.{key}" if path else str(key), errors)
            _nul_errors(item, f"{path}.{key}" if path else str(key), errors)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _nul_errors(item, f"{path}.{i}" if path else str(i), errors)


def _has_nul(value) -> bool:
    """Whether ``_nul_errors`` would find anything: the same walk, without building a path for
    every value of a body that (nearly always) has no NUL at all. One frame per level of nesting,
    as ``_nul_errors``, so a deep body fails the same way."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in str(key) or _has_nul(item):
                return True
    elif isinstance(value, list):
        for item in value:
            if _has_nul(item):
                return True
    return False


class StrictSchema(Schema):
    """Refuses NUL characters anywhere in the input, naming the field (PostgreSQL cannot store them)."""

    @pre_load
    def _no_nul(self, data, **kw):
        if not _has_nul(data):
            return data
        errors: dict[str, list[str]] = {}
        _nul_errors(data, "", errors)
        if errors:
            raise ValidationError(errors)
        return data


class StrictPart(Schema):
    """A part of a body, only ever nested in a ``StrictSchema`` (a sale's lines): the body's own
    check has walked it already, NULs in it are named by their full path (``lines.0.sku``), and a
    check per part was a sixth of loading a ten-line sale, for nothing. Load it only through the
    body's schema."""


class AwareDateTime(fields.AwareDateTime):
    """An ISO 8601 time with its offset; a time without one is refused, not guessed."""

    def __init__(self, **kw):
        super().__init__(format="iso", **kw)


class Quantity(fields.Decimal):
    """Whole, or up to three decimals for weighed goods; given as a number or a string."""

    def __init__(self, **kw):
        super().__init__(places=None, as_string=True, **kw)

    def _deserialize(self, value, attr, data, **kw):
        if isinstance(value, bool):
            raise ValidationError("Not a valid number.")
        number = super()._deserialize(value, attr, data, **kw)
        if not number.is_finite():
            raise ValidationError("Not a valid number.")
        if number <= 0:
            raise ValidationError("The quantity must be above zero.")
        if number > MAX_QUANTITY:
            raise ValidationError(f"The quantity is at most {MAX_QUANTITY}.")
        if number != number.quantize(decimal.Decimal("0.001")):
            raise ValidationError("The quantity has at most three decimals.")
        return int(number * MILLI)


class Money(fields.Integer):
    """Integer minor units (cents); never a float."""

    def __init__(self, **kw):
        kw.setdefault("validate", validate.Range(min=0, max=MAX_MINOR))
        super().__init__(strict=True, **kw)


class Problem(StrictSchema):
    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    errors = fields.List(fields.Dict())


# -- customers -------------------------------------------------------------------------------------


class PreferencesSchema(StrictPart):
    dietary = fields.List(fields.String(validate=validate.Length(min=1, max=100)), allow_none=True, validate=validate.Length(max=50))
    allergies = fields.List(fields.String(validate=validate.Length(min=1, max=100)), allow_none=True, validate=validate.Length(max=50))
    sizes = fields.Dict(allow_none=True, keys=fields.String(validate=validate.Length(min=1, max=50)), values=fields.String(validate=validate.Length(max=50)))
    favourite_products = fields.List(fields.String(validate=validate.Length(min=1, max=100)), allow_none=True, validate=validate.Length(max=50))
    packaging = fields.String(allow_none=True, validate=validate.Length(max=500))
    contact_channel = fields.String(allow_none=True, validate=validate.OneOf(["email", "phone", "sms", "post", "none"]))
    service_notes = fields.String(allow_none=True, validate=validate.Length(max=500))


assert set(PreferencesSchema._declared_fields) == set(PREFERENCE_KEYS)


class CustomerUpdateSchema(StrictSchema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    preferred_name = fields.String(allow_none=True, validate=validate.Length(max=100))
    email = fields.String(allow_none=True, validate=validate.Length(max=254))
    phone = fields.String(allow_none=True, validate=validate.Length(max=32))
    birthday = fields.Date(allow_none=True)
    language = fields.String(allow_none=True, validate=validate.Regexp(r"^[a-z]{2,3}([_-][A-Za-z]{2,4})?\Z", error="use a language code like en or de"))
    marketing_consent = fields.Boolean()
    preferences = fields.Nested(PreferencesSchema)
    staff_notes = fields.String(allow_none=True, validate=validate.Length(max=2000))

    @validates("birthday")
    def _plausible(self, value, **kw):  # "not in the future" is the service's check, on the shop's clock
        if value is not None and value.year < 1900:
            raise ValidationError("The birthday must be after 1900.")


class CustomerCreateSchema(CustomerUpdateSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    card_number = fields.String(validate=CARD, load_default=None)


class CardOut(StrictSchema):
    number = fields.String()
    status = fields.String()
    issued_at = fields.String()
    blocked_at = fields.String(allow_none=True)


class CustomerOut(StrictSchema):
    id = fields.Integer()
    name = fields.String()
    preferred_name = fields.String(allow_none=True)
    greeting_name = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    birthday = fields.String(allow_none=True)
    language = fields.String(allow_none=True)
    marketing_consent = fields.Boolean()
    preferences = fields.Dict()
    staff_notes = fields.String(allow_none=True)
    balance = fields.Integer()
    created_at = fields.String()
    erased = fields.Boolean()
    cards = fields.List(fields.Nested(CardOut))


class SearchArgs(StrictSchema):
    q = fields.String(required=True, validate=validate.Length(min=1, max=200))
    limit = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))


class CardSummaryOut(StrictSchema):
    card = fields.Dict()
    customer = fields.Nested(CustomerOut)
    greeting_name = fields.String(allow_none=True)
    balance = fields.Integer()
    tier = fields.Dict()
    next_expiry = fields.Dict(allow_none=True)
    next_reward = fields.Dict(allow_none=True)
    rewards_redeemable = fields.List(fields.Dict())
    birthday_week = fields.Boolean()
    favourites = fields.List(fields.Dict())
    last_visit = fields.String(allow_none=True)
    open_follow_ups = fields.List(fields.Dict())


class IssueCardSchema(StrictSchema):
    card_number = fields.String(validate=CARD, load_default=None)


class BlockCardSchema(StrictSchema):
    reason = fields.String(load_default="lost", validate=validate.Length(min=1, max=200))
    user = fields.String(required=True, validate=validate.Length(min=1, max=100))


# -- transactions ----------------------------------------------------------------------------------


class LineSchema(StrictPart):
    sku = fields.String(required=True, validate=validate.Length(min=1, max=64))
    description = fields.String(required=True, validate=validate.Length(min=1, max=200))
    category = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))
    quantity = Quantity(required=True)
    unit_price = Money(required=True)
    line_discount = Money(load_default=0)


class SaleSchema(StrictSchema):
    id = fields.String(required=True, validate=ID)
    occurred_at = AwareDateTime(required=True, metadata=OCCURRED_AT)
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}\Z", error="use an ISO 4217 code like EUR"))
    card_number = fields.String(load_default=None, allow_none=True, validate=CARD)
    cashier = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))
    lines = fields.List(fields.Nested(LineSchema), required=True, validate=validate.Length(min=1, max=500))
    rewards = fields.List(fields.Integer(strict=True, validate=validate.Range(min=1, max=2**31 - 1)), load_default=list, validate=validate.Length(max=20))

    def load(self, data, *, many=None, partial=None, unknown=None):
        """Marshmallow's load, after a plain check of the usual body (``_sale_fast``) that gives
        the same answer in a fraction of the time; anything it is not sure of goes to marshmallow."""
        if (
            many is None and partial is None and unknown is None and type(self) is SaleSchema
            and not self.many and not self.partial and self.only is None and not self.exclude
        ):
            fast = _sale_fast(self, data)
            if fast is not None:
                return fast
        return super().load(data, many=many, partial=partial, unknown=unknown)


# -- a sale's usual body, without marshmallow ---------------------------------------------------
# Loading a ten-line sale with marshmallow costs about 0.15-0.2 ms of CPU, some 12% of a whole
# checkout, and the till service is CPU-bound when many tills check out at once. ``_sale_fast``
# checks and converts a body of the usual shape in plain Python and answers exactly what
# ``Schema.load`` would (same keys, values and value types; tests/test_sale_schema_fast_path.py
# proves it against marshmallow). It never raises and never decides a refusal: for anything not
# plainly valid (a float, "1e2", a bool, an unknown key, a NUL...) it answers None and marshmallow
# loads the body, with its own errors. Its limits are read from the schemas' own validators.


def _length(field: fields.Field) -> tuple[int, int]:
    (rule,) = field.validators
    assert type(rule) is validate.Length and rule.equal is None and rule.max is not None
    return rule.min or 0, rule.max


def _range(field: fields.Field) -> tuple[int, int]:
    (rule,) = field.validators
    assert type(rule) is validate.Range and rule.min_inclusive and rule.max_inclusive
    return rule.min, rule.max


def _regex(field: fields.Field):
    (rule,) = field.validators
    assert type(rule) is validate.Regexp
    return rule.regex.match  # match, as the validator (whose patterns end in \Z, not $)


def _required(schema: type[Schema]) -> frozenset[str]:
    return frozenset(name for name, field in schema._declared_fields.items() if field.required)


_SALE, _LINE = SaleSchema._declared_fields, LineSchema._declared_fields
assert all(f.data_key is None and f.attribute is None for f in (*_SALE.values(), *_LINE.values()))
_SALE_KEYS, _SALE_REQUIRED = frozenset(_SALE), _required(SaleSchema)
_LINE_KEYS, _LINE_REQUIRED = frozenset(_LINE), _required(LineSchema)
_ID_MATCH, _CURRENCY_MATCH = _regex(_SALE["id"]), _regex(_SALE["currency"])
_CARD_LEN, _CASHIER_LEN, _LINES_LEN, _REWARDS_LEN = (_length(_SALE[n]) for n in ("card_number", "cashier", "lines", "rewards"))
_REWARD_RANGE = _range(_SALE["rewards"].inner)
_SKU_LEN, _DESCRIPTION_LEN, _CATEGORY_LEN = (_length(_LINE[n]) for n in ("sku", "description", "category"))
_MONEY_RANGE = _range(_LINE["unit_price"])
assert _range(_LINE["line_discount"]) == _MONEY_RANGE and MILLI == 1000  # three decimals, as Quantity
_MAX_MILLI = int(MAX_QUANTITY) * MILLI
_QUANTITY_TEXT = re.compile(r"([0-9]{1,7})(?:\.([0-9]{1,3}))?")  # used with fullmatch; ASCII digits only


def _text(value, bounds: tuple[int, int]) -> bool:
    return type(value) is str and bounds[0] <= len(value) <= bounds[1] and "\x00" not in value


def _whole(value, bounds: tuple[int, int]) -> bool:
    return type(value) is int and bounds[0] <= value <= bounds[1]  # type, not isinstance: not a bool


def _milli(value) -> int | None:
    """Quantity's thousandths of a plain whole number or "12.345" string, computed exactly."""
    if type(value) is int:
        milli = value * MILLI
    elif type(value) is str and (match := _QUANTITY_TEXT.fullmatch(value)):
        whole, decimals = match.groups()
        milli = int(whole) * MILLI + int((decimals or "").ljust(3, "0"))
    else:
        return None
    return milli if 0 < milli <= _MAX_MILLI else None


def _line_fast(line) -> dict[str, Any] | None:
    if type(line) is not dict or not line.keys() <= _LINE_KEYS or not _LINE_REQUIRED <= line.keys():
        return None
    sku, description, category = line["sku"], line["description"], line.get("category")
    unit_price, line_discount = line["unit_price"], line.get("line_discount", 0)
    quantity = _milli(line["quantity"])
    if (
        quantity is None
        or not _text(sku, _SKU_LEN)
        or not _text(description, _DESCRIPTION_LEN)
        or (category is not None and not _text(category, _CATEGORY_LEN))
        or not _whole(unit_price, _MONEY_RANGE)
        or not _whole(line_discount, _MONEY_RANGE)
    ):
        return None
    return {"sku": sku, "description": description, "category": category, "quantity": quantity,
            "unit_price": unit_price, "line_discount": line_discount}


def _sale_fast(schema: SaleSchema, data) -> dict[str, Any] | None:
    """What ``Schema.load(schema, data)`` answers for a plainly valid sale; None when not sure."""
    try:
        if type(data) is not dict or not data.keys() <= _SALE_KEYS or not _SALE_REQUIRED <= data.keys():
            return None
        ident, occurred_at, currency = data["id"], data["occurred_at"], data["currency"]
        card_number, cashier = data.get("card_number"), data.get("cashier")
        lines, rewards = data["lines"], data.get("rewards", [])
        if (
            # (the id's and currency's lengths are their regexes')
            not _text(ident, (1, 64)) or not _ID_MATCH(ident)
            or not _text(currency, (3, 3)) or not _CURRENCY_MATCH(currency)
            or not _text(occurred_at, (1, 100))
            or (card_number is not None and not _text(card_number, _CARD_LEN))
            or (cashier is not None and not _text(cashier, _CASHIER_LEN))
            or type(lines) is not list or not _LINES_LEN[0] <= len(lines) <= _LINES_LEN[1]
            or type(rewards) is not list or not _REWARDS_LEN[0] <= len(rewards) <= _REWARDS_LEN[1]
            or not all(_whole(r, _REWARD_RANGE) for r in rewards)
        ):
            return None
        loaded = [_line_fast(line) for line in lines]
        if None in loaded:
            return None
        occurred_at = schema.fields["occurred_at"].deserialize(occurred_at)  # the field itself: the same datetime
    except Exception:  # a ValidationError from the time, or anything unforeseen: marshmallow decides
        return None
    return {"id": ident, "occurred_at": occurred_at, "currency": currency, "card_number": card_number,
            "cashier": cashier, "lines": loaded, "rewards": list(rewards)}


class ReturnLineSchema(StrictPart):
    sku = fields.String(required=True, validate=validate.Length(min=1, max=64))
    quantity = Quantity(required=True)


class ReturnSchema(StrictSchema):
    id = fields.String(required=True, validate=ID)
    occurred_at = AwareDateTime(required=True, metadata=OCCURRED_AT)
    cashier = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))
    lines = fields.List(fields.Nested(ReturnLineSchema), required=True, validate=validate.Length(min=1, max=500))


class ClaimSchema(StrictSchema):
    card_number = fields.String(required=True, validate=CARD)


class LineOut(StrictSchema):
    line_no = fields.Integer()
    sku = fields.String()
    description = fields.String()
    category = fields.String(allow_none=True)
    quantity = fields.String()
    unit_price = fields.Integer()
    line_discount = fields.Integer()
    reward_discount = fields.Integer()
    paid = fields.Integer()
    points = fields.Integer()


class TransactionOut(StrictSchema):
    id = fields.String()
    kind = fields.String()
    original_id = fields.String(allow_none=True)
    occurred_at = fields.String()
    recorded_at = fields.String()
    till = fields.String(allow_none=True)
    cashier = fields.String(allow_none=True)
    currency = fields.String()
    visit_code = fields.String(allow_none=True)
    programme_version = fields.Integer(allow_none=True)
    lines = fields.List(fields.Nested(LineOut))
    subtotal = fields.Integer()
    rewards = fields.List(fields.Dict())
    discount = fields.Integer()
    total = fields.Integer()
    customer = fields.Dict(allow_none=True)
    points = fields.Dict()
    tier = fields.Dict(allow_none=True)
    next_expiry = fields.Dict(allow_none=True)
    next_reward = fields.Dict(allow_none=True)
    birthday_week = fields.Boolean()
    replayed = fields.Boolean()
    returns = fields.List(fields.String())


class TransactionListOut(StrictSchema):
    id = fields.String()
    kind = fields.String()
    original_id = fields.String(allow_none=True)
    occurred_at = fields.String()
    total = fields.Integer()
    currency = fields.String()
    points_earned = fields.Integer()
    points_redeemed = fields.Integer()
    lines = fields.List(fields.Dict())


class LedgerEntryOut(StrictSchema):
    id = fields.Integer()
    kind = fields.String()
    cause = fields.String()
    points = fields.Integer()
    created_at = fields.String()
    expires_at = fields.String(allow_none=True)
    transaction_id = fields.String(allow_none=True)
    user = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)


class LimitArgs(StrictSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


# -- rewards, feedback, adjustments ----------------------------------------------------------------


class RewardOut(StrictSchema):
    id = fields.Integer()
    name = fields.String()
    kind = fields.String()
    points_cost = fields.Integer()
    amount = fields.Integer(allow_none=True)
    percent = fields.Integer(allow_none=True)
    cap = fields.Integer(allow_none=True)
    sku = fields.String(allow_none=True)
    valid_from = fields.Date(allow_none=True)
    valid_to = fields.Date(allow_none=True)
    tiers = fields.List(fields.String())
    active = fields.Boolean()


class FeedbackSchema(StrictSchema):
    transaction_id = fields.String(load_default=None, validate=ID)
    visit_code = fields.String(load_default=None, validate=validate.Length(min=4, max=16))
    satisfaction = fields.Integer(strict=True, load_default=None, allow_none=True, validate=validate.Range(min=1, max=5))
    recommend = fields.Integer(strict=True, load_default=None, allow_none=True, validate=validate.Range(min=0, max=10))
    comment = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))
    complaint = fields.Boolean(load_default=False)

    @validates_schema
    def _names_the_visit(self, data, **kw):
        if not data.get("transaction_id") and not data.get("visit_code"):
            raise ValidationError("Name the visit: a transaction id or the visit code from the receipt.", "transaction_id")


class FeedbackOut(StrictSchema):
    id = fields.Integer()
    transaction_id = fields.String()
    satisfaction = fields.Integer(allow_none=True)
    recommend = fields.Integer(allow_none=True)
    comment = fields.String(allow_none=True)
    complaint = fields.Boolean()
    follow_up_id = fields.Integer(allow_none=True)


class ResolveSchema(StrictSchema):
    user = fields.String(required=True, validate=validate.Length(min=1, max=100))
    resolution = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class ResolveOut(StrictSchema):
    id = fields.Integer()
    resolved_at = fields.String()
    resolved_by = fields.String()
    resolution = fields.String()


class AdjustmentSchema(StrictSchema):
    points = fields.Integer(strict=True, required=True, validate=validate.Range(min=-10**9, max=10**9))
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))
    user = fields.String(required=True, validate=validate.Length(min=1, max=100))


class AdjustmentOut(StrictSchema):
    entry_id = fields.Integer()
    points = fields.Integer()
    balance_before = fields.Integer()
    balance_after = fields.Integer()


class HealthOut(StrictSchema):
    status = fields.String()
    version = fields.String()
    database = fields.Dict()
    schema = fields.Dict()
    printer = fields.Dict()


class PrintJobOut(StrictSchema):
    id = fields.Integer()
    transaction_id = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    created_at = fields.String()
    printed_at = fields.String(allow_none=True)


class LoyaltyBlockOut(StrictSchema):
    lines = fields.List(fields.String())
    escpos_base64 = fields.String()


# -- answers sent without a dump -------------------------------------------------------------------


def dumped_as_is(schema: Schema) -> Callable[[Any], bool]:
    """A test that ``schema.dump(value)`` would give back ``value`` itself: equal, with the same
    types at every level, so the JSON a client gets is the same with or without the dump.

    The hottest views send the services' answers, built already in the documented shape, without
    paying for a dump that changes nothing; this test (a tenth of the dump's time) is what lets
    them, and anything else is dumped as before. It knows the fields these answers use (String,
    Integer, Boolean, Dict, List, Nested); a schema or field that could reshape what it dumps
    (``many``, dump hooks, ``data_key``, ``attribute``, a ``dump_default``, a nested ``only`` or
    ``exclude``, any other field type) makes it refuse every value."""
    if (
        schema.many
        or schema._hooks[PRE_DUMP]
        or schema._hooks[POST_DUMP]
        or type(schema).dump is not Schema.dump
        or type(schema)._serialize is not Schema._serialize
        or type(schema).get_attribute is not Schema.get_attribute
    ):
        return _never
    scalars: dict[str, frozenset[type]] = {}  # the types dumped unchanged, None's among them
    deep: dict[str, Callable[[Any], bool]] = {}  # lists and nested objects (None is checked first)
    for name, field in schema.dump_fields.items():
        # a name with a dot is a path; one of dict's own attributes (``items``) is read from it when missing
        if field.data_key is not None or field.attribute is not None or "." in name or hasattr(dict, name):
            return _never
        rule = _kept_as_is(field)
        if rule is None:
            return _never
        if isinstance(rule, frozenset):
            scalars[name] = rule
        else:
            deep[name] = rule
    names = scalars.keys() | deep.keys()

    def as_is(value: Any) -> bool:
        if type(value) is not dict or not value.keys() <= names:
            return False
        for name, item in value.items():
            types = scalars.get(name)
            if types is not None:
                if type(item) not in types:
                    return False
            elif item is not None and not deep[name](item):
                return False
        return True

    return as_is


def _never(value: Any) -> bool:
    return False


_NONE = type(None)


def _kept_as_is(field: fields.Field) -> frozenset[type] | Callable[[Any], bool] | None:
    """What ``field`` dumps unchanged: the types of such values, or a test of a (not None) list or
    object; ``None`` when not known."""
    if field.dump_default is not missing:
        return None
    kind = type(field)
    if kind is fields.String:
        return frozenset((str, _NONE))
    if kind is fields.Integer and not field.as_string:
        return frozenset((int, _NONE))  # not bool: an Integer dumps True as 1
    if kind is fields.Boolean:
        return frozenset((bool, _NONE))
    if kind is fields.Dict and field.key_field is None and field.value_field is None:
        return frozenset((dict, _NONE))  # dumped as a copy, its values untouched
    if kind is fields.List:
        each = _kept_as_is(field.inner)
        if each is None:
            return None
        if isinstance(each, frozenset):
            return lambda v: type(v) is list and all(type(x) in each for x in v)
        return lambda v: type(v) is list and all(x is None or each(x) for x in v)
    if kind is fields.Nested and not field.many and field.only is None and not field.exclude:
        return dumped_as_is(field.schema)
    return None
