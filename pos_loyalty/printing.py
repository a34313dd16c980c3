"""The print queue's worker: prints committed receipts, and keeps failed ones for a reprint.

A checkout never waits for the printer: the view commits the sale, records a print job and hands
its id to this worker's queue. A printer that is off, unplugged or out of paper marks the job
failed with the reason; the worker tries again with backoff, and a reprint (API or panel) queues
it anew.
"""
from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from typing import Callable

from drivers.printer import PrinterError, print_receipt

from .services.receipts import ReceiptOptions, queue_receipt, receipt_for, record_print_result, waiting_print_jobs

log = logging.getLogger("pos_loyalty.printing")
RETRY_DELAYS = (2.0, 10.0, 60.0, 300.0)


class PrintQueue:
    def __init__(
        self,
        shop,
        printer_url: str,
        *,
        profile: str,
        options: ReceiptOptions,
        timeout: float = 3.0,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        on_result: Callable[[dict], None] | None = None,
    ) -> None:
        self.shop = shop
        self.printer_url = printer_url
        self.profile = profile
        self.options = options
        self.timeout = timeout
        self.retry_delays = retry_delays
        self.on_result = on_result
        self._jobs: queue.Queue[tuple[int, str, int]] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pos-loyalty-printer", daemon=True)

    def start(self) -> None:
        for job in waiting_print_jobs(self.shop):  # receipts left queued by a previous run
            self._jobs.put((job["id"], job["transaction_id"], 0))
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._jobs.put((-1, "", 0))
        self._thread.join(timeout=self.timeout + 2)

    def submit(self, transaction_id: str) -> dict:
        """Queue a (re)print; returns the job as stored. Called after the sale is committed."""
        job = queue_receipt(self.shop, transaction_id)
        self._jobs.put((job["id"], transaction_id, 0))
        return job

    def _run(self) -> None:
        retries: list[tuple[float, int, str, int]] = []  # (due, job id, transaction id, attempt)
        while not self._stop.is_set():
            timeout = max(0.0, retries[0][0] - time.monotonic()) if retries else None
            try:
                job_id, transaction_id, attempt = self._jobs.get(timeout=timeout)
            except queue.Empty:
                _, job_id, transaction_id, attempt = heapq.heappop(retries)
            if job_id < 0:
                break
            error = self._print(transaction_id)
            try:
                result = record_print_result(self.shop, job_id, error=error)
            except Exception:  # the database is away: the job stays queued and is retried at start-up
                log.exception("could not record the outcome of print job %s", job_id)
                continue
            if error:
                log.warning("receipt %s queued for reprint: %s", transaction_id, error)
                if attempt < len(self.retry_delays):
                    heapq.heappush(retries, (time.monotonic() + self.retry_delays[attempt], job_id, transaction_id, attempt + 1))
            if self.on_result:
                self.on_result(result)

    def _print(self, transaction_id: str) -> str | None:
        try:
            receipt = receipt_for(self.shop, transaction_id, self.options)
            print_receipt(receipt, self.printer_url, profile=self.profile, timeout=self.timeout)
        except PrinterError as exc:
            return str(exc)
        except Exception as exc:  # a receipt that cannot be laid out must not stop the queue
            log.exception("receipt for %s could not be printed", transaction_id)
            return f"{type(exc).__name__}: {exc}"
        return None
