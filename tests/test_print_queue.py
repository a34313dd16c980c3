"""Never lose a sale: the sale is committed before printing, and a printer fault queues the receipt."""
from __future__ import annotations

import base64
import datetime as dt
import queue

import pytest

from pos_loyalty.services.receipts import waiting_print_jobs
from tests.support.device_files import stalled_device
from tests.support.escpos_capture import CapturePrinter, closed_port, decode_escpos
from tests.support.factories import enrol, line, programme, sale
from tests.support.ticks import Ticks

PRINTER_OFF = f"tcp://127.0.0.1:{closed_port()}"


@pytest.fixture
def settings_overrides():
    return {"printer_url": PRINTER_OFF, "printer_columns": 42, "feedback_url": "https://shop.example/rate"}


@pytest.fixture
def printer(app):
    """The app's print queue, reporting each job's outcome to the test."""
    queue_ = app.extensions["pos_loyalty"].printer
    results: queue.Queue = queue.Queue()
    queue_.on_result = results.put
    queue_.retry_delays = ()
    queue_.results = results
    return queue_


def test_a_printer_that_is_off_never_fails_the_checkout_and_the_receipt_waits_for_a_reprint(api, shop, printer):
    anna = enrol(api, name="Zoë Müller")
    r = api.post("/transactions", json=sale(line("CRB", 250, description="Crème brûlée"), card=anna["card"], id="S-off"))
    assert r.status_code == 201
    failed = printer.results.get(timeout=10)
    assert failed["status"] == "failed" and failed["transaction_id"] == "S-off"
    assert "127.0.0.1" in failed["last_error"]
    assert [j["transaction_id"] for j in waiting_print_jobs(shop)] == ["S-off"]
    assert api.get("/transactions/S-off").status_code == 200  # the sale is there

    with CapturePrinter() as shop_printer:
        printer.printer_url = shop_printer.url  # the printer is back
        r = api.post("/transactions/S-off/receipt")
        assert r.status_code == 202 and r.get_json()["status"] == "queued"
        assert printer.results.get(timeout=10)["status"] == "printed"
        printout = decode_escpos(shop_printer.next_job())
    text = printout.text
    assert "Zoë" in text and "Crème brûlée" in text and "2,50 €" in text
    assert printout.barcodes == [("EAN13", anna["card"])]


def test_paper_out_leaves_the_receipt_queued_with_the_reason(api, printer):
    with CapturePrinter(paper="out") as shop_printer:
        printer.printer_url = shop_printer.url
        assert api.post("/transactions", json=sale(line(), id="S-paper")).status_code == 201
        result = printer.results.get(timeout=10)
    assert result["status"] == "failed"
    assert "paper" in result["last_error"].lower()


def test_a_replayed_sale_is_not_printed_twice(api, printer):
    with CapturePrinter() as shop_printer:
        printer.printer_url = shop_printer.url
        body = sale(line(), id="S-once")
        api.post("/transactions", json=body)
        assert printer.results.get(timeout=10)["status"] == "printed"
        assert api.post("/transactions", json=body).get_json()["replayed"] is True
        assert printer.results.empty()


def test_the_loyalty_block_for_a_till_that_prints_its_own_receipt(api):
    anna = enrol(api, name="Anna Schmidt", preferred_name="Anni", language="de")
    api.post("/transactions", json=sale(line("COF", 1000), card=anna["card"], id="S-block"))
    block = api.get("/transactions/S-block/loyalty-block").get_json()
    assert any("Anni" in ln for ln in block["lines"])
    assert any("10" in ln and "Punkte" in ln for ln in block["lines"])
    printout = decode_escpos(base64.b64decode(block["escpos_base64"]))
    assert "Anni" in printout.text
    api.post("/transactions", json=sale(line(), id="S-anon"))
    assert api.get("/transactions/S-anon/loyalty-block").get_json() == {"lines": [], "escpos_base64": ""}


def test_once_reprinted_nothing_is_left_waiting(api, shop, printer):
    api.post("/transactions", json=sale(line(), id="S-later"))
    assert printer.results.get(timeout=10)["status"] == "failed"
    with CapturePrinter() as shop_printer:
        printer.printer_url = shop_printer.url
        api.post("/transactions/S-later/receipt")
        assert printer.results.get(timeout=10)["status"] == "printed"
        shop_printer.next_job()
    assert waiting_print_jobs(shop) == []


def test_a_reprint_while_a_retry_is_pending_prints_the_receipt_once(api, printer):
    printer.clock = ticks = Ticks()
    printer.retry_delays = (60.0,)
    api.post("/transactions", json=sale(line(), id="S-twice"))
    assert printer.results.get(timeout=10)["status"] == "failed"  # a retry is now due in a minute

    with CapturePrinter() as shop_printer:
        printer.printer_url = shop_printer.url  # the printer is back
        assert api.post("/transactions/S-twice/receipt").status_code == 202
        reprinted = printer.results.get(timeout=10)
        assert reprinted["status"] == "printed"
        assert "S-twice" in decode_escpos(shop_printer.next_job()).text

        ticks.advance(printer, 61)
        retry = printer.results.get(timeout=10)  # the retry came due, found it printed, and left it
        assert retry == reprinted
        with pytest.raises(queue.Empty):
            shop_printer.next_job(timeout=0)


def test_a_receipt_waiting_for_a_printer_that_was_off_prints_by_itself_when_it_is_back(api, shop, printer):
    printer.retry_delays = (0.2,) * 50  # tries every 0.2 s, for ten seconds
    api.post("/transactions", json=sale(line(), id="S-back"))
    assert printer.results.get(timeout=10)["status"] == "failed"

    with CapturePrinter() as shop_printer:
        printer.printer_url = shop_printer.url  # switched on again; nobody presses reprint
        while (result := printer.results.get(timeout=10))["status"] != "printed":
            assert result["status"] == "failed"  # a retry that came due before the switch
        assert "S-back" in decode_escpos(shop_printer.next_job()).text
    assert result["transaction_id"] == "S-back" and result["attempts"] >= 2
    assert waiting_print_jobs(shop) == []


def test_a_device_printer_that_stops_taking_data_never_holds_up_the_checkout(api, shop, printer, tmp_path):
    """A USB printer out of paper behind /dev/usb/lp0, here a FIFO whose reader never reads:
    the write gives up after the printer timeout, and the receipt waits like after any fault."""
    printer.timeout = 0.3
    with stalled_device(tmp_path) as device:
        printer.printer_url = device
        r = api.post("/transactions", json=sale(line(), id="S-stuck"))
        assert r.status_code == 201
        failed = printer.results.get(timeout=10)
    assert failed["status"] == "failed" and failed["transaction_id"] == "S-stuck"
    assert "stopped taking data for 0.3 s" in failed["last_error"]
    assert api.get("/transactions/S-stuck").status_code == 200  # the sale is committed
    assert [j["transaction_id"] for j in waiting_print_jobs(shop)] == ["S-stuck"]


def test_a_receipt_names_the_promotion_the_sale_earned_under(api, shop, printer):
    programme(shop, promotions=[{"name": "Double Monday", "starts_on": "2026-06-01", "ends_on": "2026-06-30", "weekdays": [0], "multiplier": "2"}])
    anna = enrol(api, name="Anna Schmidt", language="en")
    monday = dt.datetime(2026, 6, 15, 9, 0, tzinfo=dt.timezone.utc)

    with CapturePrinter() as shop_printer:
        printer.printer_url = shop_printer.url
        api.post("/transactions", json=sale(line("COF", 500), card=anna["card"], at=monday, id="S-promo"))
        assert printer.results.get(timeout=10)["status"] == "printed"
        texts = [" ".join(ln.split()) for ln in decode_escpos(shop_printer.next_job()).texts()]

        # the manager renames it afterwards: the receipt of that sale keeps the name it was sold under
        programme(shop, promotions=[{"name": "Mad Monday", "starts_on": "2026-06-01", "ends_on": "2026-06-30", "weekdays": [0], "multiplier": "2"}])
        api.post("/transactions/S-promo/receipt")
        assert printer.results.get(timeout=10)["status"] == "printed"
        reprinted = [" ".join(ln.split()) for ln in decode_escpos(shop_printer.next_job()).texts()]

    assert "Promotion: Double Monday +5" in texts
    assert "Promotion +5" not in texts
    assert "Promotion: Double Monday +5" in reprinted
