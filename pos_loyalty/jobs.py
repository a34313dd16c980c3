"""Work the server does by itself: the daily expiry run."""
from __future__ import annotations

import logging
import threading

from .services.points import expire_points

log = logging.getLogger("pos_loyalty.jobs")
DAY_SECONDS = 24 * 3600


class DailyJobs:
    """Runs the expiry job at start-up and then once a day, on its own thread, until stopped."""

    def __init__(self, services, interval: float = DAY_SECONDS) -> None:
        self.services = services
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pos-loyalty-daily", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                result = expire_points(self.services.shop)
                log.info("expiry run: %(points)s points expired for %(customers)s customers", result)
            except Exception:  # keep serving; the next run will try again
                log.exception("expiry run failed")
            self._stop.wait(self.interval)
