"""One log line per request, without card numbers or tokens in it."""
from __future__ import annotations

import logging
import re
import time
from typing import Callable

log = logging.getLogger("pos_loyalty.requests")
CARD_IN_PATH = re.compile(r"(/cards/)([^/?]+)")


def mask_path(path: str) -> str:
    return CARD_IN_PATH.sub(lambda m: m.group(1) + ("*" * max(len(m.group(2)) - 4, 0)) + m.group(2)[-4:], path)


class RequestLog:
    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        status_holder = {}

        def _start(status, headers, exc_info=None):
            status_holder["status"] = status.split(" ", 1)[0]
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, _start)
        finally:
            log.info(
                "%s %s %s %.1fms",
                environ.get("REQUEST_METHOD"),
                mask_path(environ.get("PATH_INFO", "")),
                status_holder.get("status", "-"),
                (time.perf_counter() - started) * 1000,
            )


class QueueDepthLog:
    """Stands in for waitress's ``waitress.queue`` logger, which warns "Task queue depth is N" for
    every request that finds all the server's threads busy: with sixteen tills on eight threads, a
    line for nearly every sale (and a few per cent of the server's time spent writing them). This
    says it at most once per ``every`` seconds, with how many requests waited and the deepest
    queue since the last such line. waitress calls it under its own lock."""

    def __init__(self, logger: logging.Logger | None = None, *, every: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger or logging.getLogger("waitress.queue")
        self.every = every
        self.clock = clock
        self._quiet_until = float("-inf")
        self._waited = 0
        self._deepest = 0

    def warning(self, message: str, depth: int, *args) -> None:
        self._waited += 1
        self._deepest = max(self._deepest, depth)
        now = self.clock()
        if now < self._quiet_until:
            return
        waited, deepest = self._waited, self._deepest
        self._waited = self._deepest = 0
        self._quiet_until = now + self.every
        self.logger.warning(
            "all threads busy: %d request(s) waited for one since the last such line, at most %d at once",
            waited, deepest,
        )
