"""Marshmallow schemas: they validate what the till sends and document the API (OpenAPI)."""
from __future__ import annotations

import decimal
from typing import Any, Callable

from marshmallow import Schema, ValidationError, fields, missing, pre_load, validate, validates, validates_schema
from marshmallow.decorators import POST_DUMP, PRE_DUMP

from ..domain.earning import MILLI
from ..services.customers import PREFERENCE_KEYS

MAX_MINOR = 10**11  # a billion in major units: far beyond any till's sale
MAX_QUANTITY = decimal.Decimal(1_000_000)
ID = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$", error="use 1 to 64 letters, digits, '.', '_', ':' or '-'")
CARD = validate.Length(min=1, max=32)


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
    language = fields.String(allow_none=True, validate=validate.Regexp(r"^[a-z]{2,3}([_-][A-Za-z]{2,4})?$", error="use a language code like en or de"))
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
    occurred_at = AwareDateTime(required=True)
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$", error="use an ISO 4217 code like EUR"))
    card_number = fields.String(load_default=None, allow_none=True, validate=CARD)
    cashier = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))
    lines = fields.List(fields.Nested(LineSchema), required=True, validate=validate.Length(min=1, max=500))
    rewards = fields.List(fields.Integer(strict=True, validate=validate.Range(min=1, max=2**31 - 1)), load_default=list, validate=validate.Length(max=20))


class ReturnLineSchema(StrictPart):
    sku = fields.String(required=True, validate=validate.Length(min=1, max=64))
    quantity = Quantity(required=True)


class ReturnSchema(StrictSchema):
    id = fields.String(required=True, validate=ID)
    occurred_at = AwareDateTime(required=True)
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
