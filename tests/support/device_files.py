"""Device-file printers for tests (``file://`` URLs), made of FIFOs so nothing needs hardware.

* :func:`stalled_device` — a printer that has stopped taking data, like a ``/dev/usb/lp0`` whose
  printer ran out of paper: the FIFO has a reader (so it opens) that never reads, and its buffer
  is already full, so the first byte of a receipt has nowhere to go.
* :func:`unread_fifo` — a FIFO nobody has open for reading: an unplugged printer's device.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def stalled_device(directory: Path) -> Iterator[str]:
    fifo = directory / "lp0"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # opens, and never reads
    filler = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        while True:
            os.write(filler, b"\0" * 65536)
    except BlockingIOError:
        pass  # full: the pipe takes no more until someone reads
    try:
        yield f"file://{fifo}"
    finally:
        os.close(filler)
        os.close(reader)


@contextmanager
def unread_fifo(directory: Path) -> Iterator[str]:
    fifo = directory / "lp1"
    os.mkfifo(fifo)
    yield f"file://{fifo}"
