"""From the serial scanner to the cashier screen: loyalty cards scanned at the counter, pushed
to every open cashier screen.

``ScanHub`` fans each card number out to its subscribers (one per open screen), each through its
own bounded ``queue.Queue``; a subscriber that stops reading is dropped rather than allowed to
hold scans up. ``CounterScanner`` reads the scanner named by the ``scanner_url`` setting and
publishes only what is a loyalty card: a product barcode or a misread is none of the screen's
business.
"""
from __future__ import annotations

import atexit
import logging
import queue
import threading
from dataclasses import dataclass

from .services.context import Shop

log = logging.getLogger("pos_loyalty.scanning")

SUBSCRIBER_BACKLOG = 16


@dataclass(frozen=True)
class Push:
    """One thing to tell the screens: ``card`` (a card number) or ``scanner`` (its status)."""

    kind: str
    value: str


class HubFull(Exception):
    """More screens are listening than the server should give threads to."""


class HubClosed(Exception):
    """The service is stopping."""


class Subscription:
    """One screen's place in the hub; iterate ``next()`` until it returns ``CLOSED``."""

    CLOSED = Push("closed", "")

    def __init__(self, hub: "ScanHub") -> None:
        self._hub = hub
        self.queue: queue.Queue[Push] = queue.Queue(maxsize=SUBSCRIBER_BACKLOG)

    def next(self, timeout: float) -> Push | None:
        """The next push, ``CLOSED`` once the hub closed or dropped us, or None after ``timeout``."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._hub._drop(self)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ScanHub:
    """Thread-safe fan-out of pushes to the open cashier screens."""

    def __init__(self, *, max_subscribers: int = 4) -> None:
        self.max_subscribers = max_subscribers
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._subscribers: list[Subscription] = []
        self._closed = False
        self.scanner_status: Push | None = None

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def wait_for_subscribers(self, count: int, timeout: float) -> bool:
        """Wait until exactly ``count`` screens listen; False if that did not happen in time."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._subscribers) == count, timeout)

    def subscribe(self) -> Subscription:
        with self._lock:
            if self._closed:
                raise HubClosed("the service is stopping")
            if len(self._subscribers) >= self.max_subscribers:
                raise HubFull(f"{self.max_subscribers} screens are already listening to the scanner")
            sub = Subscription(self)
            if self.scanner_status is not None:
                sub.queue.put_nowait(self.scanner_status)
            self._subscribers.append(sub)
            self._changed.notify_all()
            return sub

    def publish(self, code: str) -> int:
        """Push a scanned card number to every screen; returns how many screens got it."""
        return self._send(Push("card", code))

    def publish_status(self, status: str) -> int:
        """Tell the screens whether the scanner is connected (kept for screens that open later)."""
        push = Push("scanner", status)
        with self._lock:
            self.scanner_status = push
        return self._send(push)

    def _send(self, push: Push) -> int:
        with self._lock:
            subscribers = list(self._subscribers)
        delivered = 0
        for sub in subscribers:
            try:
                sub.queue.put_nowait(push)
                delivered += 1
            except queue.Full:  # that screen has stopped reading: let it go
                log.info("dropping a cashier screen that stopped reading scans")
                self._drop(sub)
        return delivered

    def _drop(self, sub: Subscription) -> None:
        with self._lock:
            if sub not in self._subscribers:
                return
            self._subscribers.remove(sub)
            self._changed.notify_all()
        _wake(sub)

    def close(self) -> None:
        """End every stream; used when the service stops."""
        with self._lock:
            self._closed = True
            subscribers, self._subscribers = self._subscribers, []
            self._changed.notify_all()
        for sub in subscribers:
            _wake(sub)


def _wake(sub: Subscription) -> None:
    """Make the subscriber's next ``next()`` return CLOSED, even if its queue is full."""
    while True:
        try:
            sub.queue.put_nowait(Subscription.CLOSED)
            return
        except queue.Full:
            try:
                sub.queue.get_nowait()
            except queue.Empty:
                pass


class CounterScanner:
    """The serial scanner at the counter, feeding ``hub``; ``stop()`` is safe to call twice."""

    def __init__(self, shop: Shop, hub: ScanHub, url: str, *, baudrate: int = 9600) -> None:
        from drivers.scanner import scanner_for

        self.shop = shop
        self.hub = hub
        self.url = url
        self._source = scanner_for(url, self.on_scan, on_status=self.on_status, baudrate=baudrate)
        self._started = False

    def is_card(self, code: str) -> bool:
        from drivers.scanner import classify_scan

        return classify_scan(code, store_prefix=self.shop.card_prefix, known_card=self._known_card) == "card"

    def _known_card(self, code: str) -> bool:
        """An imported (Code 128) card number is a card only if some customer has it."""
        with self.shop.uow(read_only=True) as uow:
            return uow.cards.get(code) is not None

    def on_scan(self, scan) -> None:
        if self.is_card(scan.code):
            self.hub.publish(scan.code)

    def on_status(self, status: str, detail: str) -> None:
        self.hub.publish_status(status)

    def start(self) -> None:
        self._source.start()
        self._started = True
        atexit.register(self.stop)

    def stop(self) -> None:
        if self._started:
            self._started = False
            atexit.unregister(self.stop)
            self._source.stop()
        self.hub.close()


def start_counter_scanner(shop: Shop, hub: ScanHub, url: str, *, baudrate: int = 9600) -> CounterScanner | None:
    """Start reading ``url`` (at ``baudrate``, for an RS-232 scanner) if one is configured; a
    scanner this process already reads is reported, not fatal: the cashier screen still takes
    typed and keyboard-wedge cards."""
    if not url:
        return None
    scanner = CounterScanner(shop, hub, url, baudrate=baudrate)
    try:
        scanner.start()
    except Exception as exc:  # ScannerBusy: another app in this process reads the port
        log.warning("the scanner on %s cannot be read: %s", url, exc)
        return None
    return scanner
