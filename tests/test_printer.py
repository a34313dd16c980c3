"""The receipt printer: what reaches the paper, and a clear PrinterError whenever it cannot."""
from __future__ import annotations

import dataclasses
import time
from datetime import date, datetime, timezone

import pytest
from escpos.printer import Dummy

from drivers import printer
from drivers.printer import PrinterError, loyalty_block_bytes, print_receipt, printer_status, render_escpos
from pos_loyalty.domain.cards import ean13_check_digit
from pos_loyalty.domain.receipt import (
    AppliedReward,
    Barcode,
    EarnedPoints,
    ItemLine,
    LoyaltyStatement,
    NextReward,
    PointsExpiry,
    Receipt,
    ReceiptData,
    Rule,
    TextLine,
    TierProgress,
    lay_out_loyalty_block,
    lay_out_receipt,
)
from tests.support.device_files import stalled_device, unread_fifo
from tests.support.escpos_capture import (
    CapturePrinter,
    PtyPrinter,
    closed_port,
    decode_escpos,
    silent_printer,
    stuck_serial_printer,
    unanswered_connect,
)

PROFILE = "TM-T88V"
CP858 = 19
CARD = "271234567890" + ean13_check_digit("271234567890")
QUICK = 0.3
PROMPTLY = 2.0


def a_statement(**changes) -> LoyaltyStatement:
    statement = LoyaltyStatement(
        preferred_name="Zoë Müller",
        card_number=CARD,
        language="de",
        earned=EarnedPoints(base=45, promotion=10, promotion_name="Doppelte Punkte", tier=5),
        balance_before=1240,
        balance_after=1050,
        redeemed=(AppliedReward("Gratis Kaffee", 250, 250),),
        next_reward=NextReward("Gratis Kuchen", 120),
        tier="Gold",
        tier_progress=TierProgress("Platin", 3500),
        next_expiry=PointsExpiry(150, date(2025, 6, 30)),
        feedback_url="https://shop.example/rate",
        visit_code="K7Q2",
    )
    return dataclasses.replace(statement, **changes)


def a_sale(**changes) -> ReceiptData:
    sale = ReceiptData(
        shop_name="Café Crème",
        shop_address=("Hauptstraße 12", "10115 Berlin"),
        transaction_id="T-000123",
        time=datetime(2025, 3, 5, 13, 15, tzinfo=timezone.utc),
        timezone="Europe/Berlin",
        till="2",
        cashier="Anna",
        currency="EUR",
        locale="de_DE",
        items=(ItemLine("Crème brûlée", "CB1", "1", 250, 0, 250), ItemLine("Kaffee", "K1", "2", 250, 0, 500)),
        subtotal_minor=750,
        total_minor=500,
        rewards=(AppliedReward("Gratis Kaffee", 250, 250),),
        loyalty=a_statement(),
    )
    return dataclasses.replace(sale, **changes)


def a_receipt(columns: int = 42, **changes) -> Receipt:
    return lay_out_receipt(a_sale(**changes), columns=columns)


def squeezed(line: str) -> str:
    return " ".join(line.split())


# -- what reaches the paper ----------------------------------------------------------------------


def test_a_network_printer_prints_the_statement_a_customer_can_read():
    with CapturePrinter() as shop_printer:
        print_receipt(a_receipt(), shop_printer.url, profile=PROFILE, timeout=QUICK)
        printout = decode_escpos(shop_printer.next_job())

    texts = [squeezed(line) for line in printout.texts()]
    assert "Hallo Zoë Müller!" in texts
    assert f"Karte *********{CARD[-4:]}" in texts
    assert "Crème brûlée 2,50 €" in texts
    assert "Heute gesammelte Punkte +60" in texts
    assert "Eingelöste Punkte -250" in texts
    assert "Punktestand vorher 1240" in texts
    assert "Punktestand jetzt 1050" in texts
    assert "Noch 120 Punkte bis Gratis Kuchen" in texts
    assert "150 Punkte verfallen am 30.06.2025" in texts
    assert printout.barcodes == [("EAN13", CARD)]
    assert printout.qr_codes == ["https://shop.example/rate?v=K7Q2"]
    assert "Besuchscode: K7Q2" in texts
    assert printout.cuts == 1


def test_euro_sign_and_accents_print_from_the_code_page_chosen_after_the_reset():
    with CapturePrinter() as shop_printer:
        print_receipt(a_receipt(), shop_printer.url, profile=PROFILE, timeout=QUICK)
        job = shop_printer.next_job()

    reset = job.index(b"\x1b@")
    assert job[reset + 2 : reset + 5] == b"\x1bt" + bytes([CP858])
    printout = decode_escpos(job)
    assert printout.resets == 1 and printout.code_pages == [CP858]
    assert printout.text_before_code_page == []
    assert "€" in printout.text
    assert [line for line in printout.texts() if line] == laid_out_lines(a_receipt())


def laid_out_lines(receipt: Receipt) -> list[str]:
    """The text and rule lines of the layout, as a customer would read them on paper."""
    return [line.strip() for line in Receipt(receipt.columns, tuple(e for e in receipt.elements if isinstance(e, (TextLine, Rule)))).text_lines() if line.strip()]


def test_a_printer_used_again_gets_its_code_page_again_after_each_reset():
    """python-escpos 3.1 remembers the page it chose last and skips ESC t after ESC @."""
    naive = Dummy(profile=PROFILE)
    naive.charcode("CP858")
    naive.hw("INIT")
    naive.charcode("CP858")
    naive.textln("2,50 €")
    assert decode_escpos(naive.output).text_before_code_page  # the € would print as ╒

    reused = Dummy(profile=PROFILE)
    render_escpos(a_receipt(), reused)
    render_escpos(a_receipt(), reused)
    printout = decode_escpos(reused.output)

    assert printout.resets == 2 and printout.code_pages == [CP858, CP858]
    assert printout.text_before_code_page == []


def test_layout_is_carried_through_bold_double_size_and_centred():
    printout = decode_escpos(_dummy_bytes(a_receipt(columns=32)))

    assert printout.line_with("Café Crème").width == 2 and printout.line_with("Café Crème").height == 2
    assert printout.line_with("Summe").bold
    assert printout.line_with("Hallo Zoë").align == "center"
    assert not printout.line_with("Kaffee").bold


@pytest.mark.parametrize("columns", [32, 42, 48])
def test_no_printed_line_is_wider_than_the_paper(columns):
    sale = a_sale(
        shop_name="Konditorei und Café zur Goldenen Brezel",
        items=(ItemLine("Donaudampfschifffahrtsgesellschaftskapitänsmützenkuchen mit Sahne", None, "3", 1250, 0, 3750),),
        loyalty=a_statement(preferred_name="Maximiliane Zoë Müller-Lüdenscheidt", birthday_week=True),
    )
    printout = decode_escpos(_dummy_bytes(lay_out_receipt(sale, columns=columns)))

    assert printout.lines
    for line in printout.lines:
        assert len(line.text) * line.width <= columns, line


def test_a_card_that_is_not_an_ean13_prints_as_code128():
    printout = decode_escpos(_dummy_bytes(a_receipt(loyalty=a_statement(card_number="LOY-000123"))))

    assert printout.barcodes == [("CODE128", "LOY-000123")]


def test_an_ean13_with_a_wrong_check_digit_never_reaches_the_printer():
    wrong = CARD[:12] + str((int(CARD[12]) + 1) % 10)

    with pytest.raises(ValueError, match="check digit"):
        render_escpos(Receipt(42, (Barcode("EAN13", wrong),)), Dummy(profile=PROFILE))


def test_letters_the_code_page_lacks_print_as_their_plain_letter():
    printout = decode_escpos(_dummy_bytes(Receipt(42, (TextLine("Antonín Dvořák"),))))

    assert printout.texts() == ["Antonín Dvorák"]


def test_loyalty_block_for_a_till_that_prints_its_own_receipt():
    block = lay_out_loyalty_block(a_statement(), columns=42, locale="de_DE", currency="EUR")
    data = loyalty_block_bytes(block, PROFILE)
    printout = decode_escpos(data)

    assert data.startswith(b"\x1bt" + bytes([CP858]))
    assert printout.resets == 0 and printout.cuts == 0
    assert "Hallo Zoë Müller!" in printout.texts()
    assert printout.barcodes == [("EAN13", CARD)]
    assert printout.text_before_code_page == []


def test_test_page_shows_the_full_width_and_every_character_we_need():
    page = printer.test_page("Zoë's Café", 32)
    printout = decode_escpos(_dummy_bytes(page))

    assert "12345678901234567890123456789012" in printout.texts()
    assert "€ £ ÄÖÜ äöüß éèêàç ñ ×" in printout.texts()
    assert [kind for kind, _ in printout.barcodes] == ["EAN13", "CODE128"]
    assert printout.qr_codes and printout.cuts == 1
    assert all(len(line.text) * line.width <= 32 for line in printout.lines)


# -- backends ------------------------------------------------------------------------------------


def test_a_serial_printer_prints_the_same_receipt():
    with PtyPrinter() as serial_printer:
        print_receipt(a_receipt(), serial_printer.url, profile=PROFILE, timeout=QUICK)
        printout = decode_escpos(serial_printer.job())

    assert "Hallo Zoë Müller!" in printout.texts()
    assert printout.status_requests == [4, 1]
    assert printout.code_pages == [CP858]


def test_a_file_printer_gets_the_bytes(tmp_path):
    device = tmp_path / "lp0"
    device.touch()

    print_receipt(a_receipt(), f"file://{device}", profile=PROFILE)

    assert "Hallo Zoë Müller!" in decode_escpos(device.read_bytes()).texts()
    assert printer_status(f"file://{device}", profile=PROFILE)["online"] is True


def test_the_dummy_printer_accepts_everything():
    print_receipt(a_receipt(), "dummy:", profile=PROFILE)

    assert printer_status("dummy:", profile=PROFILE) == {"printer": "dummy:", "online": True, "paper": "unknown", "error": None}


def test_usb_without_pyusb_says_what_is_missing():
    pytest.importorskip("escpos.printer.usb")
    from escpos.printer import usb

    if usb.is_usable():
        pytest.skip("pyusb is installed here")
    with pytest.raises(PrinterError, match="pyusb"):
        print_receipt(a_receipt(), "usb://04b8:0202", profile=PROFILE)


@pytest.mark.parametrize("url", ["", "lpt1", "tcp://", "tcp://printer:abc", "ftp://printer", "serial://"])
def test_a_printer_address_we_cannot_use_is_a_printer_error(url):
    with pytest.raises(PrinterError, match="not a printer address"):
        print_receipt(a_receipt(), url, profile=PROFILE)


def test_an_unknown_profile_is_named():
    with pytest.raises(PrinterError, match="TM-NOPE"):
        print_receipt(a_receipt(), "dummy:", profile="TM-NOPE")


# -- when it cannot print ------------------------------------------------------------------------


def test_a_printer_that_refuses_the_connection():
    url = f"tcp://127.0.0.1:{closed_port()}"

    with pytest.raises(PrinterError, match="refused the connection") as refused:
        print_receipt(a_receipt(), url, profile=PROFILE, timeout=QUICK)

    assert url in str(refused.value)
    assert refused.value.printer == url


def test_a_printer_that_never_answers_the_connect_fails_within_the_timeout():
    with unanswered_connect() as url:
        started = time.monotonic()
        with pytest.raises(PrinterError, match=r"did not answer within 0\.3 s"):
            print_receipt(a_receipt(), url, profile=PROFILE, timeout=QUICK)

    assert time.monotonic() - started < PROMPTLY


def test_a_printer_that_takes_the_connection_but_never_answers_fails_within_the_timeout():
    with silent_printer() as url:
        started = time.monotonic()
        with pytest.raises(PrinterError, match="took the connection but did not answer"):
            print_receipt(a_receipt(), url, profile=PROFILE, timeout=QUICK)

    assert time.monotonic() - started < PROMPTLY


def test_a_printer_that_stops_taking_data_fails_within_the_timeout():
    with stuck_serial_printer() as url:
        started = time.monotonic()
        with pytest.raises(PrinterError, match="stopped taking data"):
            print_receipt(Receipt(48, (TextLine("x" * 48),) * 4000), url, profile=PROFILE, timeout=QUICK)

    assert time.monotonic() - started < PROMPTLY + 2 * QUICK


def test_out_of_paper_prints_nothing_and_says_so():
    with CapturePrinter(paper="out") as shop_printer:
        with pytest.raises(PrinterError, match=f"{shop_printer.url} is out of paper"):
            print_receipt(a_receipt(), shop_printer.url, profile=PROFILE, timeout=QUICK)
        printout = decode_escpos(shop_printer.next_job())

    assert printout.status_requests[0] == 4
    assert printout.lines == [] and printout.resets == 0


def test_out_of_paper_on_a_serial_printer():
    with PtyPrinter(paper="out") as serial_printer:
        with pytest.raises(PrinterError, match="out of paper"):
            print_receipt(a_receipt(), serial_printer.url, profile=PROFILE, timeout=QUICK)


def test_an_offline_printer_is_not_printed_to():
    with CapturePrinter(online=False) as shop_printer:
        with pytest.raises(PrinterError, match="offline"):
            print_receipt(a_receipt(), shop_printer.url, profile=PROFILE, timeout=QUICK)


def test_paper_near_its_end_still_prints():
    with CapturePrinter(paper="near-end") as shop_printer:
        print_receipt(a_receipt(), shop_printer.url, profile=PROFILE, timeout=QUICK)

        assert "Hallo Zoë Müller!" in decode_escpos(shop_printer.next_job()).texts()


def test_status_off_skips_the_question_for_printers_that_cannot_answer():
    with CapturePrinter(paper="out") as shop_printer:
        print_receipt(a_receipt(), shop_printer.url + "?status=off", profile=PROFILE, timeout=QUICK)

        assert decode_escpos(shop_printer.next_job()).status_requests == []


# -- health --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("paper", "online"), [("ok", True), ("near-end", True), ("out", False)])
def test_printer_status_reports_paper_and_online(paper, online):
    with CapturePrinter(paper=paper, online=online) as shop_printer:
        status = printer_status(shop_printer.url, profile=PROFILE, timeout=QUICK)

    assert status == {"printer": shop_printer.url, "online": online, "paper": paper, "error": None}


def test_printer_status_of_a_printer_that_is_off_never_raises():
    url = f"tcp://127.0.0.1:{closed_port()}"

    status = printer_status(url, profile=PROFILE, timeout=QUICK)

    assert status["online"] is False and status["paper"] == "unknown"
    assert "refused" in status["error"]


def _dummy_bytes(receipt: Receipt) -> bytes:
    dummy = Dummy(profile=PROFILE)
    render_escpos(receipt, dummy)
    return dummy.output


def test_a_device_printer_that_stops_taking_data_fails_within_the_timeout(tmp_path):
    with stalled_device(tmp_path) as url:
        started = time.monotonic()
        with pytest.raises(PrinterError, match=r"stopped taking data for 0\.3 s"):
            print_receipt(a_receipt(), url, profile=PROFILE, timeout=QUICK)

    assert time.monotonic() - started < PROMPTLY


def test_a_device_nobody_is_reading_is_not_connected_and_says_so_at_once(tmp_path):
    with unread_fifo(tmp_path) as url:
        with pytest.raises(PrinterError, match="is not connected"):
            print_receipt(a_receipt(), url, profile=PROFILE, timeout=QUICK)
        status = printer_status(url, profile=PROFILE)

    assert status["online"] is False and "not connected" in status["error"]


def test_a_device_file_that_is_missing_is_not_created(tmp_path):
    device = tmp_path / "lp0"

    with pytest.raises(PrinterError, match="is not connected"):
        print_receipt(a_receipt(), f"file://{device}", profile=PROFILE)

    assert not device.exists()


def test_many_processes_starting_at_once_on_a_new_machine_all_load_the_printer_profiles(tmp_path):
    """python-escpos writes its capabilities cache in place; a second process starting meanwhile
    (the server and a command, two test workers) read it half-written and could not start. The
    cache is now written whole and renamed into place: eight processes starting at once on an
    empty cache all start, and the cache they leave loads."""
    import os
    import pickle
    import subprocess
    import sys

    env = {**os.environ, "ESCPOS_CAPABILITIES_PICKLE_DIR": str(tmp_path)}
    env.pop("ESCPOS_CAPABILITIES_FILE", None)
    code = "import drivers.printer, escpos.capabilities as c; assert c.get_profile('TM-T88V').profile_data['name']"
    starts = [subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE) for _ in range(8)]
    failures = [p.stderr.read().decode() for p in starts if p.wait(timeout=120) != 0]
    assert failures == []
    (cache,) = [f for f in tmp_path.iterdir()]  # one whole file, no scratch left behind
    assert cache.name.endswith(".capabilities.pickle")
    assert "TM-T88V" in pickle.loads(cache.read_bytes())["profiles"]
