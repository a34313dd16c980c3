"""One log line per request, without card numbers or tokens in it."""
from __future__ import annotations

import logging
import re
import time

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
