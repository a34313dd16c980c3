"""Cutting the scanner's byte stream into scans."""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime

from serial.threaded import Protocol

from drivers.scanner.scan import Scan, read_scan, utc_now

log = logging.getLogger(__name__)

_LINE_END = re.compile(rb"[\r\n]")
LONGEST_SCAN = 4096


class ScanLines(Protocol):
    """A pyserial protocol that hands each scan to ``on_scan``.

    A scan ends in CR, LF or CRLF. The LF of a CRLF may arrive in a later read; it then ends an
    empty line, and empty lines are ignored, so it never makes an extra scan. Bytes that never
    meet a line end are dropped past ``LONGEST_SCAN`` so noise cannot grow the buffer forever.
    """

    def __init__(
        self,
        on_scan: Callable[[Scan], None],
        *,
        clock: Callable[[], datetime] = utc_now,
        aim_ids: bool = True,
    ) -> None:
        self.on_scan = on_scan
        self.clock = clock
        self.aim_ids = aim_ids
        self.lost_because: BaseException | None = None
        self._pending = bytearray()

    def connection_made(self, transport: object) -> None:
        self._pending.clear()

    def data_received(self, data: bytes) -> None:
        self._pending.extend(data)
        *lines, rest = _LINE_END.split(bytes(self._pending))
        self._pending = bytearray(rest if len(rest) <= LONGEST_SCAN else b"")
        for line in lines:
            scan = read_scan(line, at=self.clock(), aim_ids=self.aim_ids)
            if scan is None:
                continue
            try:
                self.on_scan(scan)
            except Exception:
                log.exception("the scan callback failed; the scanner keeps reading")

    def connection_lost(self, exc: BaseException | None) -> None:
        """Remember why, instead of raising in the reader thread; the scanner decides what next."""
        self.lost_because = exc
