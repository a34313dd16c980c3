"""Logs are read by whoever looks after the till: no password, token, full card number, email or
phone number may ever be in them.

Canary values go in through every door — the CLI (users, tills, a customer import with a row it
rejects), the till API (enrolment, look-ups by card, email and phone, a sale, a clash, a wrong
token) and the screens (a wrong and a right password, the cashier screen, the panel's customer
search, a new staff login) — while every log line is captured: ``caplog`` at DEBUG for every
logger in this process, and everything the real server (at log level DEBUG) prints.
"""
from __future__ import annotations

import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

import pytest
from click.testing import CliRunner

from pos_loyalty.cli import main
from tests.support.factories import line, sale

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

MANAGER_PASSWORD = "Canary-Manager-Pass-4417"
WRONG_PASSWORD = "Canary-Wrong-Guess-9913"
NEW_STAFF_PASSWORD = "Canary-New-Staff-5521"
EMAIL = "zed.canary-7731@example.org"
PHONE = "+49 170 5550199"
IMPORTED_EMAIL = "ida.canary-2264@example.org"
IMPORTED_PHONE = "+49 151 4440788"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """A browser on the real server: cookies, redirects followed, each form's CSRF token sent."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        self.csrf = ""

    def open(self, path: str, form: dict | None = None) -> tuple[int, str]:
        data = None
        if form is not None:
            data = urllib.parse.urlencode({**form, "csrf_token": self.csrf}).encode()
        try:
            with self.opener.open(self.base + path, data=data, timeout=60) as r:
                status, page = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, page = e.code, e.read().decode()
        found = CSRF_FIELD.search(page)
        if found:
            self.csrf = found.group(1)
        return status, page


def cli(env: dict[str, str], *args: str, stdin: str = "") -> str:
    result = CliRunner().invoke(main, list(args), input=stdin, env=env, catch_exceptions=False)
    assert result.exit_code in (0, 1), result.output
    return result.output


def test_no_password_token_card_number_email_or_phone_reaches_any_log(prepared_shop, serve, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="pos_loyalty")
    env = prepared_shop.env(log_level="DEBUG")

    # the CLI
    cli(env, "users", "add", "mia", "--role", "manager", stdin=MANAGER_PASSWORD + "\n")
    token = cli(env, "till", "add", "till-canary").strip().splitlines()[-1]
    rows = tmp_path / "customers.csv"
    columns = "name,email,phone,birthday,preferred_name,language,marketing_consent,card_number,opening_balance"
    rows.write_text(
        f"{columns}\nIda Canary,{IMPORTED_EMAIL},{IMPORTED_PHONE},,,,yes,,10\n"
        f"Ida Again,{IMPORTED_EMAIL},{IMPORTED_PHONE},,,,no,,0\n"
    )
    assert "1 row rejected" in cli(env, "customers", "import", str(rows))

    # the till API
    server = serve(env)
    status, zed = server.call("POST", "/api/v1/customers", {"name": "Zed Canary", "email": EMAIL, "phone": PHONE}, token=token)
    assert status == 201
    card = zed["cards"][0]["number"]
    for path in (f"/api/v1/cards/{card}", f"/api/v1/customers?q={urllib.parse.quote(EMAIL)}",
                 f"/api/v1/customers?q={urllib.parse.quote(PHONE)}", f"/api/v1/customers?q={card}"):
        assert server.call("GET", path, token=token)[0] == 200
    assert server.call("POST", "/api/v1/transactions", sale(line("COF", 1000), card=card), token=token)[0] == 201
    assert server.call("POST", "/api/v1/customers", {"name": "Zed Again", "email": EMAIL}, token=token)[0] == 409
    assert server.call("GET", f"/api/v1/cards/{card}", token=token + "x")[0] == 401

    # the screens
    browser = Browser(server.base)
    browser.open("/sign-in")
    assert browser.open("/sign-in", {"username": "mia", "password": WRONG_PASSWORD})[0] == 401
    assert browser.open("/sign-in", {"username": "mia", "password": MANAGER_PASSWORD})[0] == 200
    assert browser.open(f"/cashier?card={card}")[0] == 200
    for query in (EMAIL, PHONE, card):
        assert browser.open("/panel/customers?" + urllib.parse.urlencode({"q": query}))[0] == 200
    browser.open("/panel/users")
    form = {"username": "zoe", "role": "cashier", "password": NEW_STAFF_PASSWORD, "repeated": NEW_STAFF_PASSWORD}
    assert browser.open("/panel/users", form)[0] == 200
    assert browser.open("/sign-out", {})[0] == 200
    server.stop()

    logged = server.log_text() + "\n" + caplog.text + "\n".join(
        record.exc_text or "" for record in caplog.records
    )
    assert "pos_loyalty.requests" in logged and "GET /api/v1/cards/" in logged  # the logs were captured
    secret_key = (prepared_shop.data_dir / "secret_key").read_text().strip()
    canaries = {
        "the manager's password": MANAGER_PASSWORD, "a wrong password": WRONG_PASSWORD,
        "a new login's password": NEW_STAFF_PASSWORD, "the till token": token, "the session secret": secret_key,
        "the card number": card, "the email": EMAIL, "the imported email": IMPORTED_EMAIL,
        "the phone number": PHONE, "the phone number's digits": "1705550199", "the imported phone's digits": "1514440788",
    }
    digits_only = re.sub(r"[\s()/-]", "", logged)  # "+49 170 555-0199" written any way
    found = [
        what for what, canary in canaries.items()
        if canary.lower() in logged.lower() or (canary.isdigit() and canary in digits_only)
    ]
    assert not found, f"in the logs: {', '.join(found)}"
