"""The till's devices: the receipt printer and the scanner as the till's settings name them (shown,
not edited: they are this till's own settings), the printer's status, a test page, the receipts
waiting in this station's print queue and the last ones it printed (a customer asking for a copy),
each with a reprint button. Tills sharing a database each see only their own receipts: a reprint
here prints on this till's printer, so another till's receipt is not offered."""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, current_app, flash, redirect, render_template, url_for

from pos_loyalty.domain.errors import LoyaltyError
from pos_loyalty.services.receipts import printed_print_jobs, waiting_print_jobs

from ..cashier import SCANNER_STATES
from ..errors import page_for_exception
from . import forms as F

bp = Blueprint("manager_devices", __name__, url_prefix="/panel/devices")
bp.register_error_handler(Exception, page_for_exception)

STATUS_TIMEOUT = 1.0  # seconds: the page waits at most this long for the printer to answer
PRINTED_SHOWN = 10  # the last receipts printed here, offered for a copy
PAPER_WORDS = {"ok": "Paper OK", "near-end": "Paper running low", "out": "Out of paper", "unknown": "Paper: the printer cannot tell"}


def services():
    return current_app.extensions["pos_loyalty"]


def _station() -> str:
    """The station whose receipts this page deals with: the running queue's, else the setting."""
    queue = services().printer
    return queue.station if queue is not None else services().settings.station


def _scanner() -> dict[str, str]:
    state = current_app.extensions["pos_loyalty_web"]
    if not state.scanner_url:
        return {"state": "off", "text": "No serial scanner: a keyboard-wedge scanner types into the cashier screen"}
    pushed = state.hub.scanner_status
    if pushed is None:
        return {"state": "off", "text": "Scanner: starting"}
    state_name, text = SCANNER_STATES.get(pushed.value, ("problem", f"Scanner: {pushed.value}"))
    return {"state": state_name, "text": text}


@bp.route("", strict_slashes=False)
def show():
    settings = services().settings
    printer = None
    if settings.printer_url:
        from drivers.printer import printer_status  # escpos, PIL and barcode load when a printer is asked about, not at start-up

        printer = printer_status(settings.printer_url, profile=settings.printer_profile, timeout=STATUS_TIMEOUT)
        printer["paper_words"] = PAPER_WORDS.get(str(printer["paper"]), f"Paper: {printer['paper']}")
    jobs = [{**job, "created_at": dt.datetime.fromisoformat(job["created_at"])} for job in waiting_print_jobs(services().shop, station=_station())]
    printed = [{**job, "printed_at": dt.datetime.fromisoformat(job["printed_at"])}
               for job in printed_print_jobs(services().shop, station=_station(), limit=PRINTED_SHOWN)]
    return render_template(
        "manager/devices.html",
        settings=settings,
        printer=printer,
        scanner=_scanner(),
        jobs=jobs,
        printed=printed,
        station=_station(),
        queue_running=services().printer is not None,
    )


@bp.route("/test-print", methods=["POST"])
def test_print():
    settings = services().settings
    if not settings.printer_url:
        flash("No receipt printer is set up on this till (setting printer_url).", "error")
        return redirect(url_for(".show"))
    from drivers.printer import PrinterError, print_receipt, test_page

    try:
        print_receipt(test_page(settings.shop_name, settings.printer_columns), settings.printer_url, profile=settings.printer_profile)
    except PrinterError as exc:
        flash(F.sentence(f"the test page did not print: {exc}"), "error")
    else:
        flash("The test page is printing: check the ruler reaches both edges and the € and accents look right.", "success")
    return redirect(url_for(".show"))


@bp.route(f"/print-jobs/<{F.ID}:job_id>/reprint", methods=["POST"])
def reprint(job_id: int):
    queue = services().printer
    offered = [*waiting_print_jobs(services().shop, station=_station()),
               *printed_print_jobs(services().shop, station=_station(), limit=PRINTED_SHOWN)]
    job = next((j for j in offered if j["id"] == job_id), None)
    if job is None:
        flash("That receipt is not offered here any more: it waits for another till's printer, or it is not among this till's last printed.", "info")
    elif queue is None:
        flash("No receipt printer is set up on this till (setting printer_url), so nothing can print.", "error")
    else:
        try:
            queue.submit(job["transaction_id"])
        except LoyaltyError as refused:
            flash(F.sentence(refused.message), "error")
        else:
            flash(f"The receipt for {job['transaction_id']} is sent to the printer again.", "success")
    return redirect(url_for(".show"))
