"""Never lose a sale: the sale is committed before printing, and a printer fault queues the receipt."""
from __future__ import annotations

import base64
import queue

import pytest

from pos_loyalty.services.receipts import waiting_print_jobs
from tests.support.escpos_capture import CapturePrinter, closed_port, decode_escpos
from tests.support.factories import enrol, line, sale

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
