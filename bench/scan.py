"""Scan to screen: from the scanner's bytes on a pseudo-terminal to the cashier screen's push.

The server reads the scanner through pyserial on the pty's device path (``scanner_url``), exactly
as it reads a USB-CDC scanner; a signed-in cashier's screen listens on ``/cashier/events``. The
clock starts when the card number and its CR are written to the pty and stops when the ``card``
event has fully arrived on the stream.
"""
from __future__ import annotations

import os
import re
import socket
import time
import tty
import urllib.parse
from dataclasses import dataclass

from .measure import Client, Timings, load_average

CSRF = re.compile(rb'name="csrf_token" value="([^"]+)"')
SESSION = re.compile(r"session=([^;]+)")


@dataclass
class Scanner:
    """The counter's scanner: a pty whose device path the server opens as a serial port."""

    master: int
    slave: int
    path: str

    @classmethod
    def open(cls) -> "Scanner":
        master, slave = os.openpty()
        tty.setraw(slave)
        return cls(master, slave, os.ttyname(slave))

    def scan(self, code: str) -> None:
        os.write(self.master, code.encode("ascii") + b"\r")

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


def sign_in(port: int, username: str, password: str) -> str:
    """Sign in through the form, as a cashier does; returns the session cookie."""
    client = Client(port)
    try:
        status, page, headers = client.send("GET", "/sign-in")
        cookie = SESSION.search(headers.get("Set-Cookie", "")).group(1)
        token = CSRF.search(page).group(1).decode()
        form = urllib.parse.urlencode({"username": username, "password": password, "csrf_token": token}).encode()
        status, body, headers = client.send("POST", "/sign-in", form, {
            "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"session={cookie}"})
        if status != 302:
            raise RuntimeError(f"sign-in answered {status}: {body[:300]!r}")
        return SESSION.search(headers.get("Set-Cookie", "")).group(1)
    finally:
        client.close()


class EventStream:
    """``/cashier/events`` read straight off the socket, so nothing buffers an event."""

    def __init__(self, port: int, session: str, timeout: float = 15.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(
            f"GET /cashier/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
            f"Cookie: session={session}\r\n\r\n".encode()
        )
        self.buffer = b""

    def wait_for(self, marker: bytes, *, then: bytes = b"\n\n") -> bytes:
        """Read until ``marker`` and the end of that event; returns the event and drops it from the buffer."""
        while True:
            start = self.buffer.find(marker)
            if start >= 0:
                end = self.buffer.find(then, start)
                if end >= 0:
                    event = self.buffer[start:end]
                    self.buffer = self.buffer[end + len(then):]
                    return event
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"the event stream ended before {marker!r}: {self.buffer[-300:]!r}")
            self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def scan_to_screen(port: int, scanner: Scanner, session: str, cards: list[str], *, count: int, max_seconds: float) -> Timings:
    stream = EventStream(port, session)
    timings = Timings()
    try:
        stream.wait_for(b": connected")
        stream.wait_for(b"event: scanner\ndata: ready")  # the server has the pty open
        for i in range(3):  # warm up
            scanner.scan(cards[-1 - i])
            stream.wait_for(b"event: card")
        started = time.perf_counter()
        for i in range(count):
            card = cards[i % len(cards)]
            t0 = time.perf_counter()
            scanner.scan(card)
            event = stream.wait_for(b"event: card")
            t1 = time.perf_counter()
            timings.seconds.append(t1 - t0)
            shown = card[-4:].encode() in event
            timings.statuses[200 if shown else 0] = timings.statuses.get(200 if shown else 0, 0) + 1
            timings.errors += not shown
            if t1 - started > max_seconds:
                break
        timings.elapsed = time.perf_counter() - started
    finally:
        stream.close()
    timings.load = load_average()
    return timings


def pty_floor(*, count: int, max_seconds: float) -> Timings:
    """The device floor: bytes written to a pty's master until they can be read from its slave."""
    master, slave = os.openpty()
    tty.setraw(slave)
    timings = Timings()
    try:
        started = time.perf_counter()
        for i in range(count):
            t0 = time.perf_counter()
            os.write(master, b"2712345678905\r")
            got = b""
            while not got.endswith(b"\r"):
                got += os.read(slave, 64)
            t1 = time.perf_counter()
            timings.seconds.append(t1 - t0)
            if t1 - started > max_seconds:
                break
        timings.elapsed = time.perf_counter() - started
    finally:
        os.close(master)
        os.close(slave)
    timings.load = load_average()
    return timings
