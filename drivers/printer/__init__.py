"""The receipt printer: ESC/POS through python-escpos over network, serial, USB or a device file."""
import os
import tempfile

# python-escpos caches its parsed printer capabilities in a pickle, by default in a NEW temporary
# directory on every start (0.3 s of parsing and a stray directory each time). Keep one cache.
_cache = os.path.join(tempfile.gettempdir(), f"pos-loyalty-escpos-{os.getuid()}")
os.makedirs(_cache, mode=0o700, exist_ok=True)
os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", _cache)

from drivers.printer.connection import (  # noqa: E402  (after the cache is set)
    DEFAULT_TIMEOUT,
    PrinterError,
    open_printer,
    parse_printer_url,
    print_receipt,
    printer_status,
)
from drivers.printer.render import DEFAULT_CODE_PAGE, loyalty_block_bytes, render_escpos
from drivers.printer.testpage import test_page

__all__ = [
    "DEFAULT_CODE_PAGE",
    "DEFAULT_TIMEOUT",
    "PrinterError",
    "loyalty_block_bytes",
    "open_printer",
    "parse_printer_url",
    "print_receipt",
    "printer_status",
    "render_escpos",
    "test_page",
]
