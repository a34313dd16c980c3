"""Breaks the service on purpose, inside a server process, to show a test can tell.

Python imports ``sitecustomize`` at start-up from the first directory on its path that has one;
a test puts this directory on ``PYTHONPATH`` of a ``pos-loyalty serve`` it starts. Nothing happens
unless ``POS_LOYALTY_TEST_BREAK`` names a fault:

``read-then-write-redemption``
    Checkout as a careless hand would write it: the customer's balance is read before the sale's
    write transaction, with no lock (``Customers.card_holder_later`` answers with that earlier balance
    and locks nothing, ``Database.write_lock`` is gone), a moment passes, and the sale then spends
    the points it checked. Two tills redeeming at once both see the points and both spend them.
"""
from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

FAULT = os.environ.get("POS_LOYALTY_TEST_BREAK", "")
_checked = threading.local()


def _break_redemption() -> None:
    from pos_loyalty.persistence import db, repositories
    from pos_loyalty.services import transactions

    connect = db.connect

    def connect_without_write_lock(url, **kw):
        database = connect(url, **kw)
        database.write_lock = None
        return database

    db.connect = connect_without_write_lock

    from pos_loyalty.later import Later

    card_holder_later = repositories.Customers.card_holder_later

    def card_holder_as_checked(self, card_number, *, for_update=False):
        holder = card_holder_later(self, card_number).get()  # never locked
        balance = getattr(_checked, "balance", None)
        if holder is None or balance is None:
            return Later.done(holder)
        return Later.done(SimpleNamespace(**{**holder._asdict(), "balance": balance}))  # the balance as it was checked

    repositories.Customers.card_holder_later = card_holder_as_checked

    record_sale = transactions.record_sale

    def check_then_record_sale(shop, request, **kw):
        if request.card_number and request.rewards:
            with shop.uow(read_only=True) as uow:
                holder = uow.customers.card_holder(request.card_number)
            _checked.balance = holder.balance if holder else None
            time.sleep(0.002)  # the moment between the check and the write
        try:
            return record_sale(shop, request, **kw)
        finally:
            _checked.balance = None

    transactions.record_sale = check_then_record_sale


if FAULT == "read-then-write-redemption":
    _break_redemption()
elif FAULT:
    raise SystemExit(f"POS_LOYALTY_TEST_BREAK={FAULT!r} is not a fault this bootstrap knows")
