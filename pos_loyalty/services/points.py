"""Goodwill and corrective adjustments, the expiry run, and reading a customer's ledger."""
from __future__ import annotations

from typing import Any

from ..domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from ..domain.ledger import expiry_for, last_valid_day, replay
from .context import Shop
from .programme import current_programme

ROLES = ("cashier", "manager")


def adjust_points(shop: Shop, customer_id: int, points: int, *, reason: str, user: str, role: str) -> dict[str, Any]:
    """Grant goodwill points (or, for a manager, correct a balance) with who and why.

    A cashier may grant up to the programme's cashier limit per adjustment; only a manager takes
    points away or goes beyond that, up to the manager limit. A correction never takes more points
    than the customer holds: only a return of points already spent leaves a balance below zero.
    """
    if role not in ROLES:
        raise InvalidInput(f"the role is one of {', '.join(ROLES)}", field="role")
    if not reason or not reason.strip():
        raise InvalidInput("say why the points are adjusted", field="reason")
    if not user or not user.strip():
        raise InvalidInput("say who adjusts the points", field="user")
    if isinstance(points, bool) or not isinstance(points, int):
        raise InvalidInput("points are a whole number", field="points")
    if points == 0:
        raise InvalidInput("an adjustment is not zero", field="points")
    with shop.uow() as uow:
        programme = current_programme(uow)
        limit = programme.cashier_goodwill_limit if role == "cashier" else programme.manager_goodwill_limit
        if role == "cashier" and points < 0:
            raise Forbidden("only a manager can take points away", field="points")
        if abs(points) > limit:
            raise Forbidden(f"a {role} can adjust at most {limit} points at a time", field="points")
        customer = uow.customers.get_for_update(customer_id)
        if customer is None or customer.erased_at is not None:
            raise NotFound(f"there is no customer {customer_id}", field="customer_id")
        if points < 0 and customer.balance + points < 0:
            raise Conflict(
                f"the customer holds {max(customer.balance, 0)} points; a correction cannot take away more",
                field="points", balance=customer.balance,
            )
        now = shop.now()
        entry = uow.ledger.add(
            customer_id=customer.id,
            kind="adjust",
            cause="adjustment",
            points=points,
            created_at=now,
            expires_at=expiry_for(now, programme.expiry_months, shop.timezone) if points > 0 else None,
            user=user.strip(),
            reason=reason.strip(),
        )
        before = customer.balance
        uow.customers.add_to_balance(customer, points)
        uow.audit.record(user.strip(), "points.adjust", "customer", str(customer.id), {"balance": before},
                         {"balance": customer.balance, "points": points, "reason": reason.strip(), "role": role})
        uow.commit()
        return {"entry_id": entry.id, "points": points, "balance_before": before, "balance_after": customer.balance}


def expire_points(shop: Shop) -> dict[str, int]:
    """Write an expiry entry for every lot past its date. Safe to run any number of times.

    Which customers may have points due is worked out in one read of the ledger, without holding
    up the tills (``Ledger.customers_with_lots_expiring_by``: customers whose points are all spent
    or expired already are not among them, so the work follows what is due, not the history);
    each of those is then locked, replayed and written in a short transaction of its own.
    """
    now = shop.now()
    with shop.uow(read_only=True) as uow:
        due = uow.ledger.customers_with_lots_expiring_by(now)
    customers = points = 0
    for customer_id in due:
        with shop.uow() as uow:
            customer = uow.customers.get_for_update(customer_id)
            lots = replay(uow.ledger.entries(customer_id))
            expired = lots.expired(now)
            if not expired:
                continue
            total = 0
            for lot in expired:
                uow.ledger.add(
                    customer_id=customer_id, kind="expire", cause="expiry", points=-lot.remaining, created_at=now,
                    lot_id=lot.entry_id,
                    reason=f"points valid through {last_valid_day(lot.expires_at, shop.timezone).isoformat()}",
                )
                total += lot.remaining
            uow.customers.add_to_balance(customer, -total)
            uow.commit()
            customers += 1
            points += total
    return {"customers": customers, "points": points}


def ledger_of(shop: Shop, customer_id: int, *, limit: int = 100) -> list[dict[str, Any]]:
    with shop.uow(read_only=True) as uow:
        if uow.customers.get(customer_id) is None:
            raise NotFound(f"there is no customer {customer_id}", field="customer_id")
        return [
            {
                "id": e.id,
                "kind": e.kind,
                "cause": e.cause,
                "points": e.points,
                "created_at": e.created_at.isoformat(),
                "expires_at": e.expires_at.isoformat() if e.expires_at else None,
                "transaction_id": e.transaction_id,
                "user": e.user,
                "reason": e.reason,
            }
            for e in uow.ledger.page(customer_id, limit=limit)
        ]


def transactions_of(shop: Shop, customer_id: int, *, limit: int = 50) -> list[dict[str, Any]]:
    with shop.uow(read_only=True) as uow:
        if uow.customers.get(customer_id) is None:
            raise NotFound(f"there is no customer {customer_id}", field="customer_id")
        return [
            {
                "id": t.id,
                "kind": t.kind,
                "original_id": t.original_id,
                "occurred_at": t.occurred_at.isoformat(),
                "total": t.total,
                "currency": t.currency,
                "points_earned": t.points_earned,
                "points_redeemed": t.points_redeemed,
                "lines": (t.response or {}).get("lines", []),
            }
            for t in uow.transactions.of_customer(customer_id, limit=limit)
        ]
