"""The serial scanner's scans reach the open cashier screen by themselves (server-sent events)."""
from __future__ import annotations

import http.client
import os
import threading
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from pos_loyalty.domain.cards import ean13_check_digit
from pos_loyalty.scanning import CounterScanner, HubFull, ScanHub, Subscription
from pos_loyalty.services.access import add_user
from pos_loyalty.services.customers import block_card, enrol_customer, issue_card
from tests.browser.screens import screenshot, sign_in

WAIT = 10


def ean13(first12: str) -> str:
    return first12 + ean13_check_digit(first12)


ANNIES_CARD = ean13("271234567890")  # 2712345678905
PRODUCT = ean13("400638133393")
UNKNOWN_CARD = ean13("279999999999")


class SerialScannerAtTheCounter:
    """A scanner at the far end of a pty: bytes written here arrive on ``path`` as if scanned."""

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        self.path = os.ttyname(self._slave)

    def scan(self, code: str) -> None:
        os.write(self._master, code.encode() + b"\r")

    def unplug(self) -> None:
        for fd in (self._master, self._slave):
            os.close(fd)


@pytest.fixture
def counter_scanner():
    device = SerialScannerAtTheCounter()
    yield device
    device.unplug()


@pytest.fixture
def settings_overrides(request):
    """The till reads the pty as its scanner in the tests that plug one in, and no scanner otherwise."""
    if "counter_scanner" in request.fixturenames:
        return {"scanner_url": request.getfixturevalue("counter_scanner").path}
    return {}


@pytest.fixture
def annie(shop) -> dict:
    return enrol_customer(shop, {"name": "Anna Schmidt", "preferred_name": "Annie",
                                 "preferences": {"allergies": ["peanuts"]}}, card_number=ANNIES_CARD)


@pytest.mark.browser
def test_a_card_read_by_the_serial_scanner_appears_on_the_screen_untouched(page, live_server, counter_scanner, annie, shop):
    add_user(shop, "anna", "anna-password", "cashier")
    bob = enrol_customer(shop, {"name": "Bob Berg"})
    lost_card = bob["cards"][0]["number"]
    block_card(shop, lost_card, reason="lost", actor="mia")
    issue_card(shop, bob["id"], actor="mia")
    sign_in(page, "anna", "anna-password")
    expect(page.locator("#scanner-status")).to_contain_text("Scanner ready")

    counter_scanner.scan(PRODUCT)  # a tin of beans: not the loyalty screen's business
    counter_scanner.scan(ANNIES_CARD)
    expect(page.locator("#greeting")).to_have_text("Annie")
    expect(page.locator("#allergies")).to_contain_text("peanuts")
    expect(page).to_have_url(f"{live_server.url}/cashier?card={ANNIES_CARD}")
    screenshot(page, "cashier-serial-scan")

    counter_scanner.scan(UNKNOWN_CARD)
    expect(page.locator("#card-problem")).to_contain_text("Unknown card")

    counter_scanner.scan(lost_card)
    expect(page.locator("#card-problem")).to_contain_text("This card is blocked (lost); ask for the customer's new card")


# -- the hub and the scanner bridge, without a browser ----------------------------------------------


class Counter:
    """The bridge from the scanner to the hub, with one screen listening."""

    def __init__(self, shop) -> None:
        self.hub = ScanHub()
        self.bridge = CounterScanner(shop, self.hub, "loop://")
        self.screen = self.hub.subscribe()

    def scan(self, code: str) -> None:
        self.bridge.on_scan(type("Scan", (), {"code": code})())

    def pushed(self) -> list[str]:
        got = []
        while (push := self.screen.next(timeout=0)) is not None:
            got.append(push.value)
        return got


def test_only_loyalty_cards_are_pushed_to_the_screen(shop, annie):
    imported = enrol_customer(shop, {"name": "Cem Kaya"}, card_number="OLD-CARD-0042")
    counter = Counter(shop)
    for code in (PRODUCT, ANNIES_CARD, ANNIES_CARD[:12] + "0", "OLD-CARD-0042", "SOMETHING-ELSE", UNKNOWN_CARD):
        counter.scan(code)
    assert counter.pushed() == [ANNIES_CARD, imported["cards"][0]["number"], UNKNOWN_CARD]


def test_every_open_screen_gets_the_scan_and_a_screen_that_stopped_reading_is_dropped():
    hub = ScanHub()
    reading, stuck = hub.subscribe(), hub.subscribe()
    for n in range(40):
        hub.publish(f"27{n:011d}")
        assert reading.next(timeout=0).value == f"27{n:011d}"
    assert hub.subscribers == 1
    drained = []
    while (push := stuck.next(timeout=0)) is not None and push is not Subscription.CLOSED:
        drained.append(push)
    assert push is Subscription.CLOSED  # the stuck screen is told it was let go


def test_the_hub_refuses_more_screens_than_it_has_room_for_and_ends_every_stream_on_close():
    hub = ScanHub(max_subscribers=2)
    first, second = hub.subscribe(), hub.subscribe()
    with pytest.raises(HubFull):
        hub.subscribe()
    hub.close()
    assert first.next(timeout=WAIT) is Subscription.CLOSED
    assert second.next(timeout=WAIT) is Subscription.CLOSED


def test_publishing_from_many_threads_loses_nothing():
    hub = ScanHub()
    screen = hub.subscribe()
    threads = [threading.Thread(target=lambda n=n: [hub.publish(f"{n}-{i}") for i in range(4)]) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = [screen.next(timeout=0).value for _ in range(16)]
    assert sorted(got) == sorted(f"{n}-{i}" for n in range(4) for i in range(4))


def _open_stream(live_server, cookie: str) -> http.client.HTTPConnection:
    parts = urlsplit(live_server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=WAIT)
    conn.request("GET", "/cashier/events", headers={"Cookie": cookie, "Accept": "text/event-stream"})
    return conn


@pytest.fixture
def cashier_cookie(app, shop) -> str:
    add_user(shop, "anna", "anna-password", "cashier")
    client = app.test_client()
    page = client.get("/sign-in").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    client.post("/sign-in", data={"username": "anna", "password": "anna-password", "csrf_token": token})
    return f"session={client.get_cookie('session').value}"


def test_the_event_stream_ends_when_the_screen_goes_away_or_the_service_stops(live_server, cashier_cookie, annie):
    hub = live_server.web.hub
    conn = _open_stream(live_server, cashier_cookie)
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Content-Type").startswith("text/event-stream")
    assert hub.wait_for_subscribers(1, WAIT)
    hub.publish(ANNIES_CARD)
    received = b""
    while b"Annie" not in received:
        received += response.read1(65536)
    assert b"event: card\n" in received

    response.close()  # the screen goes away: a write after that fails, and the stream lets go of its thread
    conn.close()
    for _ in range(50):
        hub.publish(ANNIES_CARD)
        if hub.wait_for_subscribers(0, 0.2):
            break
    assert hub.subscribers == 0

    again = _open_stream(live_server, cashier_cookie).getresponse()
    assert hub.wait_for_subscribers(1, WAIT)
    live_server.web.stop()  # the service stops: every stream ends
    assert again.read().endswith(b"\n\n")
    assert hub.subscribers == 0


def test_the_event_stream_is_only_for_signed_in_staff(live_server):
    conn = _open_stream(live_server, "")
    assert conn.getresponse().status == 401
