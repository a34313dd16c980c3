"""Receipt printers for tests, and a reader for what we send them.

* :class:`CapturePrinter` — a network printer on 127.0.0.1 that keeps every job (one job per
  connection, handed over on a queue when the client closes) and answers ``DLE EOT`` status
  requests like an Epson: paper ok, near its end, or out; online or not.
* :class:`PtyPrinter` — the same on a pseudo-terminal, for the serial backend;
  :func:`stuck_serial_printer` one that never reads.
* :func:`silent_printer` — takes connections and never reads or answers (a printer whose
  network card works and nothing else does).
* :func:`unanswered_connect` — a port whose connection queue is full, so connecting hangs.
* :func:`closed_port` — nothing listening: the connection is refused.
* :func:`decode_escpos` — turns the bytes back into what the customer would read: lines of text
  in the code page ``ESC t`` selected, with bold, size and alignment; barcodes; QR codes; cuts.
"""
from __future__ import annotations

import os
import queue
import selectors
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

DLE, EOT, ESC, GS, FS = 0x10, 0x04, 0x1B, 0x1D, 0x1C

CODE_PAGES = {0: "cp437", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865", 16: "cp1252", 17: "cp866", 18: "cp852", 19: "cp858", 40: "iso8859_15"}
"""ESC t numbers on Epson TM printers, and the Python codec for each."""

BARCODE_KINDS = {
    0: "UPC-A", 1: "UPC-E", 2: "EAN13", 3: "EAN8", 4: "CODE39", 5: "ITF", 6: "NW7",
    65: "UPC-A", 66: "UPC-E", 67: "EAN13", 68: "EAN8", 69: "CODE39", 70: "ITF", 71: "NW7", 72: "CODE93", 73: "CODE128",
}


# -- printers on the loopback --------------------------------------------------------------------


class StatusPanel:
    """How a printer answers ``DLE EOT n``: paper ok, near its end or out; online or not."""

    def __init__(self, *, paper: str = "ok", online: bool = True) -> None:
        self.paper = paper
        self.online = online
        self.requests: list[int] = []

    def byte_for(self, request: int) -> int:
        byte = 0x12
        if request == 1 and not self.online:
            byte |= 0x08
        if request == 4:
            byte |= {"ok": 0x00, "near-end": 0x0C, "out": 0x6C}[self.paper]
        return byte

    def listen(self) -> "_StatusListener":
        return _StatusListener(self)


class _StatusListener:
    """Reads one job as it arrives and answers each complete ``DLE EOT n`` in it, also one
    split across two reads."""

    def __init__(self, panel: StatusPanel) -> None:
        self.panel = panel
        self.received = bytearray()
        self._scanned = 0

    def feed(self, chunk: bytes) -> bytes:
        self.received += chunk
        answers = bytearray()
        while True:
            found = self.received.find(bytes((DLE, EOT)), self._scanned)
            if found < 0:
                self._scanned = max(self._scanned, len(self.received) - 1)
                return bytes(answers)
            if found + 2 >= len(self.received):
                self._scanned = found
                return bytes(answers)
            request = self.received[found + 2]
            self.panel.requests.append(request)
            answers.append(self.panel.byte_for(request))
            self._scanned = found + 3


class CapturePrinter:
    """A network printer on 127.0.0.1: ``with CapturePrinter(paper="out") as printer: ...
    printer.next_job()``. Takes one connection at a time, like the real thing."""

    def __init__(self, *, paper: str = "ok", online: bool = True) -> None:
        self.status = StatusPanel(paper=paper, online=online)
        self._jobs: queue.Queue[bytes] = queue.Queue()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"tcp://127.0.0.1:{self._listener.getsockname()[1]}"
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="capture-printer", daemon=True)

    def next_job(self, timeout: float = 5.0) -> bytes:
        """The bytes of the next connection, once the client has closed it."""
        return self._jobs.get(timeout=timeout)

    def __enter__(self) -> "CapturePrinter":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._wake_writer.send(b"x")
        self._thread.join(timeout=5)
        for sock in (self._listener, self._wake_reader, self._wake_writer):
            sock.close()

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in selector.select()}
                if self._wake_reader in ready:
                    return
                connection, _ = self._listener.accept()
                with connection:
                    if not self._take_job(connection, selector):
                        return

    def _take_job(self, connection: socket.socket, selector: selectors.BaseSelector) -> bool:
        job = self.status.listen()
        selector.register(connection, selectors.EVENT_READ)
        try:
            while True:
                ready = {key.fileobj for key, _ in selector.select()}
                if self._wake_reader in ready:
                    return False
                try:
                    chunk = connection.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    self._jobs.put(bytes(job.received))
                    return True
                connection.sendall(job.feed(chunk))
        finally:
            selector.unregister(connection)


class PtyPrinter:
    """A serial printer on a pseudo-terminal: ``serial:///dev/pts/N``. The test holds the slave
    end open so the printer sees no hang-up between jobs; :meth:`job` closes it and returns
    everything the driver wrote, once the reader thread has drained it."""

    def __init__(self, *, paper: str = "ok", online: bool = True) -> None:
        self.status = StatusPanel(paper=paper, online=online)
        self._master, self._slave = os.openpty()
        self.url = f"serial://{os.ttyname(self._slave)}?baudrate=19200"
        self._job = self.status.listen()
        self._drained = threading.Event()
        self._thread = threading.Thread(target=self._read, name="pty-printer", daemon=True)

    def __enter__(self) -> "PtyPrinter":
        self._thread.start()
        return self

    def job(self, timeout: float = 5.0) -> bytes:
        self._close_slave()
        if not self._drained.wait(timeout):
            raise TimeoutError("the pty printer was not drained")
        return bytes(self._job.received)

    def __exit__(self, *exc_info: object) -> None:
        self._close_slave()
        self._drained.wait(5)
        os.close(self._master)

    def _close_slave(self) -> None:
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None

    def _read(self) -> None:
        try:
            while chunk := os.read(self._master, 65536):
                answers = self._job.feed(chunk)
                if answers:
                    os.write(self._master, answers)
        except OSError:
            pass  # EIO: every slave descriptor is closed, the job is complete
        finally:
            self._drained.set()


@contextmanager
def stuck_serial_printer() -> Iterator[str]:
    """A serial printer that never reads: after a few kilobytes the driver's writes block."""
    master, slave = os.openpty()
    try:
        yield f"serial://{os.ttyname(slave)}?baudrate=19200"
    finally:
        os.close(slave)
        os.close(master)


@contextmanager
def silent_printer() -> Iterator[str]:
    """A URL whose printer completes the TCP handshake (the kernel does that) and then never
    reads a byte or answers a status request."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


@contextmanager
def unanswered_connect() -> Iterator[str]:
    """A URL where connecting hangs: the listener's queue (backlog 0) is already taken by one
    connection nobody accepts, so the kernel drops further SYNs."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname(), timeout=1)
    try:
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        filler.close()
        listener.close()


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- reading ESC/POS back ------------------------------------------------------------------------


@dataclass
class PrintedLine:
    text: str
    bold: bool = False
    align: str = "left"
    width: int = 1
    height: int = 1


@dataclass
class Printout:
    lines: list[PrintedLine] = field(default_factory=list)
    barcodes: list[tuple[str, str]] = field(default_factory=list)
    qr_codes: list[str] = field(default_factory=list)
    cuts: int = 0
    resets: int = 0
    code_pages: list[int] = field(default_factory=list)
    status_requests: list[int] = field(default_factory=list)
    images: int = 0
    text_before_code_page: list[str] = field(default_factory=list)
    """Text printed after a reset (or from the start) before any ``ESC t``: the printer's
    power-on table, whatever that is — a € there is a gamble."""

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def texts(self) -> list[str]:
        return [line.text.strip() for line in self.lines]

    def line_with(self, fragment: str) -> PrintedLine:
        for line in self.lines:
            if fragment in line.text:
                return line
        raise AssertionError(f"no printed line contains {fragment!r}:\n{self.text}")


class _Style:
    def __init__(self) -> None:
        self.bold, self.align, self.width, self.height = False, "left", 1, 1


def decode_escpos(data: bytes) -> Printout:
    """What a printer would print from ``data``. Unknown commands raise, so nothing slips by."""
    out = Printout()
    style = _Style()
    code_page: int | None = None
    line: list[str] = []
    line_style: tuple[bool, str, int, int] | None = None
    qr_store = ""
    i = 0

    def flush() -> None:
        nonlocal line, line_style
        bold, align, width, height = line_style or (style.bold, style.align, style.width, style.height)
        out.lines.append(PrintedLine("".join(line), bold, align, width, height))
        line, line_style = [], None

    def arg(offset: int = 0) -> int:
        if i + offset >= len(data):
            raise ValueError(f"command at byte {i} is cut short")
        return data[i + offset]

    while i < len(data):
        byte = data[i]
        if byte == 0x0A:
            flush()
            i += 1
        elif byte == 0x0D:
            i += 1
        elif byte == ESC:
            command = chr(arg(1))
            if command == "@":
                out.resets += 1
                style, code_page, line, line_style = _Style(), None, [], None
                i += 2
            elif command == "t":
                code_page = arg(2)
                if code_page not in CODE_PAGES:
                    raise ValueError(f"ESC t {code_page}: a code page this decoder does not know")
                out.code_pages.append(code_page)
                i += 3
            elif command == "E":
                style.bold = bool(arg(2) & 1)
                i += 3
            elif command == "!":
                mode = arg(2)
                style.bold, style.height, style.width = bool(mode & 0x08), 2 if mode & 0x10 else 1, 2 if mode & 0x20 else 1
                i += 3
            elif command == "a":
                style.align = {0: "left", 1: "center", 2: "right", 48: "left", 49: "center", 50: "right"}[arg(2)]
                i += 3
            elif command == "d":
                if line:
                    flush()
                out.lines.extend(PrintedLine("") for _ in range(arg(2)))
                i += 3
            elif command in "M-G{=JU3":
                i += 3
            elif command == "2":
                i += 2
            elif command == "*":
                m, count = arg(2), arg(3) + 256 * arg(4)
                out.images += 1
                i += 5 + count * (3 if m in (32, 33) else 1)
            else:
                raise ValueError(f"ESC {command!r} at byte {i}: not a command we send")
        elif byte == GS:
            command = chr(arg(1))
            if command == "!":
                size = arg(2)
                style.width, style.height = (size >> 4 & 7) + 1, (size & 7) + 1
                i += 3
            elif command == "V":
                if line:
                    flush()
                out.cuts += 1
                i += 4 if arg(2) in (65, 66) else 3
            elif command in "hwfHBb":
                i += 3
            elif command == "k":
                kind = arg(2)
                if kind <= 6:
                    end = data.index(b"\x00", i + 3)
                    code = data[i + 3 : end]
                    i = end + 1
                else:
                    length = arg(3)
                    code = data[i + 4 : i + 4 + length]
                    i += 4 + length
                text = code.decode("ascii")
                if BARCODE_KINDS[kind] == "CODE128" and text[:2] in ("{A", "{B"):
                    text = text[2:]
                out.barcodes.append((BARCODE_KINDS[kind], text))
            elif command == "(":
                function, length = chr(arg(2)), arg(3) + 256 * arg(4)
                payload = data[i + 5 : i + 5 + length]
                if function == "k" and payload[:1] == b"1":
                    if payload[1] == 80:
                        qr_store = payload[3:].decode("utf-8")
                    elif payload[1] == 81:
                        out.qr_codes.append(qr_store)
                elif function == "L" and payload[1:2] == b"2":
                    out.images += 1
                i += 5 + length
            elif command == "v" and arg(2) == 0x30:
                width_bytes, height = arg(4) + 256 * arg(5), arg(6) + 256 * arg(7)
                out.images += 1
                i += 8 + width_bytes * height
            else:
                raise ValueError(f"GS {command!r} at byte {i}: not a command we send")
        elif byte == DLE and arg(1) == EOT:
            out.status_requests.append(arg(2))
            i += 3
        elif byte < 0x20:
            raise ValueError(f"control byte 0x{byte:02x} at {i}: not something we send")
        else:
            char = bytes((byte,)).decode(CODE_PAGES[code_page if code_page is not None else 0])
            if code_page is None:
                out.text_before_code_page.append(char)
            if line_style is None:
                line_style = (style.bold, style.align, style.width, style.height)
            line.append(char)
            i += 1
    if line:
        flush()
    return out
