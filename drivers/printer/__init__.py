"""The receipt printer: ESC/POS through python-escpos over network, serial, USB or a device file."""
from drivers.printer.connection import (
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
