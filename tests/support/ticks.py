"""A clock for the print queue's retries that moves only when the test says."""
from __future__ import annotations


class Ticks:
    """A print queue's clock (``PrintQueue.clock``): a retry comes due on cue, never by waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, queue_, seconds: float) -> None:
        self.now += seconds
        queue_.wake()
