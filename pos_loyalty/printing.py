"""The print queue's worker: prints committed receipts, and keeps failed ones for a reprint.

A checkout never waits for the printer: the view commits the sale, records a print job and hands
its id to this worker's queue. A printer that is off, unplugged or out of paper marks the job
failed with the reason; the worker tries again with backoff, and a reprint (API or panel) queues
it anew.

Each queue is one station's (the ``station`` setting): tills sharing a database each print, and
requeue at start-up, only the receipts queued for them. Before every attempt, first or retried,
the worker reads the job as it stands and prints it only if it is still waiting here: a retry
that comes due after a reprint has printed the receipt, or after another till's reprint took it
over, is dropped instead of printing it a second time. That one check covers what cancelling the
retry could not: a reprint made at another till, which this worker never hears of.
"""
from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from typing import Callable

from drivers.printer import PrinterError, print_receipt

from .config import default_station
from .services.receipts import (
    ReceiptOptions,
    claim_unowned_print_jobs,
    is_waiting_at,
    print_job,
    printed_before,
    queue_receipt,
    receipt_for,
    record_print_result,
    waiting_print_jobs,
)

log = logging.getLogger("pos_loyalty.printing")
RETRY_DELAYS = (2.0, 10.0, 60.0, 300.0)
_STOP, _WAKE = -1, -2  # (job ids are positive)


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
        station: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``on_result`` hears every job the worker is done with: as recorded after an attempt,
        or as found when it was dropped (printed meanwhile, or now another station's).
        ``station`` is the ``station`` setting; without one, this machine's default. ``clock``
        tells when a retry is due (tests move it, then ``wake`` the worker)."""
        self.shop = shop
        self.station = station or default_station()
        self.printer_url = printer_url
        self.profile = profile
        self.options = options
        self.timeout = timeout
        self.retry_delays = retry_delays
        self.on_result = on_result
        self.clock = clock
        self._jobs: queue.Queue[tuple[int, str, int]] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pos-loyalty-printer", daemon=True)

    def start(self) -> None:
        """Requeue this station's receipts left waiting by a previous run (and claim any queued
        before stations were recorded), then start the worker."""
        claim_unowned_print_jobs(self.shop, self.station)
        for job in waiting_print_jobs(self.shop, station=self.station):
            self._jobs.put((job["id"], job["transaction_id"], 0))
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._jobs.put((_STOP, "", 0))
        self._thread.join(timeout=self.timeout + 2)

    def wake(self) -> None:
        """Have the worker look at its retries now (after its clock moved on)."""
        self._jobs.put((_WAKE, "", 0))

    def submit(self, transaction_id: str) -> dict:
        """Queue a (re)print; returns the job as stored. Called after the sale is committed."""
        job = queue_receipt(self.shop, transaction_id, station=self.station)
        self._jobs.put((job["id"], transaction_id, 0))
        return job

    def _run(self) -> None:
        retries: list[tuple[float, int, str, int]] = []  # (due, job id, transaction id, attempt)
        while not self._stop.is_set():
            timeout = max(0.0, retries[0][0] - self.clock()) if retries else None
            try:
                job_id, transaction_id, attempt = self._jobs.get(timeout=timeout)
            except queue.Empty:
                job_id = _WAKE
            if job_id == _STOP:
                break
            if job_id == _WAKE:
                if not retries or retries[0][0] > self.clock():
                    continue
                _, job_id, transaction_id, attempt = heapq.heappop(retries)
            try:
                job = print_job(self.shop, job_id)
                if is_waiting_at(job, self.station):
                    error = self._print(transaction_id, copy=printed_before(self.shop, job_id))
                    job = record_print_result(self.shop, job_id, error=error)
                else:
                    log.info("print job %s (receipt %s) is no longer waiting here: not printed again", job_id, transaction_id)
                    error = None
            except Exception:  # the database is away: the job stays queued and is retried at start-up
                log.exception("could not read or record print job %s", job_id)
                continue
            if error:
                log.warning("receipt %s queued for reprint: %s", transaction_id, error)
                if attempt < len(self.retry_delays):
                    retries = [r for r in retries if r[1] != job_id]  # one retry per job: the newest failure's
                    heapq.heapify(retries)
                    heapq.heappush(retries, (self.clock() + self.retry_delays[attempt], job_id, transaction_id, attempt + 1))
            if job is not None and self.on_result:
                self.on_result(job)

    def _print(self, transaction_id: str, *, copy: bool = False) -> str | None:
        try:
            receipt = receipt_for(self.shop, transaction_id, self.options, copy=copy)
            print_receipt(receipt, self.printer_url, profile=self.profile, timeout=self.timeout)
        except PrinterError as exc:
            return str(exc)
        except Exception as exc:  # a receipt that cannot be laid out must not stop the queue
            log.exception("receipt for %s could not be printed", transaction_id)
            return f"{type(exc).__name__}: {exc}"
        return None
