"""Reaching the receipt printer named in the till's settings, and telling the till when we can't.

Printer URLs::

    tcp://192.168.1.50:9100          Ethernet/Wi-Fi printer (raw port 9100)
    serial:///dev/ttyUSB0?baudrate=19200
    usb://04b8:0202                  vendor:product id, hex (needs pyusb)
    file:///dev/usb/lp0              a device file the kernel's printer driver provides
    dummy:                           prints nowhere (development)

``?status=off`` skips the paper/online query on printers that cannot answer ``DLE EOT``.

Every backend is bounded by the ``timeout``: connecting, each write and each status read. A
device file has no timeout of its own (a stalled ``/dev/usb/lp0``, or a FIFO nobody reads,
blocks a plain write forever), so :class:`DeviceFile` opens it non-blocking and waits for it to
take data with ``poll``.
"""
from __future__ import annotations

import errno
import os
import select
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

from escpos.capabilities import get_profile
from escpos.constants import RT_STATUS_ONLINE, RT_STATUS_PAPER
from escpos.escpos import Escpos
from escpos.exceptions import Error as EscposError
from escpos.printer import Dummy, Network, Serial
from serial import SerialTimeoutException

from drivers.printer.render import DEFAULT_CODE_PAGE, render_escpos
from pos_loyalty.domain.receipt import Receipt

DEFAULT_TIMEOUT = 3.0

PAPER_OK, PAPER_NEAR_END, PAPER_OUT, PAPER_UNKNOWN = "ok", "near-end", "out", "unknown"


class PrinterError(Exception):
    """The receipt did not print; the message names the printer and says why, for the cashier."""

    def __init__(self, message: str, *, printer: str) -> None:
        super().__init__(message)
        self.printer = printer


@dataclass(frozen=True)
class PrinterAddress:
    url: str
    scheme: str
    target: str
    options: dict[str, str]

    @property
    def name(self) -> str:
        return f"receipt printer {self.url.split('?', 1)[0]}"

    @property
    def answers_status(self) -> bool:
        return self.scheme in ("tcp", "serial", "usb") and self.options.get("status", "on").lower() not in ("off", "0", "no", "false")


def parse_printer_url(url: str) -> PrinterAddress:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    try:
        port = parts.port
    except ValueError:
        port = -1
    if scheme == "tcp" and parts.hostname and port != -1:
        target = f"{parts.hostname}:{port or 9100}"
    elif scheme in ("serial", "file") and parts.path:
        target = parts.path
    elif scheme == "usb" and parts.netloc:
        target = parts.netloc
    elif scheme == "dummy":
        target = ""
    else:
        raise PrinterError(
            f"{url!r} is not a printer address: use tcp://HOST:9100, serial:///dev/ttyUSB0?baudrate=19200, "
            "usb://VID:PID, file:///dev/usb/lp0 or dummy:",
            printer=url,
        )
    return PrinterAddress(url, scheme, target, options)


def open_printer(url: str, *, profile: str, timeout: float = DEFAULT_TIMEOUT) -> Escpos:
    """A connected python-escpos printer for ``url``, with ``profile`` (e.g. ``TM-T88V``) and
    every connect, write and read bounded by ``timeout`` seconds."""
    address = parse_printer_url(url)
    try:
        get_profile(profile)
    except KeyError:
        raise PrinterError(f"{address.name}: unknown printer profile {profile!r}", printer=url) from None
    printer = _backend(address, profile, timeout)
    try:
        printer.open()
        if isinstance(printer, Serial):
            printer.device.write_timeout = timeout
    except (EscposError, OSError, RuntimeError) as error:
        raise _explain(error, address, timeout) from error
    return printer


def print_receipt(
    receipt: Receipt, url: str, *, profile: str, timeout: float = DEFAULT_TIMEOUT, code_page: str = DEFAULT_CODE_PAGE
) -> None:
    """Print ``receipt`` or raise :class:`PrinterError`: refused, not answering, offline, out of
    paper, or stopped taking data. The sale is already committed; the caller queues a reprint."""
    address = parse_printer_url(url)
    with _connected(address, profile, timeout) as printer:
        if address.answers_status:
            paper, online = _ask_status(printer, address, timeout)
            if paper == PAPER_OUT:
                raise PrinterError(f"{address.name} is out of paper", printer=url)
            if online is False:
                raise PrinterError(f"{address.name} is offline (cover open or paper jammed?)", printer=url)
        try:
            render_escpos(receipt, printer, code_page=code_page)
        except ValueError as error:
            raise PrinterError(f"{address.name}: {error}", printer=url) from error


def printer_status(url: str, *, profile: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, object]:
    """For the health endpoint: ``{"printer", "online", "paper", "error"}``; never raises.
    ``online`` is None and ``paper`` "unknown" where the printer cannot tell."""
    status: dict[str, object] = {"printer": url.split("?", 1)[0], "online": None, "paper": PAPER_UNKNOWN, "error": None}
    try:
        address = parse_printer_url(url)
        if address.scheme == "file":
            status["online"], status["error"] = _device_writable(address)
            return status
        with _connected(address, profile, timeout) as printer:
            status["online"] = True
            if address.answers_status:
                status["paper"], status["online"] = _ask_status(printer, address, timeout)
    except PrinterError as error:
        status["online"], status["error"] = False, str(error)
    return status


@contextmanager
def _connected(address: PrinterAddress, profile: str, timeout: float) -> Iterator[Escpos]:
    printer = open_printer(address.url, profile=profile, timeout=timeout)
    try:
        yield printer
    except (EscposError, OSError, RuntimeError) as error:
        raise _explain(error, address, timeout, sending=True) from error
    finally:
        try:
            printer.close()
        except (EscposError, OSError, RuntimeError):
            pass


def _ask_status(printer: Escpos, address: PrinterAddress, timeout: float) -> tuple[str, bool | None]:
    """``DLE EOT 4`` (paper sensor) and ``DLE EOT 1`` (online), read back within the timeout.
    A printer that took the connection but never answers is as good as off."""
    try:
        paper_answer = _query_status(printer, RT_STATUS_PAPER)
        if not paper_answer:
            if isinstance(printer, Serial):
                return PAPER_UNKNOWN, None
            raise PrinterError(f"{address.name} did not answer a status request", printer=address.url)
        online_answer = _query_status(printer, RT_STATUS_ONLINE)
    except TimeoutError:
        raise PrinterError(
            f"{address.name} took the connection but did not answer within {timeout:g} s", printer=address.url
        ) from None
    return paper_from_status(paper_answer), online_from_status(online_answer)


def _query_status(printer: Escpos, request: bytes) -> bytes:
    """python-escpos reads up to 16 bytes; a serial read of 16 waits out its whole timeout for
    the one byte a printer answers, so a serial printer is asked for exactly one."""
    if isinstance(printer, Serial):
        printer.device.write(request)
        return printer.device.read(1)
    return printer.query_status(request)


def paper_from_status(answer: bytes) -> str:
    """The DLE EOT 4 byte: bits 2-3 near end, bits 5-6 paper out; bits 1 and 4 always set."""
    if not answer or answer[0] & 0x93 != 0x12:
        return PAPER_UNKNOWN
    if answer[0] & 0x60:
        return PAPER_OUT
    if answer[0] & 0x0C:
        return PAPER_NEAR_END
    return PAPER_OK


def online_from_status(answer: bytes) -> bool | None:
    """The DLE EOT 1 byte: bit 3 set means offline."""
    if not answer or answer[0] & 0x93 != 0x12:
        return None
    return not answer[0] & 0x08


def _backend(address: PrinterAddress, profile: str, timeout: float) -> Escpos:
    options = address.options
    try:
        if address.scheme == "tcp":
            host, _, port = address.target.rpartition(":")
            return Network(host, int(port), timeout=timeout, profile=profile)
        if address.scheme == "serial":
            return Serial(
                address.target,
                baudrate=int(options.get("baudrate", 9600)),
                timeout=timeout,
                dsrdtr=options.get("dsrdtr", "1").lower() not in ("0", "off", "no", "false"),
                profile=profile,
            )
        if address.scheme == "usb":
            return _usb_backend(address, profile, timeout)
        if address.scheme == "file":
            return DeviceFile(address.target, timeout=timeout, profile=profile)
        return Dummy(profile=profile)
    except ValueError as error:
        raise PrinterError(f"{address.name}: {error}", printer=address.url) from None


class DeviceFile(Escpos):
    """A printer behind a device file (``/dev/usb/lp0``), every write bounded by ``timeout``.

    python-escpos's ``File`` opens with a blocking ``open(path, "wb")``: a FIFO with no reader
    blocks in the open, and a printer that stops taking data (paper out on a USB printer, a
    FIFO whose reader stalled) blocks a write for good, holding the print worker, ``pos-loyalty
    printer test`` and the panel's test page with it. Here the file is opened ``O_NONBLOCK``
    (no reader: ENXIO at once) and a write the device will not take waits for ``poll`` to say
    it can write, at most ``timeout`` seconds without progress; then :class:`TimeoutError`,
    which the caller reports as a printer that stopped taking data, and the receipt is queued
    like after any other fault. The bound is per stall, not per receipt: a slow printer that
    keeps taking data finishes a long receipt.

    Not created if missing (``O_CREAT``): an unplugged printer's device node is absent, and
    writing receipts into a new plain file of that name would print nothing, silently.
    """

    def __init__(self, devfile: str, *, timeout: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.devfile = devfile
        self.timeout = timeout
        self._fd: int | None = None

    def open(self) -> None:
        self.close()
        self._fd = os.open(self.devfile, os.O_WRONLY | os.O_TRUNC | os.O_NONBLOCK | os.O_CLOEXEC)
        self.device = self._fd

    def _raw(self, msg: bytes) -> None:
        if self._fd is None:
            self.open()
        data = memoryview(msg)
        while data:
            try:
                data = data[os.write(self._fd, data):]
            except BlockingIOError:
                self._wait_writable()

    def _wait_writable(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLOUT)
        if not poller.poll(self.timeout * 1000):
            raise TimeoutError(f"{self.devfile} took no data for {self.timeout:g} s")

    def close(self) -> None:
        fd, self._fd = self._fd, None
        self._device = False
        if fd is not None:
            os.close(fd)


def _device_writable(address: PrinterAddress) -> tuple[bool, str | None]:
    """Whether the device file can be opened for writing now, without waiting: a FIFO with no
    reader or an unplugged printer's missing node is not online."""
    try:
        fd = os.open(address.target, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        return False, _explain(error, address, 0).args[0]
    os.close(fd)
    return True, None


def _usb_backend(address: PrinterAddress, profile: str, timeout: float) -> Escpos:
    from escpos.printer import usb

    if not usb.is_usable():
        raise PrinterError(f"{address.name}: USB printing needs pyusb and libusb (pip install pyusb)", printer=address.url)
    vendor, _, product = address.target.partition(":")
    endpoints = {key: int(address.options[key], 16) for key in ("in_ep", "out_ep") if key in address.options}
    return usb.Usb(int(vendor, 16), int(product, 16), timeout=int(timeout * 1000), profile=profile, **endpoints)


def _explain(error: Exception, address: PrinterAddress, timeout: float, *, sending: bool = False) -> PrinterError:
    """One sentence a cashier can act on, whichever layer the fault came from."""
    cause = error.__context__ if isinstance(error, EscposError) and error.__context__ else error
    if isinstance(cause, ConnectionRefusedError):
        message = f"{address.name} refused the connection (is it switched on and on the network?)"
    elif isinstance(cause, (TimeoutError, SerialTimeoutException)) and sending:
        message = f"{address.name} stopped taking data for {timeout:g} s (out of paper, cover open or jammed?)"
    elif isinstance(cause, TimeoutError):
        message = f"{address.name} did not answer within {timeout:g} s"
    elif isinstance(cause, OSError) and cause.errno in (errno.ENXIO, errno.ENODEV, errno.ENOENT) and address.scheme == "file":
        message = f"{address.name} is not connected (switched off or unplugged?)"
    elif isinstance(cause, (BrokenPipeError, ConnectionResetError)):
        message = f"{address.name} dropped the connection while printing"
    else:
        detail = " ".join(str(cause).split()) or type(cause).__name__
        message = f"{address.name} cannot print: {detail}"
    return PrinterError(message, printer=address.url)
