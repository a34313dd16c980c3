"""The page ``pos-loyalty printer test`` prints: does every column, character and code come out?"""
from __future__ import annotations

from pos_loyalty.domain.cards import ean13_check_digit
from pos_loyalty.domain.receipt import Barcode, Cut, QrCode, Receipt, Rule, TextLine, lay_out_text

SAMPLE_CARD_BODY = "270000000001"
SAMPLE_CHARACTERS = "€ £ ÄÖÜ äöüß éèêàç ñ ×"


def test_page(shop_name: str, columns: int) -> Receipt:
    """Shop name at double size, a column ruler the exact paper width, the currency and accented
    characters the receipts use, each alignment, both barcode kinds and a QR code, then a cut."""
    ruler = "".join(str(i % 10) for i in range(1, columns + 1))
    elements = [
        *lay_out_text(shop_name, columns, align="center", bold=True, double=True),
        TextLine("Printer test", "center", bold=True),
        Rule(),
        TextLine(ruler),
        TextLine(f"{columns} columns"),
        *lay_out_text(SAMPLE_CHARACTERS, columns),
        TextLine("left"),
        TextLine("centre", "center"),
        TextLine("right", "right"),
        TextLine("bold", bold=True),
        Rule(),
        Barcode("EAN13", SAMPLE_CARD_BODY + ean13_check_digit(SAMPLE_CARD_BODY)),
        Barcode("CODE128", "POS-LOYALTY"),
        QrCode("https://example.invalid/printer-test"),
        TextLine("End of test", "center"),
        TextLine(""),
        Cut(),
    ]
    return Receipt(columns, tuple(elements))


test_page.__test__ = False  # a page builder, not a pytest test, wherever it is imported
