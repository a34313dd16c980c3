"""One receipt: laid out (``domain.receipt``) and rendered to ESC/POS bytes (``drivers.printer``,
into python-escpos's ``Dummy``), from the answer a real checkout returned.

The limit beside it: the same receipt's text lines encoded to the printer's code page, which is
what producing its bytes costs with no layout and no ESC/POS commands.
"""
from __future__ import annotations

import contextlib
import io
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

from escpos.printer import Dummy

from drivers.printer import loyalty_block_bytes, render_escpos
from pos_loyalty.services import receipts
from pos_loyalty.services.context import Shop

from . import shop_model as S
from .measure import Timings, time_calls

PROFILE = "TM-T88V"


def time_receipts(answer: dict[str, Any], *, count: int, max_seconds: float) -> dict[str, Any]:
    """python-escpos prints a line to standard output for every barcode; it goes nowhere here."""
    with contextlib.redirect_stdout(io.StringIO()):
        return _time_receipts(answer, count=count, max_seconds=max_seconds)


def _time_receipts(answer: dict[str, Any], *, count: int, max_seconds: float) -> dict[str, Any]:
    shop = Shop(uow=None, timezone=ZoneInfo(S.TIMEZONE), currency=S.CURRENCY, locale=S.LOCALE,  # type: ignore[arg-type]
                card_prefix=S.CARD_PREFIX, shop_name="Bench Delicatessen")
    options = receipts.ReceiptOptions(columns=42, feedback_url="https://example.invalid/rate",
                                      shop_address=("Marktstraße 1", "10115 Berlin"))
    out: dict[str, Any] = {}
    # the stored answer stands in for the database read (and the promotion's name, which comes
    # from the programme version), so only layout and rendering are timed
    with mock.patch.object(receipts, "_view", lambda _shop, _id: (answer, None)):
        receipt = receipts.receipt_for(shop, answer["id"], options)
        block = receipts.loyalty_block_for(shop, answer["id"], options)

        def lay_out_and_render(_: int) -> bytes:
            printer = Dummy(profile=PROFILE)
            render_escpos(receipts.receipt_for(shop, answer["id"], options), printer)
            return printer.output

        out["receipt"] = time_calls(lay_out_and_render, count=count, max_seconds=max_seconds)
        out["lay_out"] = time_calls(lambda _: receipts.receipt_for(shop, answer["id"], options), count=count, max_seconds=max_seconds)

    def render(_: int) -> bytes:
        printer = Dummy(profile=PROFILE)
        render_escpos(receipt, printer)
        return printer.output

    out["render"] = time_calls(render, count=count, max_seconds=max_seconds)
    out["loyalty_block"] = time_calls(lambda _: loyalty_block_bytes(block, PROFILE), count=count, max_seconds=max_seconds)
    text = receipt.as_text()
    out["floor"] = time_calls(lambda _: text.encode("cp858", errors="replace"), count=count, max_seconds=max_seconds)
    out["lines"] = len(receipt.text_lines())
    out["bytes"] = len(render(0))
    return out


def summary(results: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.summary() if isinstance(v, Timings) else v) for k, v in results.items()}
