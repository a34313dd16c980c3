"""Tills sharing one database: each prints, requeues and lists only its own receipts.

The app under test is one till (station ``till-2``, no printer of its own unless a test gives it
one); ``till-1`` is a second print queue on the same database, as another till's service would
run it. Both print for real, to capture printers on 127.0.0.1.
"""
from __future__ import annotations

import queue

import pytest

from pos_loyalty.config import ConfigError, default_station, load_settings
from pos_loyalty.printing import PrintQueue
from pos_loyalty.services.receipts import ReceiptOptions, claim_unowned_print_jobs, waiting_print_jobs
from tests.support.escpos_capture import CapturePrinter, closed_port, decode_escpos
from tests.support.factories import line, sale
from tests.support.staff import text_of
from tests.support.ticks import Ticks

PRINTER_OFF = f"tcp://127.0.0.1:{closed_port()}"


@pytest.fixture
def settings_overrides():
    return {"station": "till-2", "scanner_url": ""}


@pytest.fixture
def tills(shop):
    """Start another station's print queue on this shop's database: ``tills("till-1", url)``."""
    started: list[PrintQueue] = []

    def start(station: str, printer_url: str, *, retry_delays: tuple[float, ...] = ()) -> PrintQueue:
        till = PrintQueue(shop, printer_url, profile="TM-T88V", options=ReceiptOptions(), timeout=0.5, retry_delays=retry_delays, station=station)
        till.results = queue.Queue()
        till.on_result = till.results.put
        till.start()
        started.append(till)
        return till

    yield start
    for till in started:
        till.stop()


def test_a_till_starting_up_requeues_only_its_own_receipts(api, shop, tills):
    till_1 = tills("till-1", PRINTER_OFF)
    api.post("/transactions", json=sale(line(), id="TILL1-S1"))
    till_1.submit("TILL1-S1")
    assert till_1.results.get(timeout=10)["status"] == "failed"  # waits at till 1

    with CapturePrinter() as till_2_printer:
        till_2 = tills("till-2", till_2_printer.url)  # starts up with till 1's receipt waiting
        api.post("/transactions", json=sale(line(), id="TILL2-S1"))
        till_2.submit("TILL2-S1")
        printed = till_2.results.get(timeout=10)
        assert printed["transaction_id"] == "TILL2-S1" and printed["status"] == "printed"
        printout = decode_escpos(till_2_printer.next_job())
    assert "TILL2-S1" in printout.text and "TILL1-S1" not in printout.text
    assert till_2.results.empty()
    assert [j["transaction_id"] for j in waiting_print_jobs(shop, station="till-1")] == ["TILL1-S1"]
    assert waiting_print_jobs(shop, station="till-2") == []


def test_a_reprint_at_another_till_takes_the_receipt_over_and_the_first_till_lets_it_go(api, shop, tills):
    till_1 = tills("till-1", PRINTER_OFF, retry_delays=(60.0,))
    till_1.clock = ticks = Ticks()
    api.post("/transactions", json=sale(line(), id="S-moved"))
    till_1.submit("S-moved")
    assert till_1.results.get(timeout=10)["status"] == "failed"  # till 1 will try again in a minute

    with CapturePrinter() as till_1_printer, CapturePrinter() as till_2_printer:
        till_1.printer_url = till_1_printer.url  # till 1's printer is back too
        till_2 = tills("till-2", till_2_printer.url)
        taken = till_2.submit("S-moved")  # the customer asks at till 2
        assert taken["station"] == "till-2"
        printed = till_2.results.get(timeout=10)
        assert printed["status"] == "printed"
        assert "S-moved" in decode_escpos(till_2_printer.next_job()).text

        ticks.advance(till_1, 61)
        let_go = till_1.results.get(timeout=10)  # till 1's retry came due and found it printed at till 2
        assert let_go == printed
        with pytest.raises(queue.Empty):
            till_1_printer.next_job(timeout=0)


def test_receipts_queued_before_tills_had_stations_are_printed_once_by_the_first_till_to_start(api, shop, tills):
    api.post("/transactions", json=sale(line(), id="S-old"))
    with shop.uow() as uow:  # as migration 0009 leaves a receipt that was waiting: no station
        uow.print_jobs.add("S-old", None)
        uow.commit()

    with CapturePrinter() as till_1_printer:
        till_1 = tills("till-1", till_1_printer.url)
        assert till_1.results.get(timeout=10)["status"] == "printed"
        assert "S-old" in decode_escpos(till_1_printer.next_job()).text
    assert waiting_print_jobs(shop) == []
    assert claim_unowned_print_jobs(shop, "till-2") == 0  # nothing left for a till starting later


def test_the_devices_page_lists_and_reprints_only_this_tills_receipts(api, shop, manager, tills):
    till_1 = tills("till-1", PRINTER_OFF)
    api.post("/transactions", json=sale(line(), id="TILL1-S1"))
    till_1.submit("TILL1-S1")
    job = till_1.results.get(timeout=10)
    assert job["status"] == "failed"

    page = text_of(manager.get("/panel/devices"))  # this app is till 2
    assert "till-2" in page
    assert "TILL1-S1" not in page and "Nothing waiting" in page

    assert manager.post(f"/panel/devices/print-jobs/{job['id']}/reprint").status_code == 302
    assert "not offered here any more" in text_of(manager.get("/panel/devices"))
    assert [(j["transaction_id"], j["station"]) for j in waiting_print_jobs(shop)] == [("TILL1-S1", "till-1")]


def test_a_station_is_named_by_its_host_unless_set_and_a_name_that_cannot_be_is_refused():
    assert load_settings({}, environ={}).station == default_station()
    assert load_settings({}, environ={"POS_LOYALTY_STATION": "till-3"}).station == "till-3"
    for bad in ("", " till", "till 3", "till/3", "x" * 65):
        with pytest.raises(ConfigError, match="station name"):
            load_settings({"station": bad}, environ={})


def test_a_receipt_waiting_when_the_shop_upgrades_is_kept_without_a_station_and_then_printed(app, api, shop, database_url, tills):
    """Migration 0009 adds the station to each job; a receipt left waiting before it gets none
    (nothing says which till queued it) and is printed by the first till to start afterwards."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from pos_loyalty.persistence.db import normalise_url
    from pos_loyalty.persistence.migrate import alembic_config

    api.post("/transactions", json=sale(line(), id="S-before"))
    app.extensions["pos_loyalty"].db.dispose()
    engine = create_engine(normalise_url(database_url))
    try:
        command.downgrade(alembic_config(engine), "0008")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO print_jobs (transaction_id, created_at, status, attempts, last_error)"
                " VALUES ('S-before', CURRENT_TIMESTAMP, 'failed', 1, 'refused')"
            ))
        command.upgrade(alembic_config(engine), "head")
    finally:
        engine.dispose()
    assert [(j["transaction_id"], j["station"]) for j in waiting_print_jobs(shop)] == [("S-before", None)]

    with CapturePrinter() as shop_printer:
        till = tills("till-2", shop_printer.url)
        assert till.results.get(timeout=10)["status"] == "printed"
        assert "S-before" in decode_escpos(shop_printer.next_job()).text


@pytest.fixture
def till_with_printer(settings_overrides):
    """This app as a till with a printer of its own (switched off: nothing needs to print)."""
    settings_overrides["printer_url"] = PRINTER_OFF
    return settings_overrides


def test_the_service_s_print_queue_is_the_station_its_settings_name(till_with_printer, app):
    queue_ = app.extensions["pos_loyalty"].printer
    assert queue_ is not None and queue_.station == "till-2"
