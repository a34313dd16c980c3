"""When a till may say a sale, a return or a claimed sale happened.

The till stamps every transaction with its own clock, and what the points are is dated from that
stamp: their expiry, the promotions running, the birthday week, the rolling year of the tier. A
stamp far from the shop's own clock is a till whose clock is wrong, not a sale from another time;
taking it would award points under the wrong rules (a sale dated 2030 earns points that last until
2031), and a date near the end of the calendar cannot even be given an expiry date.
"""
from __future__ import annotations

import datetime as dt

from .errors import InvalidInput

CLOCK_TOLERANCE = dt.timedelta(hours=24)
"""How far ahead of the shop's clock a till's stamp may be. Till clocks drift by seconds or
minutes; the largest honest mistake is a till whose time zone is set wrong, which puts it at most
14 hours out. A day covers every such till and still refuses a wrong day, month or year."""

EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
"""No sale recorded by this service is older than this. Earlier stamps come from a till whose
clock was never set or lost its battery (they read 1970, 1980 or a year typed with two digits);
taking them would put points in lots that expired long ago and sales outside every report."""

LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.timezone.utc)
"""Whatever the shop's clock says, nothing is dated later: every date worked out from a stamp (an
expiry up to ten years on, the next year's birthday) stays inside the calendar."""


def check_occurred_at(occurred_at: dt.datetime, now: dt.datetime, *, field: str = "occurred_at") -> None:
    """Refuse a stamp more than ``CLOCK_TOLERANCE`` ahead of the shop's clock ``now``, or before
    ``EARLIEST``; raises InvalidInput naming ``field``."""
    if occurred_at < EARLIEST:
        raise InvalidInput(
            f"it is dated {occurred_at.isoformat()}, before {EARLIEST.date().isoformat()}: is the till's clock set?", field=field
        )
    if occurred_at > min(now + CLOCK_TOLERANCE, LATEST):
        raise InvalidInput(
            f"it is dated {occurred_at.isoformat()}, more than 24 hours ahead of the shop's clock "
            f"({now.isoformat()}): is the till's clock set?",
            field=field,
        )
