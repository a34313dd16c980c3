"""Work the server does by itself: the daily expiry run, then folding the report summaries."""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from .services.points import expire_points
from .services.reports import refresh_summaries

log = logging.getLogger("pos_loyalty.jobs")
DAY_SECONDS = 24 * 3600


class DailyJobs:
    """Runs the expiry job at start-up and then once a day, on its own thread, until stopped.

    ``on_run`` (optional) is called after every run with its result, or with None when the run
    failed; a test waits on it instead of sleeping.
    """

    def __init__(
        self,
        services,
        interval: float = DAY_SECONDS,
        on_run: Callable[[dict[str, Any] | None], None] | None = None,
    ) -> None:
        self.services = services
        self.interval = interval
        self.on_run = on_run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pos-loyalty-daily", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            result = None
            try:
                result = expire_points(self.services.shop)
                log.info("expiry run: %(points)s points expired for %(customers)s customers", result)
            except Exception:  # keep serving; the next run will try again
                log.exception("expiry run failed")
            try:  # fold the day's writes into the report summaries, so the first report has little to do
                if not refresh_summaries(self.services.shop)["current"]:
                    log.warning("the report summaries are not built: reports read the whole history until `pos-loyalty init` builds them")
            except Exception:
                log.exception("folding the report summaries failed")
            if self.on_run is not None:
                try:
                    self.on_run(result)
                except Exception:
                    log.exception("the expiry run's on_run callback failed")
            self._stop.wait(self.interval)
