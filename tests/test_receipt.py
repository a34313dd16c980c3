"""The receipt as the customer reads it: the sale, and a statement that explains every point."""
from __future__ import annotations

import dataclasses
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_file
from babel.messages.pofile import read_po
from hypothesis import given, settings
from hypothesis import strategies as st

from pos_loyalty.domain import receipt as receipt_module
from pos_loyalty.domain.cards import ean13_check_digit
from pos_loyalty.domain.receipt import (
    AppliedReward,
    Barcode,
    Cut,
    EarnedPoints,
    ItemLine,
    LoyaltyStatement,
    NextReward,
    PointsExpiry,
    QrCode,
    ReceiptData,
    TextLine,
    TierProgress,
    format_money,
    lay_out_loyalty_block,
    lay_out_receipt,
)

CARD = "271234567890" + ean13_check_digit("271234567890")
PAPER_WIDTHS = (32, 42, 48)


def a_statement(**changes) -> LoyaltyStatement:
    statement = LoyaltyStatement(
        preferred_name="Zoë",
        card_number=CARD,
        language="en",
        earned=EarnedPoints(base=45, promotion=10, promotion_name="Double Tuesday", tier=5, bonuses=(("Birthday bonus", 50),)),
        balance_before=1240,
        balance_after=1095,
        redeemed=(AppliedReward("Free coffee", 250, 250),),
        next_reward=NextReward("Free cake", 120),
        tier="Gold",
        tier_progress=TierProgress("Platinum", 3500),
        next_expiry=PointsExpiry(150, date(2025, 6, 30)),
        birthday_week=False,
        feedback_url="https://shop.example/rate",
        visit_code="K7Q2",
    )
    return dataclasses.replace(statement, **changes)


def a_sale(**changes) -> ReceiptData:
    sale = ReceiptData(
        shop_name="Bäckerei Sonnenschein",
        shop_address=("Hauptstraße 12", "10115 Berlin"),
        transaction_id="T-000123",
        time=datetime(2025, 3, 5, 13, 15, tzinfo=timezone.utc),
        timezone="Europe/Berlin",
        till="2",
        cashier="Anna",
        currency="EUR",
        locale="de_DE",
        items=(
            ItemLine("Crème brûlée", "CB1", "2", 250, 50, 450),
            ItemLine("Walnut sourdough", "WS1", "0.255", 1290, 0, 329),
            ItemLine("Coffee", "C1", 1, 250, 0, 250),
        ),
        subtotal_minor=1029,
        total_minor=779,
        rewards=(AppliedReward("Free coffee", 250, 250),),
        loyalty=a_statement(),
    )
    return dataclasses.replace(sale, **changes)


def statement_text(statement: LoyaltyStatement, *, columns: int = 48, locale: str = "en_GB", currency: str = "GBP") -> str:
    return lay_out_loyalty_block(statement, columns=columns, locale=locale, currency=currency).as_text()


def squeezed(text: str) -> str:
    """Lines with their padding collapsed, so assertions read like the printed words."""
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


# -- the statement -------------------------------------------------------------------------------


def test_statement_greets_by_preferred_name_and_shows_only_the_last_four_card_digits():
    block = lay_out_loyalty_block(a_statement(), columns=42, locale="en_GB", currency="GBP")
    words = [element.text for element in block.elements if isinstance(element, TextLine)]

    assert "Hello Zoë!" in words
    assert f"Card {'*' * 9}{CARD[-4:]}" in words
    assert not [text for text in words if CARD in text]  # only the barcode carries it whole


def test_statement_explains_every_point_earned_and_what_was_redeemed():
    text = squeezed(statement_text(a_statement()))

    assert "Points earned today +110" in text
    assert "Base points +45" in text
    assert "Promotion: Double Tuesday +10" in text
    assert "Tier bonus (Gold) +5" in text
    assert "Birthday bonus +50" in text
    assert "Points redeemed -250" in text
    assert "Free coffee -250" in text
    assert "Balance before 1240" in text
    assert "Balance now 1095" in text


def test_a_bonus_label_the_catalogs_do_not_know_is_printed_as_the_shop_wrote_it():
    statement = a_statement(language="de", earned=EarnedPoints(base=10, bonuses=(("Sommerfest", 20), ("", 5))))
    text = squeezed(statement_text(statement))

    assert "Sommerfest +20" in text
    assert "Project-Id-Version" not in text


def test_parts_worth_nothing_are_left_out_and_a_visit_without_points_still_shows_the_balance():
    text = squeezed(statement_text(a_statement(earned=EarnedPoints(base=0), redeemed=())))

    assert "Points earned" not in text and "Points redeemed" not in text
    assert "Balance now 1095" in text


def test_progress_to_the_next_reward_and_the_next_tier():
    text = squeezed(statement_text(a_statement()))

    assert "120 points to Free cake" in text
    assert "Tier: Gold" in text
    assert "Spend £35.00 more to reach Platinum" in text


def test_one_point_to_go_is_singular_and_nothing_to_go_says_the_reward_is_ready():
    assert "1 point to Free cake" in squeezed(statement_text(a_statement(next_reward=NextReward("Free cake", 1))))
    assert "Free cake is yours to take next time" in squeezed(statement_text(a_statement(next_reward=NextReward("Free cake", 0))))


def test_points_about_to_expire_are_printed_with_their_date_in_the_customers_language():
    assert "150 points expire on Jun 30, 2025" in squeezed(statement_text(a_statement()))
    assert "150 Punkte verfallen am 30.06.2025" in squeezed(statement_text(a_statement(language="de")))


def test_birthday_greeting_only_in_birthday_week():
    assert "Happy birthday, Zoë!" in statement_text(a_statement(birthday_week=True))
    assert "birthday," not in statement_text(a_statement(birthday_week=False))


def test_invitation_to_rate_the_visit_is_a_qr_code_with_the_visit_code_and_the_code_as_text():
    block = lay_out_loyalty_block(a_statement(), columns=42, locale="en_GB", currency="GBP")

    assert QrCode("https://shop.example/rate?v=K7Q2") in block.elements
    assert "Visit code: K7Q2" in block.as_text()
    assert "How was your visit?" in block.as_text()


def test_visit_code_joins_a_feedback_url_that_already_has_a_query():
    block = lay_out_loyalty_block(a_statement(feedback_url="https://shop.example/rate?store=7"), columns=42, locale="en_GB", currency="GBP")

    assert QrCode("https://shop.example/rate?store=7&v=K7Q2") in block.elements


def test_no_feedback_url_means_no_invitation():
    block = lay_out_loyalty_block(a_statement(feedback_url=None), columns=42, locale="en_GB", currency="GBP")

    assert not [element for element in block.elements if isinstance(element, QrCode)]
    assert "How was your visit?" not in block.as_text()


@pytest.mark.parametrize(
    ("card", "kind"),
    [
        (CARD, "EAN13"),
        (CARD[:12] + str((int(CARD[12]) + 1) % 10), "CODE128"),
        ("LOY-000123", "CODE128"),
    ],
)
def test_card_is_printed_as_ean13_when_it_is_one_with_a_correct_check_digit_else_code128(card, kind):
    block = lay_out_loyalty_block(a_statement(card_number=card), columns=42, locale="en_GB", currency="GBP")

    assert Barcode(kind, card) in block.elements


def test_ean13_card_barcode_carries_the_check_digit_we_computed():
    (barcode,) = [e for e in lay_out_loyalty_block(a_statement(), columns=42, locale="en", currency="EUR").elements if isinstance(e, Barcode)]

    assert barcode.data == "2712345678902"
    assert barcode.data[12] == ean13_check_digit(barcode.data[:12])


def test_statement_in_german_when_the_customer_speaks_german():
    text = squeezed(statement_text(a_statement(language="de", birthday_week=True), locale="de_DE", currency="EUR"))

    for expected in (
        "Hallo Zoë!",
        "Heute gesammelte Punkte +110",
        "Grundpunkte +45",
        "Aktion: Double Tuesday +10",
        "Stufenbonus (Gold) +5",
        "Geburtstagsbonus +50",
        "Eingelöste Punkte -250",
        "Punktestand vorher 1240",
        "Punktestand jetzt 1095",
        "Noch 120 Punkte bis Free cake",
        "Noch 35,00 € Einkauf bis Platinum",
        "Alles Gute zum Geburtstag, Zoë!",
        "Besuchscode: K7Q2",
        "Ihre Karte für das nächste Mal",
    ):
        assert expected in text


@pytest.mark.parametrize("language", ["de_AT", "de-CH", "DE"])
def test_regional_german_uses_the_german_catalog(language):
    assert "Hallo Zoë!" in statement_text(a_statement(language=language))


@pytest.mark.parametrize("language", ["fr", "xx", ""])
def test_a_language_without_a_catalog_falls_back_to_english(language):
    text = squeezed(statement_text(a_statement(language=language)))

    assert "Hello Zoë!" in text
    assert "150 points expire on Jun 30, 2025" in text


# -- the sale ------------------------------------------------------------------------------------


def test_receipt_lists_the_sale_with_german_money_and_the_statement_in_the_customers_language():
    text = squeezed(lay_out_receipt(a_sale(loyalty=a_statement(language="de")), columns=42).as_text())

    assert "Crème brûlée 5,00 €" in text
    assert "2 × 2,50 €" in text
    assert "Rabatt -0,50 €" in text
    assert "0,255 × 12,90 €" in text
    assert "Coffee 2,50 €" in text
    assert "Zwischensumme 10,29 €" in text
    assert "Free coffee (250 Punkte) -2,50 €" in text
    assert "Summe 7,79 €" in text
    assert "Beleg T-000123" in text
    assert "05.03.25, 14:15 Kasse 2" in text  # 13:15 UTC is 14:15 in Berlin
    assert "Hallo Zoë!" in text


def test_an_item_bought_once_has_no_quantity_line():
    lines = lay_out_receipt(a_sale(), columns=42).text_lines()
    coffee = next(i for i, line in enumerate(lines) if line.startswith("Coffee"))

    assert "×" not in lines[coffee + 1]


def test_total_is_bold_and_the_shop_name_is_double_size_and_centred():
    elements = lay_out_receipt(a_sale(), columns=32).elements
    texts = [e for e in elements if isinstance(e, TextLine)]

    assert next(e for e in texts if e.text.startswith("Total")).bold
    assert texts[:2] == [TextLine("Bäckerei", "center", True, True), TextLine("Sonnenschein", "center", True, True)]


def test_receipt_without_a_card_thanks_the_customer_and_ends_with_a_cut():
    receipt = lay_out_receipt(a_sale(loyalty=None, locale="en_GB", currency="GBP"), columns=42)

    assert "Thank you for your visit!" in receipt.as_text()
    assert "Hello" not in receipt.as_text()
    assert isinstance(receipt.elements[-1], Cut)
    assert not [e for e in receipt.elements if isinstance(e, Barcode)]


def test_receipt_time_must_carry_its_time_zone():
    with pytest.raises(ValueError, match="time zone"):
        a_sale(time=datetime(2025, 3, 5, 13, 15))


@pytest.mark.parametrize(
    ("minor", "currency", "locale", "shown"),
    [
        (250, "EUR", "de_DE", "2,50 €"),
        (-250, "GBP", "en_GB", "-£2.50"),
        (1250, "JPY", "ja_JP", "￥1,250"),
        (1234567, "EUR", "de_DE", "12.345,67 €"),
        (1005, "KWD", "en", "KWD1.005"),
        (1, "EUR", "fr_FR", "0,01 €"),
    ],
)
def test_money_is_formatted_exactly_from_minor_units(minor, currency, locale, shown):
    assert format_money(minor, currency, locale).replace("\xa0", " ") == shown


def test_quantities_keep_every_digit_they_were_given():
    item = ItemLine("Cheese", None, "0.2555", 2000, 0, 511)

    assert item.quantity == Decimal("0.2555")
    assert "0,2555 × 20,00 €" in lay_out_receipt(a_sale(items=(item,)), columns=42).as_text()


def test_a_quantity_that_is_not_a_number_is_refused():
    with pytest.raises(ValueError):
        ItemLine("Cheese", None, "two", 2000, 0, 4000)


# -- fitting the paper ---------------------------------------------------------------------------


def assert_fits(receipt, columns):
    for element in receipt.elements:
        if isinstance(element, TextLine):
            assert element.width <= columns, element
    for line in receipt.text_lines():
        assert len(line) <= columns, line


@pytest.mark.parametrize("columns", PAPER_WIDTHS)
def test_long_names_and_descriptions_wrap_within_the_paper(columns):
    long_word = "Donaudampfschifffahrtsgesellschaftskapitänsmütze"
    sale = a_sale(
        shop_name="Konditorei und Café zur Goldenen Brezel am Alten Marktplatz",
        items=(ItemLine(f"Handmade {long_word} with extra cream and a very long name", None, "12", 123456, 10000, 1471472),),
        loyalty=a_statement(preferred_name="Maximiliane Zoë Müller-Lüdenscheidt", language="de", birthday_week=True),
    )
    receipt = lay_out_receipt(sale, columns=columns)

    assert_fits(receipt, columns)
    lines = receipt.text_lines()
    first = next(i for i, line in enumerate(lines) if line.startswith("Handmade"))
    last = next(i for i, line in enumerate(lines) if "12 ×" in line)
    description = "".join(lines[first:last]).replace("14.814,72 €", "")
    assert long_word in "".join(description.split())  # broken across lines, nothing cut off


latin_text = st.text(st.characters(max_codepoint=0x24F, categories=("L", "N", "P", "Zs")), max_size=120)


@settings(max_examples=60, deadline=None)
@given(name=latin_text, description=latin_text, shop=latin_text, reward=latin_text, columns=st.sampled_from(PAPER_WIDTHS))
def test_no_line_ever_overflows_the_paper(name, description, shop, reward, columns):
    sale = a_sale(
        shop_name=shop,
        items=(ItemLine(description, None, "3", 999999, 0, 2999997),),
        rewards=(AppliedReward(reward, 99999, 999999),),
        loyalty=a_statement(preferred_name=name, next_reward=NextReward(reward, 5), birthday_week=True, thank_you=description),
    )

    assert_fits(lay_out_receipt(sale, columns=columns), columns)


def test_a_reprinted_receipt_says_it_is_a_copy_in_the_customers_language():
    original = lay_out_receipt(a_sale(), columns=42).as_text()
    copy = lay_out_receipt(a_sale(copy=True), columns=42).as_text()
    assert "COPY" not in original
    assert copy.replace(f"{'*** COPY ***':^42}".rstrip() + "\n", "", 1) == original  # one line more, centred, and nothing else
    german = lay_out_receipt(a_sale(copy=True, loyalty=dataclasses.replace(a_statement(), language="de")), columns=42).as_text()
    assert "*** KOPIE ***" in german and "COPY" not in german


def test_paper_narrower_than_a_receipt_can_use_is_refused():
    with pytest.raises(ValueError, match="columns"):
        lay_out_receipt(a_sale(), columns=20)


# -- the catalogs --------------------------------------------------------------------------------


def catalog_path(language: str) -> Path:
    return Path(receipt_module.__file__).parent.parent / "translations" / language / "LC_MESSAGES" / "receipt.po"


def test_english_and_german_catalogs_translate_every_message_the_receipt_uses():
    used = {message for _, message, _, _ in extract_from_file("python", receipt_module.__file__, keywords=DEFAULT_KEYWORDS)}
    used = {m if isinstance(m, str) else m[0] for m in used}

    for language in ("en", "de"):
        with catalog_path(language).open("rb") as source:
            catalog = read_po(source)
        translated = {message.id if isinstance(message.id, str) else message.id[0] for message in catalog if message.id and message.string}
        assert used <= translated, f"{language} lacks {used - translated}"
        assert not [message.id for message in catalog if message.id and message.fuzzy]


def test_shipped_languages_include_english_and_german():
    assert {"en", "de"} <= set(receipt_module.available_languages())
