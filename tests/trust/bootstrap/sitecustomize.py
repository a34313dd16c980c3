"""Breaks the service on purpose, inside a server process, to show a test can tell.

Python imports ``sitecustomize`` at start-up from the first directory on its path that has one;
a test puts this directory on ``PYTHONPATH`` of a ``pos-loyalty serve`` it starts. Nothing happens
unless ``POS_LOYALTY_TEST_BREAK`` names a fault:

``read-then-write-redemption``
    Checkout as a careless hand would write it: the customer's balance is read before the sale's
    write transaction, with no lock (``Customers.get_for_update`` becomes a plain read of that
    earlier balance, ``Database.write_lock`` is gone), a moment passes, and the sale then
    writes "balance read minus points spent". Two tills redeeming at once both see the points
    and both spend them.
"""
from __future__ import annotations

import os
import threading
import time

FAULT = os.environ.get("POS_LOYALTY_TEST_BREAK", "")
_checked = threading.local()


def _break_redemption() -> None:
    from sqlalchemy.orm.attributes import set_committed_value

    from pos_loyalty.persistence import db, models, repositories
    from pos_loyalty.services import transactions

    connect = db.connect

    def connect_without_write_lock(url, **kw):
        database = connect(url, **kw)
        database.write_lock = None
        return database

    db.connect = connect_without_write_lock

    def get_without_lock(self, customer_id):
        customer = self.s.get(models.Customer, customer_id)
        balance = getattr(_checked, "balance", None)
        if customer is not None and balance is not None:
            set_committed_value(customer, "balance", balance)  # the balance as it was checked
        return customer

    repositories.Customers.get_for_update = get_without_lock

    record_sale = transactions.record_sale

    def check_then_record_sale(shop, request, **kw):
        if request.card_number and request.rewards:
            with shop.uow(read_only=True) as uow:
                card = uow.cards.get(request.card_number)
                customer = uow.customers.get(card.customer_id) if card else None
                _checked.balance = customer.balance if customer else None
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
