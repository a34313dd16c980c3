"""What the services depend on: something that delivers scans, or nothing at all."""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from drivers.scanner.scan import Scan
from drivers.scanner.serial_scanner import RetryDelays, SerialScanner, StatusCallback


@runtime_checkable
class ScannerSource(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class NoScanner:
    """The till without a serial scanner: keyboard-wedge scanners type into the cashier screen."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def scanner_for(
    url: str | None,
    on_scan: Callable[[Scan], None],
    *,
    on_status: StatusCallback | None = None,
    baudrate: int = 9600,
    retry: RetryDelays = RetryDelays(),
) -> ScannerSource:
    """The scanner named in configuration, or NoScanner when none is configured."""
    if not url:
        return NoScanner()
    return SerialScanner(url, on_scan, on_status=on_status, baudrate=baudrate, retry=retry)
