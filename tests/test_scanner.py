"""The serial/USB-CDC scanner, driven through real pyserial over a pty pair and ``loop://``."""
from __future__ import annotations

import io
import os
import queue
import threading
import time
from collections.abc import Iterator
from datetime import timezone
from pathlib import Path

import pytest
import serial

from drivers.scanner import (
    RetryDelays,
    Scan,
    ScanLines,
    ScannerBusy,
    SerialScanner,
    classify_scan,
    listen,
    open_scanner_port,
    read_scan,
)
from drivers.scanner.scan import utc_now
from pos_loyalty.domain.cards import ean13_check_digit

STORE_PREFIX = "27"
FAST_RETRY = RetryDelays(first=0.01, cap=0.05)
WAIT = 5


def ean13(first12: str) -> str:
    return first12 + ean13_check_digit(first12)


STORE_CARD = ean13("271234567890")
PRODUCT = ean13("400638133393")
MISREAD_CARD = STORE_CARD[:12] + str((int(STORE_CARD[12]) + 1) % 10)


class FakeScanner:
    """A scanner at the far end of a pty: bytes written here arrive on ``path`` as if scanned."""

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        self.path = os.ttyname(self._slave)

    def send(self, data: bytes) -> None:
        os.write(self._master, data)

    def unplug(self) -> None:
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


class ScannerEvents:
    """What the callbacks reported, in queues a test can wait on."""

    def __init__(self) -> None:
        self.scans: queue.Queue[Scan] = queue.Queue()
        self.statuses: queue.Queue[tuple[str, str]] = queue.Queue()

    def on_scan(self, scan: Scan) -> None:
        self.scans.put(scan)

    def on_status(self, status: str, detail: str) -> None:
        self.statuses.put((status, detail))

    def next_code(self) -> str:
        return self.scans.get(timeout=WAIT).code

    def wait_for(self, wanted: str) -> list[tuple[str, str]]:
        """Every status up to and including ``wanted``."""
        seen = []
        while True:
            seen.append(self.statuses.get(timeout=WAIT))
            if seen[-1][0] == wanted:
                return seen


@pytest.fixture
def events() -> ScannerEvents:
    return ScannerEvents()


@pytest.fixture
def fake_scanner() -> Iterator[FakeScanner]:
    device = FakeScanner()
    yield device
    device.unplug()


@pytest.fixture
def scanners() -> Iterator[list[SerialScanner]]:
    """Scanners a test starts; all stopped afterwards so no port stays claimed."""
    started: list[SerialScanner] = []
    yield started
    for scanner in started:
        scanner.stop()


@pytest.fixture
def connected(fake_scanner: FakeScanner, events: ScannerEvents, scanners: list[SerialScanner]) -> SerialScanner:
    scanner = SerialScanner(fake_scanner.path, events.on_scan, on_status=events.on_status, retry=FAST_RETRY)
    scanners.append(scanner)
    scanner.start()
    events.wait_for("connected")
    return scanner


def lines_read_from(*chunks: bytes) -> list[Scan]:
    scans: list[Scan] = []
    protocol = ScanLines(scans.append)
    for chunk in chunks:
        protocol.data_received(chunk)
    return scans


# Cutting the byte stream into scans


@pytest.mark.parametrize("ending", [b"\r", b"\n", b"\r\n"], ids=["lone CR", "LF", "CRLF"])
def test_a_scan_ends_at_any_usual_line_ending(ending: bytes) -> None:
    assert [s.code for s in lines_read_from(b"123" + ending + b"456" + ending)] == ["123", "456"]


def test_a_crlf_split_across_two_reads_makes_no_extra_scan() -> None:
    assert [s.code for s in lines_read_from(b"123\r", b"\n456\r")] == ["123", "456"]


def test_a_scan_split_across_reads_is_joined() -> None:
    assert [s.code for s in lines_read_from(b"40063", b"81333", b"931\r")] == ["4006381333931"]


def test_empty_lines_are_ignored() -> None:
    assert [s.code for s in lines_read_from(b"\r\r\n\n  \r123\r\r")] == ["123"]


def test_aim_identifiers_are_stripped_and_reported_as_symbology() -> None:
    scans = lines_read_from(b"]E0" + STORE_CARD.encode() + b"\r]C1ABC-123\r]Q1hello\r]X9odd\r")
    assert [(s.code, s.symbology, s.aim_id) for s in scans] == [
        (STORE_CARD, "ean13", "]E0"),
        ("ABC-123", "gs1-128", "]C1"),
        ("hello", "qr", "]Q1"),
        ("odd", "]X9", "]X9"),
    ]


def test_a_scan_without_aim_identifier_has_no_symbology() -> None:
    (scan,) = lines_read_from(STORE_CARD.encode() + b"\r")
    assert (scan.code, scan.symbology) == (STORE_CARD, None)
    assert scan.at.tzinfo is timezone.utc


def test_line_noise_does_not_stop_the_scanner() -> None:
    scans = lines_read_from(b"\xff\xfe\x00\x02", b"\r" + b"\x80" * 10_000, b"\r\x02123\x03\r")
    assert scans[0].code == "ÿþ"
    assert scans[-1].code == "123"


def test_a_failing_scan_callback_does_not_lose_the_next_scan() -> None:
    seen: list[str] = []

    def on_scan(scan: Scan) -> None:
        seen.append(scan.code)
        if scan.code == "bad":
            raise RuntimeError("the service broke")

    protocol = ScanLines(on_scan)
    protocol.data_received(b"bad\rgood\r")
    assert seen == ["bad", "good"]


def test_an_aim_prefix_with_nothing_after_it_is_no_scan() -> None:
    assert read_scan(b"]E0", at=utc_now()) is None


# Card or product


def test_an_in_store_ean13_is_a_card() -> None:
    assert classify_scan(STORE_CARD, store_prefix=STORE_PREFIX) == "card"


def test_a_product_ean13_is_not_a_card() -> None:
    assert classify_scan(PRODUCT, store_prefix=STORE_PREFIX) == "product"


def test_a_bad_check_digit_is_never_a_card() -> None:
    assert classify_scan(MISREAD_CARD, store_prefix=STORE_PREFIX) == "invalid"


def test_a_code128_card_is_a_card_only_when_known() -> None:
    known = {"LOYAL-0042"}.__contains__
    assert classify_scan("LOYAL-0042", store_prefix=STORE_PREFIX, known_card=known) == "card"
    assert classify_scan("LOYAL-0043", store_prefix=STORE_PREFIX, known_card=known) == "product"
    assert classify_scan("LOYAL-0042", store_prefix=STORE_PREFIX) == "product"


# Reading a real port


@pytest.mark.parametrize("ending", [b"\r", b"\n", b"\r\n"], ids=["lone CR", "LF", "CRLF"])
def test_scans_arrive_from_a_serial_device(
    connected: SerialScanner, fake_scanner: FakeScanner, events: ScannerEvents, ending: bytes
) -> None:
    fake_scanner.send(b"]E0" + STORE_CARD.encode() + ending)
    scan = events.scans.get(timeout=WAIT)
    assert (scan.code, scan.symbology) == (STORE_CARD, "ean13")


def test_a_crlf_split_across_two_writes_makes_no_extra_scan(
    connected: SerialScanner, fake_scanner: FakeScanner, events: ScannerEvents
) -> None:
    fake_scanner.send(b"123\r")
    assert events.next_code() == "123"
    fake_scanner.send(b"\n456\r")
    fake_scanner.send(b"\nend\r\n")
    assert [events.next_code(), events.next_code()] == ["456", "end"]


def test_scans_arrive_over_any_pyserial_url(events: ScannerEvents, scanners: list[SerialScanner]) -> None:
    opened: queue.Queue[serial.SerialBase] = queue.Queue()

    def open_loop(url: str) -> serial.SerialBase:
        port = open_scanner_port(url)
        opened.put(port)
        return port

    scanner = SerialScanner("loop://", events.on_scan, on_status=events.on_status, open_port=open_loop)
    scanners.append(scanner)
    scanner.start()
    port = opened.get(timeout=WAIT)
    events.wait_for("connected")
    port.write(b"]C0LOYAL-0042\r")
    scan = events.scans.get(timeout=WAIT)
    assert (scan.code, scan.symbology) == ("LOYAL-0042", "code128")


def test_unplugging_and_replugging_the_scanner_resumes_reading(
    tmp_path: Path, events: ScannerEvents, scanners: list[SerialScanner]
) -> None:
    first = FakeScanner()
    link = tmp_path / "ttyACM0"
    link.symlink_to(first.path)
    scanner = SerialScanner(str(link), events.on_scan, on_status=events.on_status, retry=FAST_RETRY)
    scanners.append(scanner)
    scanner.start()
    events.wait_for("connected")
    first.send(b"before\r")
    assert events.next_code() == "before"

    first.unplug()
    assert events.wait_for("disconnected")[-1][0] == "disconnected"

    second = FakeScanner()
    try:
        (tmp_path / "next").symlink_to(second.path)
        os.replace(tmp_path / "next", link)
        statuses = [status for status, _ in events.wait_for("connected")]
        assert set(statuses) <= {"waiting", "connected"}
        second.send(b"after\r")
        assert events.next_code() == "after"
    finally:
        scanner.stop()
        second.unplug()


def test_a_missing_scanner_does_not_stop_the_service(
    tmp_path: Path, events: ScannerEvents, scanners: list[SerialScanner]
) -> None:
    scanner = SerialScanner(str(tmp_path / "ttyACM0"), events.on_scan, on_status=events.on_status, retry=FAST_RETRY)
    scanners.append(scanner)
    scanner.start()
    status, detail = events.statuses.get(timeout=WAIT)
    assert status == "waiting"
    assert "ttyACM0" in detail


def test_a_second_reader_on_the_same_port_is_refused(
    connected: SerialScanner, fake_scanner: FakeScanner, tmp_path: Path
) -> None:
    alias = tmp_path / "scanner"
    alias.symlink_to(fake_scanner.path)
    for url in (fake_scanner.path, str(alias)):
        with pytest.raises(ScannerBusy, match="is already being read by another reader"):
            SerialScanner(url, lambda scan: None).start()


def test_a_port_is_free_again_once_its_reader_stops(
    connected: SerialScanner, fake_scanner: FakeScanner, events: ScannerEvents, scanners: list[SerialScanner]
) -> None:
    connected.stop()
    again = SerialScanner(fake_scanner.path, events.on_scan, on_status=events.on_status)
    scanners.append(again)
    again.start()
    events.wait_for("connected")


def test_a_port_held_by_another_program_is_reported_busy_until_released(
    fake_scanner: FakeScanner, events: ScannerEvents, scanners: list[SerialScanner]
) -> None:
    other_program = serial.Serial(fake_scanner.path, exclusive=True)
    scanner = SerialScanner(fake_scanner.path, events.on_scan, on_status=events.on_status, retry=FAST_RETRY)
    scanners.append(scanner)
    try:
        scanner.start()
        status, detail = events.statuses.get(timeout=WAIT)
        assert status == "busy"
        assert "already being read by another program" in detail
    finally:
        other_program.close()
    events.wait_for("connected")


def test_stop_is_prompt_while_reading(connected: SerialScanner, events: ScannerEvents) -> None:
    began = time.monotonic()
    connected.stop()
    assert time.monotonic() - began < 0.5
    assert events.wait_for("stopped")


def test_stop_is_prompt_while_waiting_for_the_device(
    tmp_path: Path, events: ScannerEvents, scanners: list[SerialScanner]
) -> None:
    scanner = SerialScanner(str(tmp_path / "gone"), events.on_scan, on_status=events.on_status, retry=RetryDelays(60, 60))
    scanners.append(scanner)
    scanner.start()
    events.wait_for("waiting")
    began = time.monotonic()
    scanner.stop()
    assert time.monotonic() - began < 0.5


# pos-loyalty scanner listen


class LinesWritten(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.lines: queue.Queue[str] = queue.Queue()

    def write(self, text: str) -> int:
        for line in text.splitlines():
            self.lines.put(line)
        return super().write(text)

    def wait_for(self, fragment: str) -> str:
        while fragment not in (line := self.lines.get(timeout=WAIT)):
            pass
        return line


def test_listen_prints_each_scan_and_status_until_stopped(fake_scanner: FakeScanner) -> None:
    out = LinesWritten()
    stop = threading.Event()
    listening = threading.Thread(
        target=listen, args=(fake_scanner.path, out), kwargs={"store_prefix": STORE_PREFIX, "stop": stop, "retry": FAST_RETRY}
    )
    listening.start()
    try:
        out.wait_for("connected")
        fake_scanner.send(b"]E0" + STORE_CARD.encode() + b"\r" + PRODUCT.encode() + b"\r")
        card_line = out.wait_for("card")
        product_line = out.wait_for("product")
    finally:
        stop.set()
        listening.join(WAIT)
    assert "ean13" in card_line and STORE_CARD[-4:] in card_line and STORE_CARD not in card_line
    assert PRODUCT in product_line
    assert not listening.is_alive()
    assert "scanner stopped" in out.getvalue()


def test_the_counter_s_scanner_is_read_at_the_speed_the_settings_give(shop) -> None:
    """An RS-232 scanner set to 19200 baud, read at the default 9600, turns every scan into
    garbage: the ``scanner_baudrate`` setting opens the port at the scanner's speed."""
    import termios

    from pos_loyalty.config import ConfigError, load_settings
    from pos_loyalty.scanning import Push, ScanHub, start_counter_scanner

    assert load_settings(environ={"POS_LOYALTY_SCANNER_BAUDRATE": "19200"}).scanner_baudrate == 19200
    with pytest.raises(ConfigError, match="scanner_baudrate must be one of"):
        load_settings(environ={"POS_LOYALTY_SCANNER_BAUDRATE": "19000"})

    device = FakeScanner()
    hub = ScanHub()
    with hub.subscribe() as screen:
        scanner = start_counter_scanner(shop, hub, device.path, baudrate=19200)
        try:
            while (push := screen.next(timeout=10)) != Push("scanner", "connected"):
                assert push is not None, "the scanner never connected"
            speeds = termios.tcgetattr(device._master)[4:6]  # (ispeed, ospeed): the pty's, as the reader set them
            assert speeds == [termios.B19200, termios.B19200]
        finally:
            scanner.stop()
            device.unplug()


def test_a_misread_card_and_a_product_read_at_the_counter_never_reach_the_screen(shop) -> None:
    """Over the pty, as a scanner sends them: a card number with a wrong check digit (a misread)
    and a product's barcode are not pushed; the real card after them is."""
    from pos_loyalty.scanning import Push, ScanHub, start_counter_scanner

    device = FakeScanner()
    hub = ScanHub()
    with hub.subscribe() as screen:
        scanner = start_counter_scanner(shop, hub, device.path)
        try:
            while (push := screen.next(timeout=10)) != Push("scanner", "connected"):
                assert push is not None, "the scanner never connected"
            device.send(f"{MISREAD_CARD}\r{PRODUCT}\r\n{STORE_CARD}\r".encode())
            assert screen.next(timeout=10) == Push("card", STORE_CARD)  # the first push is the real card
        finally:
            scanner.stop()
            device.unplug()
