"""What a scan is, and how the till tells a loyalty card from a product barcode."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from pos_loyalty.domain.cards import check_card_number, is_valid_ean13

ScanKind = Literal["card", "product", "invalid"]

_AIM_ID = re.compile(r"\](?P<code>[A-Za-z])(?P<modifier>[0-9A-Za-z])")
_EDGE_NOISE = "".join(map(chr, range(33))) + "\x7f"

_SYMBOLOGY_BY_AIM_ID = {
    "]E0": "ean13",
    "]E4": "ean8",
    "]C1": "gs1-128",
}
_SYMBOLOGY_BY_AIM_CODE = {
    "A": "code39",
    "C": "code128",
    "E": "ean-upc",
    "F": "codabar",
    "G": "code93",
    "I": "itf",
    "L": "pdf417",
    "Q": "qr",
    "d": "datamatrix",
    "e": "gs1-databar",
}


@dataclass(frozen=True)
class Scan:
    """One barcode read by the scanner.

    ``symbology`` is a short name (``ean13``, ``code128``, ...) when the scanner sent an AIM
    identifier, the raw identifier when we do not know its name, and None when it sent none.
    """

    code: str
    symbology: str | None
    at: datetime
    aim_id: str | None = None


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def symbology_for(aim_id: str) -> str:
    return _SYMBOLOGY_BY_AIM_ID.get(aim_id) or _SYMBOLOGY_BY_AIM_CODE.get(aim_id[1], aim_id)


def read_scan(raw: bytes, *, at: datetime, aim_ids: bool = True) -> Scan | None:
    """The scan in one line from the scanner, or None for an empty line.

    Scanners speak ASCII; latin-1 decodes every byte, so line noise becomes odd characters
    rather than an error. Control characters and spaces around the code are dropped.
    """
    text = raw.decode("latin-1").strip(_EDGE_NOISE)
    aim_id = None
    if aim_ids and (found := _AIM_ID.match(text)):
        aim_id = found.group(0)
        text = text[found.end():].strip(_EDGE_NOISE)
    if not text:
        return None
    return Scan(code=text, symbology=symbology_for(aim_id) if aim_id else None, at=at, aim_id=aim_id)


def never_a_card(code: str) -> bool:
    return False


def classify_scan(code: str, *, store_prefix: str, known_card: Callable[[str], bool] = never_a_card) -> ScanKind:
    """``card`` for a loyalty card, ``product`` for anything the till should treat as an item.

    A card is an EAN-13 in the in-store prefix with a correct check digit, or an imported
    Code 128 number that ``known_card`` recognises. Thirteen digits with a wrong check digit are
    ``invalid``: a misread, never a card and never a product.
    """
    if len(code) == 13 and code.isdigit():
        if not is_valid_ean13(code):
            return "invalid"
        return "card" if code.startswith(store_prefix) else "product"
    if check_card_number(code).ok and known_card(code):
        return "card"
    return "product"
