"""The counter's commands, run as the real `pos-loyalty` process."""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading

import pytest

from tests.support.escpos_capture import CapturePrinter, decode_escpos
from tests.support.factories import enrol, line, sale


def run_cli(app, *args: str, **env: str) -> subprocess.CompletedProcess:
    settings = app.extensions["pos_loyalty"].settings
    environ = {
        **os.environ,
        "POS_LOYALTY_DATA_DIR": str(settings.data_dir),
        "POS_LOYALTY_DATABASE_URL": settings.database_url,
        "POS_LOYALTY_TIMEZONE": settings.timezone,
        "POS_LOYALTY_LOCALE": settings.locale,
        **env,
    }
    return subprocess.run([sys.executable, "-m", "pos_loyalty.cli", *args], env=environ, capture_output=True, text=True, timeout=60)


def test_receipt_show_renders_the_statement_as_text(app, api):
    zoe = enrol(api, name="Zoë Müller", language="de")
    api.post("/transactions", json=sale(line("CRB", 250, description="Crème brûlée"), card=zoe["card"], id="S-cli"))
    out = run_cli(app, "receipt", "show", "S-cli", "--columns", "32")
    assert out.returncode == 0, out.stderr
    assert "Hallo Zoë!" in out.stdout
    assert "Crème brûlée" in out.stdout and "2,50 €" in out.stdout
    assert all(len(ln) <= 32 for ln in out.stdout.splitlines())
    missing = run_cli(app, "receipt", "show", "nope")
    assert missing.returncode == 1 and "no transaction nope" in missing.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_printer_test_prints_a_test_page(app):
    with CapturePrinter() as shop_printer:
        out = run_cli(app, "printer", "test", POS_LOYALTY_PRINTER_URL=shop_printer.url)
        assert out.returncode == 0, out.stderr
        printout = decode_escpos(shop_printer.next_job())
    assert "€" in printout.text and "Printer test" in printout.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_printer_test_without_a_printer_says_what_to_set(app):
    out = run_cli(app, "printer", "test")
    assert out.returncode == 1 and "printer_url" in out.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_scanner_listen_prints_scans_as_they_arrive(app):
    master, slave = os.openpty()
    settings = app.extensions["pos_loyalty"].settings
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "pos_loyalty.cli", "scanner", "listen", "--url", os.ttyname(slave)],
        env={**os.environ, "POS_LOYALTY_DATA_DIR": str(settings.data_dir), "POS_LOYALTY_DATABASE_URL": settings.database_url},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout], daemon=True).start()

    def wait_for(fragment: str) -> str:
        while True:
            ln = lines.get(timeout=15)
            if fragment in ln:
                return ln

    try:
        wait_for("scanner connected")
        os.write(master, b"]E02712345678902\r")
        card = wait_for("2712345678902"[-4:])
        assert "card" in card and "2712345678902" not in card  # masked, like any log line
        os.write(master, b"4006381333931\r\n")
        assert "product" in wait_for("4006381333931")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        os.close(master)
        os.close(slave)


def test_receipt_show_loyalty_only_prints_just_the_customers_statement(app, api):
    zoe = enrol(api, name="Zoë Müller", language="de")
    api.post("/transactions", json=sale(line("CRB", 250, description="Crème brûlée"), card=zoe["card"], id="S-block"))
    out = run_cli(app, "receipt", "show", "S-block", "--loyalty-only", "--columns", "32")
    assert out.returncode == 0, out.stderr
    assert "Hallo Zoë!" in out.stdout and "Punktestand" in out.stdout
    assert "Crème brûlée" not in out.stdout and "2,50 €" not in out.stdout  # the till prints its own items
    assert all(len(ln) <= 32 for ln in out.stdout.splitlines())

    api.post("/transactions", json=sale(line(), id="S-anon"))
    anonymous = run_cli(app, "receipt", "show", "S-anon", "--loyalty-only")
    assert anonymous.returncode == 0, anonymous.stderr
    assert anonymous.stdout.strip() == "(an anonymous sale has no loyalty statement)"
