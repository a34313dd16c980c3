"""``pos-loyalty scanner listen``: watch what the scanner sends, for setting one up."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TextIO

from pos_loyalty.domain.cards import mask_card_number

from drivers.scanner.scan import Scan, classify_scan, never_a_card
from drivers.scanner.serial_scanner import RetryDelays, SerialScanner


def listen(
    url: str,
    out: TextIO,
    *,
    store_prefix: str,
    stop: threading.Event | None = None,
    known_card: Callable[[str], bool] = never_a_card,
    baudrate: int = 9600,
    retry: RetryDelays = RetryDelays(),
) -> None:
    """Print one line per scan and per change of scanner status until ``stop`` is set or Ctrl-C.

    Card numbers are masked, as in any log. Raises ScannerBusy if this process already reads ``url``.
    """
    stop = stop or threading.Event()
    printing = threading.Lock()

    def say(line: str) -> None:
        with printing:
            out.write(line + "\n")
            out.flush()

    def print_scan(scan: Scan) -> None:
        kind = classify_scan(scan.code, store_prefix=store_prefix, known_card=known_card)
        code = mask_card_number(scan.code) if kind == "card" else scan.code
        say(f"{scan.at.astimezone():%H:%M:%S}  {scan.symbology or '-'}  {code}  {kind}")

    def print_status(status: str, detail: str) -> None:
        say(f"scanner {status}: {detail}")

    scanner = SerialScanner(url, print_scan, on_status=print_status, baudrate=baudrate, retry=retry)
    scanner.start()
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        scanner.stop()
