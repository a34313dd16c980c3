"""The receipt, laid out as plain values: the sale and the customer's points statement.

Layout knows paper columns, words and numbers, never printers. The printer driver turns a
:class:`Receipt` into ESC/POS; :meth:`Receipt.as_text` turns it into lines for a till that prints
its own receipt. Money is integer minor units throughout, formatted by Babel for the shop's
locale; the words are in the customer's language where we have a catalog, English otherwise.
"""
from __future__ import annotations

import gettext
import textwrap
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib.resources import files
from io import BytesIO
from typing import Literal, Union
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal, get_currency_precision

from pos_loyalty.domain.cards import is_valid_ean13, mask_card_number

MIN_COLUMNS = 24
CATALOG_DOMAIN = "receipt"
FALLBACK_LANGUAGE = "en"

Align = Literal["left", "center", "right"]


def N_(message: str) -> str:
    """Marks a message for the catalogs without translating it yet."""
    return message


BONUS_LABELS = (N_("Welcome bonus"), N_("Birthday bonus"), N_("Goodwill points"))
"""Bonus labels the catalogs know; any other label is printed as the shop wrote it."""


# -- what a receipt is made of -------------------------------------------------------------------


@dataclass(frozen=True)
class TextLine:
    """One printed line. A ``double`` line is printed twice as wide and high, so it holds half
    as many characters."""

    text: str
    align: Align = "left"
    bold: bool = False
    double: bool = False

    @property
    def width(self) -> int:
        return len(self.text) * (2 if self.double else 1)


@dataclass(frozen=True)
class Rule:
    char: str = "-"


@dataclass(frozen=True)
class Barcode:
    kind: Literal["EAN13", "CODE128"]
    data: str


@dataclass(frozen=True)
class QrCode:
    url: str


@dataclass(frozen=True)
class Cut:
    pass


Element = Union[TextLine, Rule, Barcode, QrCode, Cut]


@dataclass(frozen=True)
class Receipt:
    columns: int
    elements: tuple[Element, ...]

    def text_lines(self) -> list[str]:
        """The receipt as plain lines of at most ``columns`` characters; a barcode shows its
        data, a QR code its URL, a cut nothing."""
        lines: list[str] = []
        for element in self.elements:
            if isinstance(element, TextLine):
                lines.append(_aligned(element.text, element.align, self.columns))
            elif isinstance(element, Rule):
                lines.append(element.char * self.columns)
            elif isinstance(element, Barcode):
                lines.extend(_aligned(chunk, "center", self.columns) for chunk in _chunks(element.data, self.columns))
            elif isinstance(element, QrCode):
                lines.extend(_chunks(element.url, self.columns))
        return lines

    def as_text(self) -> str:
        return "\n".join(line.rstrip() for line in self.text_lines()) + "\n"


# -- what the till tells us ----------------------------------------------------------------------


@dataclass(frozen=True)
class ItemLine:
    """A line of the sale. ``paid_minor`` is what the customer pays for the line after its
    discount; the quantity may be a weight (``"0.255"``)."""

    description: str
    sku: str | None
    quantity: Decimal
    unit_price_minor: int
    discount_minor: int
    paid_minor: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantity", _decimal(self.quantity))


@dataclass(frozen=True)
class AppliedReward:
    """A reward the customer took today: its name, the points it cost and the money it took
    off the sale (zero for a reward that is goods, not a discount)."""

    name: str
    points: int
    discount_minor: int = 0


@dataclass(frozen=True)
class EarnedPoints:
    """Why the customer earned what they earned: every part has a reason on the receipt."""

    base: int = 0
    promotion: int = 0
    promotion_name: str | None = None
    tier: int = 0
    bonuses: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "bonuses", tuple((label, int(points)) for label, points in self.bonuses))

    @property
    def total(self) -> int:
        return self.base + self.promotion + self.tier + sum(points for _, points in self.bonuses)


@dataclass(frozen=True)
class NextReward:
    name: str
    points_needed: int


@dataclass(frozen=True)
class TierProgress:
    next_tier: str
    spend_needed_minor: int


@dataclass(frozen=True)
class PointsExpiry:
    points: int
    on: date


@dataclass(frozen=True)
class LoyaltyStatement:
    """The customer's points after this visit, as the ledger recorded them: the receipt prints
    these numbers and computes none of them, so it can never disagree with the ledger."""

    preferred_name: str
    card_number: str
    language: str
    earned: EarnedPoints
    balance_before: int
    balance_after: int
    redeemed: tuple[AppliedReward, ...] = ()
    next_reward: NextReward | None = None
    tier: str | None = None
    tier_progress: TierProgress | None = None
    next_expiry: PointsExpiry | None = None
    birthday_week: bool = False
    feedback_url: str | None = None
    visit_code: str | None = None
    thank_you: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "redeemed", tuple(self.redeemed))

    @property
    def points_redeemed(self) -> int:
        return sum(reward.points for reward in self.redeemed)


@dataclass(frozen=True)
class ReceiptData:
    """One sale as committed. ``time`` is aware; it is printed in the shop's ``timezone``."""

    shop_name: str
    shop_address: tuple[str, ...]
    transaction_id: str
    time: datetime
    timezone: str
    till: str
    cashier: str
    currency: str
    locale: str
    items: tuple[ItemLine, ...]
    subtotal_minor: int
    total_minor: int
    rewards: tuple[AppliedReward, ...] = ()
    loyalty: LoyaltyStatement | None = None
    copy: bool = False  # printed before: this one says it is a copy, not a second sale

    def __post_init__(self) -> None:
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise ValueError("the receipt time must carry its time zone")
        ZoneInfo(self.timezone)
        _shop_locale(self.locale)
        for name in ("shop_address", "items", "rewards"):
            object.__setattr__(self, name, tuple(getattr(self, name)))


# -- laying it out -------------------------------------------------------------------------------


def lay_out_receipt(data: ReceiptData, *, columns: int) -> Receipt:
    """The whole receipt: shop, sale, rewards, total, the customer's statement, cut."""
    _check_columns(columns)
    words = _wording(data.loyalty.language if data.loyalty else data.locale)
    money = _Money(data.currency, data.locale)
    lines: list[Element] = []

    lines += lay_out_text(data.shop_name, columns, align="center", bold=True, double=True)
    for address_line in data.shop_address:
        lines += _centred(address_line, columns)
    lines.append(Rule())

    if data.copy:
        lines += _centred(words.gettext("*** COPY ***"), columns, bold=True)
    lines += _text(words.gettext("Receipt {number}").format(number=data.transaction_id), columns)
    when = format_datetime(data.time, "short", tzinfo=ZoneInfo(data.timezone), locale=words.locale)
    lines += _two_columns(when, words.gettext("Till {till}").format(till=data.till), columns)
    if data.cashier:
        lines += _text(words.gettext("Served by {cashier}").format(cashier=data.cashier), columns)
    lines.append(Rule())

    for item in data.items:
        lines += _two_columns(item.description, money(item.paid_minor + item.discount_minor), columns)
        if item.quantity != 1:
            each = f"{format_decimal(item.quantity, locale=data.locale, decimal_quantization=False)} × {money(item.unit_price_minor)}"
            lines += _text(each, columns, indent=2)
        if item.discount_minor:
            lines += _two_columns(words.gettext("Discount"), money(-item.discount_minor), columns, indent=2)
    lines.append(Rule())

    if data.rewards or data.subtotal_minor != data.total_minor:
        lines += _two_columns(words.gettext("Subtotal"), money(data.subtotal_minor), columns)
        for reward in data.rewards:
            label = words.ngettext("{reward} ({points} point)", "{reward} ({points} points)", reward.points)
            lines += _two_columns(label.format(reward=reward.name, points=_points(reward.points)), money(-reward.discount_minor), columns)
    lines += _two_columns(words.gettext("Total"), money(data.total_minor), columns, bold=True)

    if data.loyalty:
        lines += lay_out_loyalty_block(data.loyalty, columns=columns, locale=data.locale, currency=data.currency).elements
    else:
        lines += [TextLine(""), *_centred(words.gettext("Thank you for your visit!"), columns)]
    lines += [TextLine(""), Cut()]
    return Receipt(columns, tuple(lines))


def lay_out_loyalty_block(statement: LoyaltyStatement, *, columns: int, locale: str, currency: str) -> Receipt:
    """The customer's points statement, on its own: printed under our receipt, or appended by a
    till to its own receipt."""
    _check_columns(columns)
    words = _wording(statement.language)
    money = _Money(currency, locale)
    name = statement.preferred_name.strip()
    lines: list[Element] = [Rule("=")]

    greeting = words.gettext("Hello {name}!").format(name=name) if name else words.gettext("Hello!")
    lines += _centred(greeting, columns, bold=True)
    lines += _centred(words.gettext("Card {number}").format(number=mask_card_number(statement.card_number)), columns)
    lines.append(TextLine(""))

    earned = statement.earned
    if earned.total:
        lines += _two_columns(words.gettext("Points earned today"), _signed(earned.total), columns, bold=True)
        parts: list[tuple[str, int]] = [(words.gettext("Base points"), earned.base)]
        if earned.promotion_name:
            parts.append((words.gettext("Promotion: {name}").format(name=earned.promotion_name), earned.promotion))
        else:
            parts.append((words.gettext("Promotion"), earned.promotion))
        if statement.tier:
            parts.append((words.gettext("Tier bonus ({tier})").format(tier=statement.tier), earned.tier))
        else:
            parts.append((words.gettext("Tier bonus"), earned.tier))
        parts += [(words.gettext(label) if label else label, points) for label, points in earned.bonuses]
        for label, points in parts:
            if points:
                lines += _two_columns(label, _signed(points), columns, indent=2)
    if statement.redeemed:
        lines += _two_columns(words.gettext("Points redeemed"), _signed(-statement.points_redeemed), columns, bold=True)
        for reward in statement.redeemed:
            lines += _two_columns(reward.name, _signed(-reward.points), columns, indent=2)
    lines += _two_columns(words.gettext("Balance before"), _points(statement.balance_before), columns)
    lines += _two_columns(words.gettext("Balance now"), _points(statement.balance_after), columns, bold=True)

    if statement.next_reward:
        reward = statement.next_reward
        if reward.points_needed > 0:
            progress = words.ngettext("{points} point to {reward}", "{points} points to {reward}", reward.points_needed)
        else:
            progress = words.gettext("{reward} is yours to take next time")
        lines += _text(progress.format(points=_points(reward.points_needed), reward=reward.name), columns)
    if statement.tier:
        lines += _text(words.gettext("Tier: {tier}").format(tier=statement.tier), columns)
    if statement.tier_progress:
        step = statement.tier_progress
        lines += _text(
            words.gettext("Spend {amount} more to reach {tier}").format(amount=money(step.spend_needed_minor), tier=step.next_tier),
            columns,
        )
    if statement.next_expiry and statement.next_expiry.points > 0:
        expiry = statement.next_expiry
        text = words.ngettext("{points} point expires on {date}", "{points} points expire on {date}", expiry.points)
        lines += _text(text.format(points=_points(expiry.points), date=format_date(expiry.on, "medium", locale=words.locale)), columns)

    if statement.birthday_week:
        lines.append(TextLine(""))
        wish = words.gettext("Happy birthday, {name}!").format(name=name) if name else words.gettext("Happy birthday!")
        lines += _centred(wish, columns, bold=True)

    if statement.feedback_url:
        lines.append(TextLine(""))
        lines += _centred(words.gettext("How was your visit? Scan the code and tell us."), columns)
        lines.append(QrCode(feedback_link(statement.feedback_url, statement.visit_code)))
        if statement.visit_code:
            lines += _centred(words.gettext("Visit code: {code}").format(code=statement.visit_code), columns)

    lines.append(TextLine(""))
    lines += _centred(words.gettext("Your card for next time"), columns)
    lines.append(card_barcode(statement.card_number))
    lines.append(TextLine(""))
    lines += _centred(statement.thank_you or words.gettext("Thank you for your visit!"), columns)
    return Receipt(columns, tuple(lines))


def card_barcode(card_number: str) -> Barcode:
    """EAN-13 when the card is one (check digit verified here), Code 128 otherwise."""
    return Barcode("EAN13" if is_valid_ean13(card_number) else "CODE128", card_number)


def feedback_link(url: str, visit_code: str | None) -> str:
    """``https://shop.example/rate`` + ``AB12`` -> ``https://shop.example/rate?v=AB12``."""
    if not visit_code:
        return url
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), ("v", visit_code)])
    return urlunsplit(parts._replace(query=query))


def format_money(minor: int, currency: str, locale: str) -> str:
    """``250, "EUR", "de_DE"`` -> ``2,50 €``: exact, from integer minor units."""
    if not isinstance(minor, int):
        raise TypeError(f"money is integer minor units, not {minor!r}")
    digits = get_currency_precision(currency)
    return _plain(format_currency(Decimal(minor).scaleb(-digits), currency, locale=_shop_locale(locale)))


# -- words ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wording:
    """The customer's language as far as we have it: gettext plus the Babel locale for dates."""

    translations: gettext.NullTranslations
    locale: Locale

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)


def _wording(language: str) -> Wording:
    wanted = _customer_locale(language)
    for candidate in (str(wanted), wanted.language):
        translations = _catalog(candidate)
        if translations is not None:
            return Wording(translations, wanted)
    return Wording(_catalog(FALLBACK_LANGUAGE) or gettext.NullTranslations(), Locale.parse(FALLBACK_LANGUAGE))


def available_languages() -> list[str]:
    root = files("pos_loyalty") / "translations"
    return sorted(entry.name for entry in root.iterdir() if (entry / "LC_MESSAGES" / f"{CATALOG_DOMAIN}.po").is_file())


@lru_cache(maxsize=None)
def _catalog(language: str) -> gettext.GNUTranslations | None:
    """Compiled in memory from the shipped ``.po``, so an install needs no build step."""
    po = files("pos_loyalty") / "translations" / language / "LC_MESSAGES" / f"{CATALOG_DOMAIN}.po"
    if not po.is_file():
        return None
    with po.open("rb") as source:
        catalog = read_po(source, locale=language, domain=CATALOG_DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def _customer_locale(language: str) -> Locale:
    try:
        return Locale.parse((language or FALLBACK_LANGUAGE).replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return Locale.parse(FALLBACK_LANGUAGE)


@lru_cache(maxsize=64)
def _shop_locale(locale: str) -> Locale:
    try:
        return Locale.parse(locale.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        raise ValueError(f"{locale!r} is not a locale Babel knows") from None


# -- numbers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Money:
    currency: str
    locale: str

    def __call__(self, minor: int) -> str:
        return format_money(minor, self.currency, self.locale)


def _points(points: int) -> str:
    """Points without grouping: ``1240`` reads the same to every customer in every shop."""
    return str(int(points))


def _signed(points: int) -> str:
    return f"+{points}" if points > 0 else str(points)


def _decimal(quantity: Decimal | str | int) -> Decimal:
    try:
        value = Decimal(str(quantity)) if not isinstance(quantity, Decimal) else quantity
    except InvalidOperation:
        raise ValueError(f"{quantity!r} is not a quantity") from None
    if not value.is_finite():
        raise ValueError(f"{quantity!r} is not a quantity")
    return value


# -- fitting text to the paper -------------------------------------------------------------------

_TYPOGRAPHIC = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2009": " ", "\u2007": " ", "\u2212": "-", "\t": " ", "\n": " ", "\r": " "})


def _plain(text: str) -> str:
    """One character per printed cell: composed accents, plain spaces and minus signs."""
    return unicodedata.normalize("NFC", text).translate(_TYPOGRAPHIC)


def _wrap(text: str, width: int, indent: int = 0) -> list[str]:
    pad = " " * indent
    return textwrap.wrap(_plain(text), width, initial_indent=pad, subsequent_indent=pad, break_long_words=True) or [""]


def lay_out_text(
    text: str, columns: int, *, align: Align = "left", bold: bool = False, double: bool = False, indent: int = 0
) -> list[TextLine]:
    """``text`` word-wrapped to the paper, over-long words broken; a double-size line holds
    half as many characters."""
    width = columns // 2 if double else columns
    return [TextLine(line, align, bold, double) for line in _wrap(text, width, indent)]


def _text(text: str, columns: int, *, indent: int = 0, bold: bool = False) -> list[TextLine]:
    return lay_out_text(text, columns, bold=bold, indent=indent)


def _centred(text: str, columns: int, *, bold: bool = False) -> list[TextLine]:
    return lay_out_text(text, columns, align="center", bold=bold)


def _two_columns(left: str, right: str, columns: int, *, indent: int = 0, bold: bool = False) -> list[TextLine]:
    """``left`` wrapped, ``right`` flush right on its first line; a right part too wide to
    share a line gets lines of its own."""
    right = _plain(right)
    room = columns - len(right) - 1
    if room < max(indent + 8, columns // 3):
        return _text(left, columns, indent=indent, bold=bold) + [TextLine(line, "right", bold) for line in _wrap(right, columns)]
    first, *rest = _wrap(left, room, indent)
    return [TextLine(first.ljust(room) + " " + right, bold=bold)] + [TextLine(line, bold=bold) for line in rest]


def _aligned(text: str, align: Align, columns: int) -> str:
    if align == "center":
        return text.center(columns).rstrip()
    if align == "right":
        return text.rjust(columns)
    return text


def _chunks(text: str, columns: int) -> list[str]:
    return [text[i : i + columns] for i in range(0, len(text), columns)] or [""]


def _check_columns(columns: int) -> None:
    if columns < MIN_COLUMNS:
        raise ValueError(f"a receipt needs at least {MIN_COLUMNS} columns, not {columns}")
