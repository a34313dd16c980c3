"""Serial and USB-CDC barcode scanners (pyserial). Imports no flask or sqlalchemy."""
from drivers.scanner.listen import listen
from drivers.scanner.scan import Scan, ScanKind, classify_scan, read_scan
from drivers.scanner.scan_lines import ScanLines
from drivers.scanner.serial_scanner import (
    BUSY,
    CONNECTED,
    DISCONNECTED,
    STOPPED,
    WAITING,
    RetryDelays,
    ScannerBusy,
    ScannerError,
    SerialScanner,
    open_scanner_port,
)
from drivers.scanner.source import NoScanner, ScannerSource, scanner_for

__all__ = [
    "BUSY",
    "CONNECTED",
    "DISCONNECTED",
    "STOPPED",
    "WAITING",
    "NoScanner",
    "RetryDelays",
    "Scan",
    "ScanKind",
    "ScanLines",
    "ScannerBusy",
    "ScannerError",
    "ScannerSource",
    "SerialScanner",
    "classify_scan",
    "listen",
    "open_scanner_port",
    "read_scan",
]
