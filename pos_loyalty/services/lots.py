"""A customer's open lots of points (what expires when), without replaying the whole ledger on
every sale.

The next points to expire, on every receipt and cashier screen, come from replaying the
customer's ledger (``domain.ledger.replay``). Replayed whole, that costs ~5 µs an entry: a weekly
customer of three years has ~200, and their sale took twice as long as a new customer's. Where
the ledger's ids follow commit order (SQLite), the open lots as of the last entry read are kept
in memory per customer, and the next read continues from there with only the newer entries;
the result is the same as a whole replay (``replay``'s docstring says why). Elsewhere, or for a
customer not in memory, the whole ledger is read, as before.

What is kept is only ever committed history: a reader sees nothing else, and a writer keeps what
it read (before its own writes) only once its commit has succeeded.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from ..domain.ledger import Lots, replay
from ..later import Later
from .context import UnitOfWork

REMEMBERED = 50_000  # customers (a few hundred bytes each)


@dataclass(frozen=True)
class OpenLots:
    customer_id: int
    lots: Lots
    last_entry_id: int  # the highest entry id the lots include (0: none)
    _cache: "LotsCache | None"

    def remember(self) -> None:
        """Keep these lots for the customer's next read: call once the history they come from is
        known to be committed (a read-only unit of work, or after a successful commit)."""
        if self._cache is not None:
            self._cache.put(self.customer_id, self.last_entry_id, self.lots)


class LotsCache:
    """The open lots of the customers served last, least recently used forgotten first."""

    def __init__(self, size: int = REMEMBERED) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._held: OrderedDict[int, tuple[int, Lots]] = OrderedDict()

    def get(self, customer_id: int) -> tuple[int, Lots] | None:
        with self._lock:
            held = self._held.get(customer_id)
            if held is not None:
                self._held.move_to_end(customer_id)
            return held

    def put(self, customer_id: int, last_entry_id: int, lots: Lots) -> None:
        with self._lock:
            self._held[customer_id] = (last_entry_id, lots)
            self._held.move_to_end(customer_id)
            while len(self._held) > self.size:
                self._held.popitem(last=False)


def _cache(uow: UnitOfWork) -> LotsCache | None:
    if not uow.ledger.ids_follow_commits:
        return None
    cache = uow.memo.get("open lots")
    if cache is None:
        cache = uow.memo.setdefault("open lots", LotsCache())
    return cache


def open_lots_later(uow: UnitOfWork, customer_id: int):
    """The customer's open lots as the ledger stands in this unit of work, to be had later
    (``get()``): inside the unit of work's ``in_one_trip`` on PostgreSQL the ledger's read goes
    with the others sent there; elsewhere nothing is read until (and unless) it is asked for."""
    if not uow.batching or _cache(uow) is not None:
        return Later.lazy(lambda: _open_lots(uow, customer_id))
    return uow.ledger.entries_later(customer_id).then(lambda entries: _lots_of(customer_id, entries, None, None))


def _open_lots(uow: UnitOfWork, customer_id: int) -> OpenLots:
    cache = _cache(uow)
    known = cache.get(customer_id) if cache is not None else None
    if known is None:
        return _lots_of(customer_id, uow.ledger.entries(customer_id), None, cache)
    last, before = known
    return _lots_of(customer_id, uow.ledger.entries(customer_id, after=last), (last, before), cache)


def _lots_of(customer_id: int, entries, known, cache) -> OpenLots:
    if known is None:
        lots = replay(entries)
        last = entries[-1].id if entries else 0
    else:
        last, before = known
        lots = replay(entries, start=before) if entries else before
        last = entries[-1].id if entries else last
    return OpenLots(customer_id, lots, last, cache)
