"""Loyalty card numbers: EAN-13 in the in-store range, or imported Code 128 strings."""
from __future__ import annotations

import secrets
from dataclasses import dataclass

CODE128_MAX = 32


def ean13_check_digit(first12: str) -> str:
    """The EAN-13 check digit for twelve digits (weights 1,3,1,3,... from the left)."""
    if len(first12) != 12 or not first12.isdigit():
        raise ValueError("an EAN-13 body is twelve digits")
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return str((10 - total % 10) % 10)


def is_valid_ean13(code: str) -> bool:
    return len(code) == 13 and code.isdigit() and ean13_check_digit(code[:12]) == code[12]


def new_card_number(prefix: str) -> str:
    """A fresh in-store EAN-13: the two-digit prefix (20-29), ten random digits, the check digit."""
    body = prefix + f"{secrets.randbelow(10**10):010d}"
    return body + ean13_check_digit(body)


def is_printable_code128(code: str) -> bool:
    return 0 < len(code) <= CODE128_MAX and all(32 < ord(c) < 127 for c in code)


@dataclass(frozen=True)
class CardCheck:
    ok: bool
    kind: str | None = None  # "ean13" | "code128"
    problem: str | None = None


def check_card_number(code: str) -> CardCheck:
    """Is this a number we would accept as a loyalty card (on enrolment or import)?

    Thirteen digits must carry a correct EAN-13 check digit; anything else must be a Code 128
    string of up to 32 printable characters without spaces.
    """
    if code.isdigit() and len(code) == 13:
        if is_valid_ean13(code):
            return CardCheck(True, "ean13")
        return CardCheck(False, problem="the EAN-13 check digit is wrong")
    if is_printable_code128(code):
        return CardCheck(True, "code128")
    return CardCheck(False, problem=f"a card number is an EAN-13 or up to {CODE128_MAX} printable characters without spaces")


def looks_like_store_card(code: str, prefix: str) -> bool:
    """A scanned EAN-13 in our in-store range: the scanner uses this to ignore product barcodes."""
    return is_valid_ean13(code) and code.startswith(prefix)


def mask_card_number(number: str, visible: int = 4) -> str:
    """``2712345678905`` -> ``*********8905``: what a receipt or a log line may show."""
    if len(number) <= visible:
        return "*" * len(number)
    return "*" * (len(number) - visible) + number[-visible:]
