"""What every use case needs to know about the shop, handed in rather than imported."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Protocol
from zoneinfo import ZoneInfo


class UnitOfWork(Protocol):  # the repositories are duck-typed; see persistence/uow.py
    customers: Any
    cards: Any
    programmes: Any
    rewards: Any
    tills: Any
    users: Any
    transactions: Any
    ledger: Any
    products: Any
    feedback: Any
    follow_ups: Any
    audit: Any
    print_jobs: Any
    reports: Any
    privacy: Any
    memo: dict  # lives as long as the database connection: for what never changes once written
    read_only: bool  # a reader: sees committed work only
    batching: bool  # inside ``in_one_trip`` on PostgreSQL: ``..._later`` reads are sent, and read at ``get()``

    def in_one_trip(self) -> ContextManager[None]: ...

    def commit(self) -> None: ...

    def flush(self) -> None: ...


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class Shop:
    uow: Callable[..., ContextManager[UnitOfWork]]
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    currency: str = "EUR"
    locale: str = "en_GB"
    card_prefix: str = "27"
    shop_name: str = "Our Shop"
    clock: Callable[[], dt.datetime] = _utcnow

    def now(self) -> dt.datetime:
        return self.clock()

    def local_date(self, moment: dt.datetime | None = None) -> dt.date:
        return (moment or self.now()).astimezone(self.timezone).date()
