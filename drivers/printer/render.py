"""A laid-out :class:`Receipt` in ESC/POS, through python-escpos."""
from __future__ import annotations

import unicodedata

from escpos.escpos import Escpos
from escpos.printer import Dummy

from pos_loyalty.domain.cards import is_valid_ean13
from pos_loyalty.domain.receipt import Barcode, Cut, QrCode, Receipt, Rule, TextLine

DEFAULT_CODE_PAGE = "CP858"
"""Latin-1 with € (0xD5): the Western European page Epson-compatible printers all carry."""

DOTS_PER_COLUMN = 12
_CODE128_SET_B = "{B"
_STAND_INS = {"×": "x", "’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "."}


def render_escpos(receipt: Receipt, printer: Escpos, *, code_page: str = DEFAULT_CODE_PAGE, reset: bool = True) -> None:
    """Send ``receipt`` to ``printer``: after ``ESC @`` (unless ``reset`` is off, for a block
    appended to someone else's receipt), in ``code_page`` and nothing else."""
    if reset:
        printer.hw("INIT")
    select_code_page(printer, code_page)
    for element in receipt.elements:
        if isinstance(element, TextLine):
            printer.set(align=element.align, bold=element.bold, normal_textsize=not element.double, double_width=element.double, double_height=element.double)
            printer.textln(printable(element.text, printer, code_page))
        elif isinstance(element, Rule):
            printer.set(align="left", bold=False, normal_textsize=True)
            printer.textln(printable(element.char, printer, code_page) * receipt.columns)
        elif isinstance(element, Barcode):
            _print_barcode(element, printer, receipt.columns, code_page)
        elif isinstance(element, QrCode):
            _print_qr(element, printer, receipt.columns)
        elif isinstance(element, Cut):
            printer.cut()
    printer.set(align="left", bold=False, normal_textsize=True)


def select_code_page(printer: Escpos, code_page: str) -> None:
    """Choose the character table explicitly, every time.

    ``ESC @`` returns the printer to its power-on table, but python-escpos 3.1 still believes its
    last choice holds and would skip ``ESC t``: € and accents would print from the wrong table.
    Forgetting that belief makes ``charcode`` send ``ESC t n`` again; the encoder is then fixed
    to this one page instead of guessing a page per character.
    """
    encoding = printer.magic.encoder.get_encoding_name(code_page)
    printer.magic.encoding = None
    printer.charcode(encoding)


def printable(text: str, printer: Escpos, code_page: str) -> str:
    """Characters the code page lacks become their unaccented letter, or a plain stand-in,
    or ``?`` — one cell for one cell, so the layout still fits."""
    encoder = printer.magic.encoder
    encoding = encoder.get_encoding_name(code_page)
    out = []
    for char in text:
        if encoder.can_encode(encoding, char):
            out.append(char)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
        if len(base) == 1 and encoder.can_encode(encoding, base):
            out.append(base)
        else:
            out.append(_STAND_INS.get(char, "?"))
    return "".join(out)


def loyalty_block_bytes(receipt: Receipt, profile: str, *, code_page: str = DEFAULT_CODE_PAGE) -> bytes:
    """The points statement as ESC/POS bytes for a till that appends it to its own receipt.

    No ``ESC @`` (that would throw away what the till has buffered) and no cut; the block
    selects its code page itself and leaves the printer left-aligned, normal size, not bold —
    and on ``code_page``, which the till must reselect if it prints more of its own text.
    """
    printer = Dummy(profile=profile)
    render_escpos(receipt, printer, code_page=code_page, reset=False)
    return printer.output


def _print_barcode(barcode: Barcode, printer: Escpos, columns: int, code_page: str) -> None:
    """Our own check first, then ``check=False``: python-escpos only checks length and digits.
    A code too wide for the paper is printed as text so the cashier can type it."""
    if barcode.kind == "EAN13":
        if not is_valid_ean13(barcode.data):
            raise ValueError(f"{barcode.data!r} is not an EAN-13 with a correct check digit")
        code, modules = barcode.data, 95
    else:
        if not barcode.data or not all(32 <= ord(c) < 127 for c in barcode.data):
            raise ValueError(f"{barcode.data!r} cannot be printed as Code 128")
        code, modules = _CODE128_SET_B + barcode.data, 11 * (len(barcode.data) + 3) + 2
    dots = _printable_dots(printer, columns)
    width = 3 if modules * 3 <= dots else 2
    if modules * width > dots:
        printer.set(align="center", bold=False, normal_textsize=True)
        printer.textln(printable(barcode.data, printer, code_page))
        return
    printer.set(align="center", bold=False, normal_textsize=True)
    printer.barcode(code, barcode.kind, height=64, width=width, pos="BELOW", font="A", align_ct=True, check=False)
    printer.ln()


def _print_qr(qr: QrCode, printer: Escpos, columns: int) -> None:
    printer.set(align="center", bold=False, normal_textsize=True)
    size = 4 if columns < 42 else 5
    if printer.profile.supports("qrCode"):
        printer.qr(qr.url, size=size, native=True)
        printer.ln()
    else:
        printer.qr(qr.url, size=size, native=False, center=True)


def _printable_dots(printer: Escpos, columns: int) -> int:
    try:
        profile_dots = int(printer.profile.profile_data["media"]["width"]["pixels"])
    except (KeyError, TypeError, ValueError):
        profile_dots = columns * DOTS_PER_COLUMN
    return min(profile_dots, columns * DOTS_PER_COLUMN)
