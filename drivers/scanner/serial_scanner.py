"""A serial or USB-CDC barcode scanner that survives being unplugged."""
from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import serial
from serial.threaded import ReaderThread

from drivers.scanner.scan import Scan, utc_now
from drivers.scanner.scan_lines import ScanLines

log = logging.getLogger(__name__)

StatusCallback = Callable[[str, str], None]
PortOpener = Callable[[str], serial.SerialBase]

CONNECTED = "connected"
DISCONNECTED = "disconnected"
WAITING = "waiting"
BUSY = "busy"
STOPPED = "stopped"

_LOCKED_ERRNOS = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY}


class ScannerError(Exception):
    pass


class ScannerBusy(ScannerError):
    pass


@dataclass(frozen=True)
class RetryDelays:
    """How long to wait between attempts to reopen a scanner that is missing."""

    first: float = 0.5
    cap: float = 10.0

    def __iter__(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(delay * 2, self.cap)


def open_scanner_port(url: str, *, baudrate: int = 9600) -> serial.SerialBase:
    """Open any pyserial URL or device path, locked against other programs where the OS allows."""
    return serial.serial_for_url(url, baudrate=baudrate, timeout=None, exclusive=True)


class _PortsInUse:
    """The ports read in this process: flock does not stop a second reader everywhere."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: set[str] = set()

    @staticmethod
    def keys_for(url: str) -> frozenset[str]:
        if "://" in url:
            return frozenset({url})
        return frozenset({url, os.path.realpath(url)})

    def claim(self, url: str) -> frozenset[str]:
        keys = self.keys_for(url)
        with self._lock:
            if keys & self._keys:
                raise ScannerBusy(f"{url} is already being read by another reader")
            self._keys |= keys
        return keys

    def release(self, keys: frozenset[str]) -> None:
        with self._lock:
            self._keys -= keys


ports_in_use = _PortsInUse()


class _ScannerReaderThread(ReaderThread):
    """pyserial's ReaderThread, also ending cleanly when the device vanishes between reads.

    Its loop asks ``in_waiting`` outside its error handling; on an unplugged USB-CDC device or a
    hung-up tty that raises OSError, which would kill the thread without telling the protocol.
    """

    def run(self) -> None:
        try:
            super().run()
        except OSError as exc:
            self.alive = False
            if self.protocol is not None:
                self.protocol.connection_lost(exc)
                self.protocol = None


class SerialScanner:
    """Reads scans from one port until stopped, reopening it whenever the device comes back.

    ``on_scan`` runs on the reader's thread, one scan at a time; ``on_status`` runs on the
    scanner's own thread with ``connected``, ``disconnected``, ``waiting``, ``busy`` or ``stopped``
    and a human-readable detail. Neither may block for long: the next scan waits behind them.
    """

    def __init__(
        self,
        url: str,
        on_scan: Callable[[Scan], None],
        *,
        on_status: StatusCallback | None = None,
        baudrate: int = 9600,
        retry: RetryDelays = RetryDelays(),
        open_port: PortOpener | None = None,
        clock: Callable[[], datetime] = utc_now,
        aim_ids: bool = True,
    ) -> None:
        self.url = url
        self.on_scan = on_scan
        self.on_status = on_status
        self.retry = retry
        self.open_port = open_port or (lambda u: open_scanner_port(u, baudrate=baudrate))
        self.clock = clock
        self.aim_ids = aim_ids
        self.status = STOPPED
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._reader: ReaderThread | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Claim the port and start reading; raises ScannerBusy if this process already reads it.

        A missing device is not an error here: the scanner waits for it in the background.
        """
        if self._thread is not None:
            raise ScannerError(f"the scanner on {self.url} is already started")
        keys = ports_in_use.claim(self.url)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._keep_reading, args=(keys,), name=f"scanner {self.url}", daemon=True)
        try:
            self._thread.start()
        except BaseException:
            ports_in_use.release(keys)
            self._thread = None
            raise

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        with self._lock:
            reader = self._reader
        if reader is not None:
            reader.close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> SerialScanner:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _keep_reading(self, keys: frozenset[str]) -> None:
        """Open, read until lost, wait, repeat; the wait grows while the port keeps failing."""
        try:
            delays = iter(self.retry)
            while not self._stopping.is_set():
                port = self._try_to_open(next(delays))
                if port is None:
                    continue
                connected_at = time.monotonic()
                lost_because = self._read_until_lost(port)
                if self._stopping.is_set():
                    break
                self._report(DISCONNECTED, f"{self.url}: {lost_because or 'the port closed'}")
                if time.monotonic() - connected_at > self.retry.cap:
                    delays = iter(self.retry)
                self._stopping.wait(next(delays))
        finally:
            ports_in_use.release(keys)
            self._report(STOPPED, self.url)

    def _try_to_open(self, delay_if_missing: float) -> serial.SerialBase | None:
        try:
            return self.open_port(self.url)
        except (serial.SerialException, OSError, ValueError) as exc:
            if getattr(exc, "errno", None) in _LOCKED_ERRNOS:
                self._report(BUSY, f"{self.url} is already being read by another program; retrying")
            else:
                self._report(WAITING, f"cannot open {self.url} ({exc}); retrying")
            log.debug("scanner %s: retrying in %.2fs", self.url, delay_if_missing)
            self._stopping.wait(delay_if_missing)
            return None

    def _read_until_lost(self, port: serial.SerialBase) -> BaseException | None:
        protocol = ScanLines(self.on_scan, clock=self.clock, aim_ids=self.aim_ids)
        reader = _ScannerReaderThread(port, lambda: protocol)
        reader.name = f"scanner reader {self.url}"
        with self._lock:
            if self._stopping.is_set():
                port.close()
                return None
            self._reader = reader
            reader.start()
        self._report(CONNECTED, self.url)
        reader.join()
        with self._lock:
            self._reader = None
        reader.close()
        return protocol.lost_because

    def _report(self, status: str, detail: str) -> None:
        if status == self.status and status in (WAITING, BUSY):
            return
        self.status = status
        log.info("scanner %s: %s", status, detail)
        if self.on_status is not None:
            try:
                self.on_status(status, detail)
            except Exception:
                log.exception("the scanner status callback failed")
