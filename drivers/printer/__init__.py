"""The receipt printer: ESC/POS through python-escpos over network, serial, USB or a device file."""
import os
import pickle
import platform
import tempfile
from importlib.util import find_spec

# python-escpos caches its parsed printer capabilities in a pickle, by default in a NEW temporary
# directory on every start (0.3 s of parsing and a stray directory each time). Keep one cache.
_cache = os.path.join(tempfile.gettempdir(), f"pos-loyalty-escpos-{os.getuid()}")
os.makedirs(_cache, mode=0o700, exist_ok=True)
os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", _cache)


def _prepare_capabilities_cache() -> None:
    """Write python-escpos's pickle ourselves, whole, before it looks for one. It writes the file
    in place (open, truncate, dump), so a second process starting meanwhile (the server and a
    command, two test workers) read it half-written and failed to start (EOFError). Written to a
    temporary file and renamed, it is always either absent, stale or whole; escpos then only reads
    it. The parse is escpos's own (YAML's safe loader over its capabilities file)."""
    if "ESCPOS_CAPABILITIES_FILE" in os.environ:
        return  # a shop's own capabilities file: escpos's own handling
    spec = find_spec("escpos")
    if spec is None or not spec.submodule_search_locations:
        return
    source = os.path.join(spec.submodule_search_locations[0], "capabilities.json")
    target = os.path.join(os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"], f"{platform.python_version()}.capabilities.pickle")
    try:
        if os.path.exists(target) and os.path.getmtime(target) >= os.path.getmtime(source):
            return
        import yaml

        with open(source) as fh:
            capabilities = yaml.safe_load(fh)
        fd, scratch = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".capabilities-")
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(capabilities, fh, protocol=2)
            os.replace(scratch, target)
        finally:
            if os.path.exists(scratch):
                os.unlink(scratch)
    except OSError:
        pass  # (escpos parses the file itself, as without a cache)


_prepare_capabilities_cache()

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
