"""What the server writes to its log when the tills outnumber its threads: one line a minute
saying so, not one per request (waitress's own warning came for nearly every sale)."""
from __future__ import annotations

import logging

from pos_loyalty.wsgi_logging import QueueDepthLog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_queued_requests_are_reported_once_a_minute_with_how_many_waited_and_the_deepest_queue(caplog):
    clock = Clock()
    log = QueueDepthLog(logging.getLogger("waitress.queue"), every=60, clock=clock)
    with caplog.at_level(logging.WARNING, logger="waitress.queue"):
        log.warning("Task queue depth is %d", 1)  # the first: said at once
        for depth in (2, 5, 3):
            clock.now += 10
            log.warning("Task queue depth is %d", depth)  # within the minute: counted, not said
        clock.now += 31
        log.warning("Task queue depth is %d", 1)
    assert [r.getMessage() for r in caplog.records] == [
        "all threads busy: 1 request(s) waited for one since the last such line, at most 1 at once",
        "all threads busy: 4 request(s) waited for one since the last such line, at most 5 at once",
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records)
