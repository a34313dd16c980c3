"""Privacy requests: give a customer everything we hold about them, or erase it.

Erasure removes what identifies the person and keeps the shop's figures. The profile is blanked
(the name becomes "Erased customer #<id>"), cards are deleted (a card number identifies its
holder; the old card then scans as unknown and a sale with it is refused), what they buy is
forgotten, rating comments and follow-up texts are scrubbed, their sales lose the card number
and the customer details stored in the till's answer, and audit payloads about them or quoting
their identifiers are scrubbed. The customer row stays with its balance and ``erased_at`` set;
ledger entries keep their points, kinds and dates (the database refuses any change to those),
but the reasons staff typed for goodwill adjustments, and any reason quoting one of the
customer's identifiers, become "[erased]", the one change the ledger allows. Sales keep their
lines and totals, so points and takings still add up. All of it is one unit of work.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Iterable

from ..domain.errors import Conflict, InvalidInput, NotFound
from .context import Shop

ERASED = "[erased]"
AUDIT_KEYS_KEPT = frozenset({"role", "status"})  # words from a fixed list, never personal
CLOSED_ON_ERASURE = "closed: the customer's data was erased"
MIN_NAME_NEEDLE = 5  # a shorter name is too likely to occur in other texts by chance


def erased_name(customer_id: int) -> str:
    return f"Erased customer #{customer_id}"


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _check_actor(actor: str) -> str:
    if not isinstance(actor, str) or not actor.strip() or len(actor.strip()) > 100:
        raise InvalidInput("say who makes the request (up to 100 characters)", field="actor")
    return actor.strip()


# -- export ----------------------------------------------------------------------------------------


def export_customer(shop: Shop, customer_id: int, actor: str) -> dict[str, Any]:
    """Everything held about a customer, as one JSON-ready document. The export is audited (who,
    whom, when), and the audit entry holds nothing personal."""
    actor = _check_actor(actor)
    with shop.uow() as uow:
        customer = uow.customers.get(customer_id)
        if customer is None:
            raise NotFound(f"there is no customer {customer_id}", field="customer_id")
        p = uow.privacy
        cards = p.cards(customer.id)
        lines, redemptions = {}, {}
        for ln in p.lines(customer.id):
            lines.setdefault(ln.transaction_id, []).append(ln)
        for r in p.redemptions(customer.id):
            redemptions.setdefault(r.transaction_id, []).append(r)
        follow_ups = p.follow_ups(customer.id)
        audit = p.audit_about(customer.id, [c.number for c in cards], [f.id for f in follow_ups])
        now = shop.now()
        document = {
            "exported_at": now.isoformat(),
            "exported_by": actor,
            "shop": shop.shop_name,
            "customer": {
                "id": customer.id,
                "name": customer.name,
                "preferred_name": customer.preferred_name,
                "email": customer.email,
                "phone": customer.phone,
                "birthday": _iso(customer.birthday),
                "language": customer.language,
                "marketing_consent": customer.marketing_consent,
                "preferences": customer.preferences or {},
                "staff_notes": customer.staff_notes,
                "balance": customer.balance,
                "created_at": _iso(customer.created_at),
                "updated_at": _iso(customer.updated_at),
                "erased_at": _iso(customer.erased_at),
            },
            "cards": [
                {"number": c.number, "status": c.status, "issued_at": _iso(c.issued_at), "blocked_at": _iso(c.blocked_at),
                 "blocked_reason": c.blocked_reason}
                for c in cards
            ],
            "transactions": [_transaction(t, lines.get(t.id, []), redemptions.get(t.id, [])) for t in p.transactions(customer.id)],
            "ledger": [
                {"id": e.id, "kind": e.kind, "cause": e.cause, "points": e.points, "created_at": _iso(e.created_at),
                 "expires_at": _iso(e.expires_at), "transaction_id": e.transaction_id, "lot_id": e.lot_id, "user": e.user,
                 "reason": e.reason}
                for e in p.ledger(customer.id)
            ],
            "products": [
                {"sku": r.sku, "description": r.description, "visits": r.visits, "quantity_milli": r.quantity_milli,
                 "last_bought_at": _iso(r.last_bought_at)}
                for r in p.products(customer.id)
            ],
            "feedback": [
                {"id": f.id, "transaction_id": f.transaction_id, "satisfaction": f.satisfaction, "recommend": f.recommend,
                 "comment": f.comment, "complaint": f.complaint, "created_at": _iso(f.created_at)}
                for f in p.feedback(customer.id)
            ],
            "follow_ups": [
                {"id": f.id, "feedback_id": f.feedback_id, "transaction_id": f.transaction_id, "opened_at": _iso(f.opened_at),
                 "reason": f.reason, "resolved_at": _iso(f.resolved_at), "resolved_by": f.resolved_by, "resolution": f.resolution}
                for f in follow_ups
            ],
            "audit": [
                {"at": _iso(a.at), "actor": a.actor, "action": a.action, "entity": a.entity, "entity_id": a.entity_id,
                 "before": a.before, "after": a.after}
                for a in audit
            ],
        }
        uow.audit.record(actor, "customer.export", "customer", str(customer.id), None, None)
        uow.commit()
        return document


def _transaction(t, lines, redemptions) -> dict[str, Any]:
    return {
        "id": t.id,
        "kind": t.kind,
        "original_id": t.original_id,
        "occurred_at": _iso(t.occurred_at),
        "recorded_at": _iso(t.recorded_at),
        "cashier": t.cashier,
        "currency": t.currency,
        "card_number": t.card_number,
        "subtotal": t.subtotal,
        "discount": t.discount,
        "total": t.total,
        "eligible_spend": t.eligible_spend,
        "points_earned": t.points_earned,
        "points_redeemed": t.points_redeemed,
        "visit_code": t.visit_code,
        "claimed_at": _iso(t.claimed_at),
        "lines": [
            {"line_no": ln.line_no, "sku": ln.sku, "description": ln.description, "category": ln.category,
             "quantity_milli": ln.quantity_milli, "unit_price": ln.unit_price, "line_discount": ln.line_discount,
             "reward_discount": ln.reward_discount, "paid": ln.paid, "points": ln.points}
            for ln in lines
        ],
        "rewards": [{"reward_id": r.reward_id, "name": r.reward_name, "points": r.points, "discount": r.discount} for r in redemptions],
    }


# -- erasure ---------------------------------------------------------------------------------------


def _scrub_all(value: Any, key: str | None = None) -> Any:
    """Every text in a payload replaced; keys, numbers and the fixed-vocabulary words kept."""
    if isinstance(value, dict):
        return {k: _scrub_all(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_all(v) for v in value]
    if isinstance(value, str) and key not in AUDIT_KEYS_KEPT:
        return ERASED
    return value


def _scrub_quotes(value: Any, needles: Iterable[str]) -> Any:
    """Each text that contains one of the needles (ignoring case) replaced; the rest kept."""
    needles = [n.casefold() for n in needles if n]
    if isinstance(value, dict):
        return {k: _scrub_quotes(v, needles) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_quotes(v, needles) for v in value]
    if isinstance(value, str) and any(n in value.casefold() for n in needles):
        return ERASED
    return value


def _scrub_words(text: str, words: Iterable[str]) -> str:
    """Replace the words (and phrases) inside a free text, ignoring case."""
    for word in sorted({w for w in words if w}, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(word)}(?!\w)", ERASED, text, flags=re.IGNORECASE)
    return text


def erase_customer(shop: Shop, customer_id: int, actor: str, reason: str) -> dict[str, Any]:
    """Erase a customer's personal data on their request, keeping points and sales anonymised.

    Audited as ``customer.erase`` with the reason (any of the customer's identifiers in it
    replaced) and what was done, never who the customer was.
    """
    actor = _check_actor(actor)
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("say why the data is erased (for example: the customer asked in store)", field="reason")
    if len(reason.strip()) > 500:
        raise InvalidInput("is at most 500 characters", field="reason")
    with shop.uow() as uow:
        customer = uow.customers.get_for_update(customer_id)
        if customer is None:
            raise NotFound(f"there is no customer {customer_id}", field="customer_id")
        if customer.erased_at is not None:
            raise Conflict("this customer's data was already erased", field="customer_id")
        p = uow.privacy
        now = shop.now()
        cards = p.cards(customer.id)
        transactions = p.transactions(customer.id)
        card_numbers = sorted({c.number for c in cards} | {t.card_number for t in transactions if t.card_number})
        names = [n for n in (customer.name, customer.preferred_name) if n and len(n) >= MIN_NAME_NEEDLE]
        identifiers = [*card_numbers, *(x for x in (customer.email, customer.phone) if x), *names]
        name_words = [w for n in (customer.name, customer.preferred_name) if n for w in n.split() if len(w) >= 3]

        feedback = p.feedback(customer.id)
        follow_ups = p.follow_ups(customer.id)
        about = p.audit_about(customer.id, card_numbers, [f.id for f in follow_ups])
        about_ids = {a.id for a in about}
        for entry in about:
            entry.before, entry.after = _scrub_all(entry.before), _scrub_all(entry.after)
            if entry.entity == "card":
                entry.entity_id = None
        quoting = [a for a in p.audit_quoting(identifiers) if a.id not in about_ids]
        for entry in quoting:
            entry.before, entry.after = _scrub_quotes(entry.before, identifiers), _scrub_quotes(entry.after, identifiers)
            if entry.entity_id in identifiers:
                entry.entity_id = None

        anonymous = {"id": customer.id, "name": erased_name(customer.id), "preferred_name": None, "language": None, "card_number": None}
        for t in transactions:
            t.card_number = None
            if t.response:
                response = _scrub_quotes(t.response, identifiers)
                if response.get("customer") is not None:
                    response["customer"] = dict(anonymous)
                t.response = response
        for f in feedback:
            f.comment = None
        for f in follow_ups:
            f.reason = ERASED
            if f.resolved_at is None:
                f.resolved_at, f.resolved_by, f.resolution = now, actor, CLOSED_ON_ERASURE
            elif f.resolution is not None:
                f.resolution = ERASED
        # a goodwill adjustment's reason is what a member of staff wrote about this person; the
        # product's own reasons (a reward's name, "return of S1") are kept unless they quote them,
        # as is any other customer's entry that quotes them
        reasons = [entry_id for entry_id, owner, cause, text in p.ledger_reasons(customer.id, identifiers)
                   if text != ERASED and ((owner == customer.id and cause == "adjustment") or _scrub_quotes(text, identifiers) == ERASED)]
        uow.flush()
        reasons_scrubbed = p.blank_ledger_reasons(reasons, ERASED)
        cards_removed = p.delete_cards(customer.id)
        products_removed = p.delete_products(customer.id)

        customer.name = erased_name(customer.id)
        customer.preferred_name = customer.email = customer.phone = customer.language = customer.staff_notes = None
        customer.birthday = None
        customer.preferences = {}
        customer.marketing_consent = False
        customer.erased_at = customer.updated_at = now
        summary = {
            "customer_id": customer.id,
            "erased_at": now.isoformat(),
            "balance": customer.balance,
            "cards_removed": cards_removed,
            "products_forgotten": products_removed,
            "transactions_anonymised": len(transactions),
            "ratings_scrubbed": len(feedback),
            "follow_ups_scrubbed": len(follow_ups),
            "ledger_reasons_scrubbed": reasons_scrubbed,
            "audit_entries_scrubbed": len(about) + len(quoting),
        }
        uow.audit.record(
            actor, "customer.erase", "customer", str(customer.id), None,
            {"reason": _scrub_words(reason.strip(), [*identifiers, *name_words]),
             **{k: v for k, v in summary.items() if k not in ("customer_id", "erased_at", "balance")}},
        )
        uow.commit()
        return summary
