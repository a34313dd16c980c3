"""Where a customer stands: balance, tier, next reward, next expiry; and the card summary the
cashier screen shows on a scan."""
from __future__ import annotations

import datetime as dt
from typing import Any

from ..domain.cards import mask_card_number
from ..domain.errors import Conflict, NotFound
from ..domain.ledger import in_birthday_week, last_valid_day
from ..domain.programme import Programme, format_multiplier
from .access import till_of_token_later
from .context import Shop, UnitOfWork
from .lots import open_lots_later
from .programme import offer_of, programme_as_of

ROLLING = dt.timedelta(days=365)


def greeting_name(customer) -> str | None:
    if customer.preferred_name:
        return customer.preferred_name
    return customer.name.split()[0] if customer.name and customer.name.split() else None


def points_position(uow: UnitOfWork, shop: Shop, customer, *, programme: Programme, rolling: int | None = None,
                    held=None, rewards=None) -> dict[str, Any]:
    """Balance, tier and the distance to the next, next reward, rewards redeemable now, next expiry.

    Three reads: the rolling spend (unless given), the active rewards, and (only when there are
    points that could expire) the ledger, replayed to find the open lots. ``held`` and ``rewards``
    are those two reads already sent (``open_lots_later``, ``rewards.rows_later``), if they were.
    """
    now = shop.now()
    if rolling is None:
        rolling = uow.transactions.spend_since(customer.id, now - ROLLING)
    balance = customer.balance
    # A balance of zero or less leaves no open lot (a deficit is only ever left once every lot is
    # used up), so there is nothing to expire and no need to read the ledger.
    expiry = None
    if balance > 0:
        lots = (held or open_lots_later(uow, customer.id)).get()
        expiry = lots.lots.next_expiry(now)
        if uow.read_only:
            lots.remember()  # a reader's snapshot holds committed entries only
    return position_of(
        programme, shop, balance=balance, rolling=rolling, expiry=expiry,
        rewards=(rewards or uow.rewards.rows_later(active_only=True)).get(), birthday=customer.birthday, now=now,
    )


def position_of(
    programme: Programme, shop: Shop, *, balance: int, rolling: int, expiry: tuple[int, dt.datetime] | None, rewards, birthday, now: dt.datetime
) -> dict[str, Any]:
    """Where a customer stands, from what was read: no database here, so a checkout can work it
    out for the balance it is about to write."""
    today = shop.local_date(now)
    tier = programme.tier_for(rolling)
    nxt = programme.next_tier(rolling)
    offers = [o for o in map(offer_of, rewards) if o.active and o.available(today, tier.code)]
    redeemable = [o for o in offers if o.points_cost <= balance] if balance > 0 else []
    ahead = min((o for o in offers if o.points_cost > balance), key=lambda o: (o.points_cost, o.id), default=None)
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
            {"id": ahead.id, "name": ahead.name, "points_cost": ahead.points_cost, "points_needed": ahead.points_cost - max(balance, 0)}
            if ahead
            else None
        ),
        "rewards_redeemable": [{"id": o.id, "name": o.name, "points_cost": o.points_cost, "kind": o.kind} for o in redeemable],
        "birthday_week": in_birthday_week(today, birthday, programme.birthday_window_days),
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


def card_summary(shop: Shop, card_number: str, *, till_token: str | None = None) -> dict[str, Any]:
    """Everything the cashier screen shows when this card is scanned. On SQLite its reads see one
    moment; on PostgreSQL each sees what was committed when it ran, as inside a READ COMMITTED
    transaction, without the BEGIN and ROLLBACK, and they go in two round trips (``in_one_trip``):
    the till and the card's holder, then everything else about the customer.
    With ``till_token``, the till holding it is checked first, in the same unit of work
    (``access.till_of_token``: ``TokenRefused`` if none does)."""
    with shop.uow(read_only=True, one_snapshot=False) as uow:
        now = shop.now()
        with uow.in_one_trip():  # (PostgreSQL: the till and the card's holder in one round trip)
            till = till_of_token_later(uow, till_token) if till_token is not None else None
            customer = uow.customers.card_holder_with_visits_later(card_number, rolling_since=now - ROLLING)
        if till is not None:  # (the answers are read once the round trip is back)
            till.get()  # (TokenRefused before anything else is used)
        customer = customer.get()
        if customer is None:
            raise NotFound(f"no customer has the card {card_number}", field="card_number")
        if customer.erased_at is not None:
            raise NotFound("this card's account was erased at the customer's request", field="card_number")
        programme = programme_as_of(uow, customer.latest_programme_id)  # (read with the holder)
        with uow.in_one_trip():  # (PostgreSQL: all that follows in one round trip)
            cards = uow.cards.rows_of_customer_later(customer.id)
            held = open_lots_later(uow, customer.id) if customer.balance > 0 else None
            rewards = uow.rewards.rows_later(active_only=True)
            favourites = uow.products.favourite_rows_later(customer.id)
            follow_ups = uow.follow_ups.open_rows_for_later(customer.id)
        cards = cards.get()
        if customer.card_status != "active":
            newer = any(c.status == "active" for c in cards)
            raise Conflict(
                f"this card is blocked ({customer.card_blocked_reason or 'lost'}); "
                + ("ask for the customer's new card" if newer else "issue the customer a new card: the account and its points are kept"),
                field="card_number",
                customer_id=customer.id,
            )
        position = points_position(uow, shop, customer, programme=programme, rolling=int(customer.rolling_spend), held=held,
                                   rewards=rewards)
        last_visit = customer.last_sale_at
        return {
            "card": {"number": card_number, "masked": mask_card_number(card_number), "status": customer.card_status},
            "customer": customer_dict(customer, cards),
            "greeting_name": greeting_name(customer),
            **position,
            "favourites": [{"sku": f.sku, "description": f.description, "visits": f.visits} for f in favourites.get()],
            "last_visit": last_visit.isoformat() if last_visit else None,
            "open_follow_ups": [
                {"id": f.id, "opened_at": f.opened_at.isoformat(), "reason": f.reason} for f in follow_ups.get()
            ],
        }
