"""Where a customer stands: balance, tier, next reward, next expiry; and the card summary the
cashier screen shows on a scan."""
from __future__ import annotations

import datetime as dt
from typing import Any

from ..domain.cards import mask_card_number
from ..domain.errors import Conflict, NotFound
from ..domain.ledger import in_birthday_week, last_valid_day, replay
from ..domain.programme import Programme, format_multiplier
from .context import Shop, UnitOfWork
from .programme import current_programme, offer_of

ROLLING = dt.timedelta(days=365)


def greeting_name(customer) -> str | None:
    if customer.preferred_name:
        return customer.preferred_name
    return customer.name.split()[0] if customer.name and customer.name.split() else None


def points_position(uow: UnitOfWork, shop: Shop, customer, *, programme: Programme) -> dict[str, Any]:
    now = shop.now()
    today = shop.local_date(now)
    rolling = uow.transactions.rolling_spend(customer.id, now - ROLLING)
    tier = programme.tier_for(rolling)
    nxt = programme.next_tier(rolling)
    lots = replay(uow.ledger.entries(customer.id))
    expiry = lots.next_expiry(now)
    offers = [offer_of(r) for r in uow.rewards.all(active_only=True)]
    offers = [o for o in offers if o.available(today, tier.code)]
    balance = customer.balance
    redeemable = [o for o in offers if o.points_cost <= balance] if balance > 0 else []
    ahead = sorted((o for o in offers if o.points_cost > balance), key=lambda o: (o.points_cost, o.id))
    return {
        "balance": balance,
        "tier": {
            "code": tier.code,
            "name": tier.name,
            "multiplier": format_multiplier(tier.multiplier),
            "rolling_spend": rolling,
            "next": {"code": nxt.code, "name": nxt.name, "spend_needed": nxt.min_spend - rolling} if nxt else None,
        },
        "next_expiry": (
            {"points": expiry[0], "date": last_valid_day(expiry[1], shop.timezone).isoformat(), "expires_at": expiry[1].isoformat()}
            if expiry
            else None
        ),
        "next_reward": (
            {"id": ahead[0].id, "name": ahead[0].name, "points_cost": ahead[0].points_cost, "points_needed": ahead[0].points_cost - max(balance, 0)}
            if ahead
            else None
        ),
        "rewards_redeemable": [{"id": o.id, "name": o.name, "points_cost": o.points_cost, "kind": o.kind} for o in redeemable],
        "birthday_week": in_birthday_week(today, customer.birthday, programme.birthday_window_days),
        "ledger_balance": lots.balance,
    }


def customer_dict(customer, cards=()) -> dict[str, Any]:
    return {
        "id": customer.id,
        "name": customer.name,
        "preferred_name": customer.preferred_name,
        "greeting_name": greeting_name(customer),
        "email": customer.email,
        "phone": customer.phone,
        "birthday": customer.birthday.isoformat() if customer.birthday else None,
        "language": customer.language,
        "marketing_consent": customer.marketing_consent,
        "preferences": customer.preferences or {},
        "staff_notes": customer.staff_notes,
        "balance": customer.balance,
        "created_at": customer.created_at.isoformat(),
        "erased": customer.erased_at is not None,
        "cards": [
            {"number": c.number, "status": c.status, "issued_at": c.issued_at.isoformat(), "blocked_at": c.blocked_at.isoformat() if c.blocked_at else None}
            for c in cards
        ],
    }


def card_summary(shop: Shop, card_number: str) -> dict[str, Any]:
    """Everything the cashier screen shows when this card is scanned, in one read transaction."""
    with shop.uow(read_only=True) as uow:
        card = uow.cards.get(card_number)
        if card is None:
            raise NotFound(f"no customer has the card {card_number}", field="card_number")
        customer = uow.customers.get(card.customer_id)
        if card.status != "active":
            raise Conflict(
                "this card is blocked (reported lost); the customer's account has a newer card",
                field="card_number",
                customer_id=customer.id if customer else None,
            )
        if customer is None or customer.erased_at is not None:
            raise NotFound("this card's account was erased at the customer's request", field="card_number")
        programme = current_programme(uow)
        position = points_position(uow, shop, customer, programme=programme)
        last_visit = uow.transactions.last_visit(customer.id)
        return {
            "card": {"number": card.number, "masked": mask_card_number(card.number), "status": card.status},
            "customer": customer_dict(customer, uow.cards.of_customer(customer.id)),
            "greeting_name": greeting_name(customer),
            **{k: v for k, v in position.items() if k != "ledger_balance"},
            "favourites": [
                {"sku": f.sku, "description": f.description, "visits": f.visits} for f in uow.products.favourites(customer.id)
            ],
            "last_visit": last_visit.isoformat() if last_visit else None,
            "open_follow_ups": [
                {"id": f.id, "opened_at": f.opened_at.isoformat(), "reason": f.reason} for f in uow.follow_ups.open_for(customer.id)
            ],
        }
