"""Enrolling and looking after customers: profiles, preferences, cards."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from ..domain.cards import check_card_number, new_card_number
from ..domain.errors import Conflict, InvalidInput, NotFound
from .context import Shop, UnitOfWork
from .summary import customer_dict

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PREFERENCE_KEYS = {
    "dietary": list,  # e.g. ["vegetarian"]
    "allergies": list,  # e.g. ["peanuts"]; shown prominently to the cashier
    "sizes": dict,  # e.g. {"shoe": "42"}
    "favourite_products": list,
    "packaging": str,  # e.g. "no plastic bag"
    "contact_channel": str,  # email | phone | sms | post | none
    "service_notes": str,  # e.g. "hard of hearing, face them when speaking"
}
CONTACT_CHANNELS = {"email", "phone", "sms", "post", "none"}
PROFILE_FIELDS = ("name", "preferred_name", "email", "phone", "birthday", "language", "marketing_consent", "preferences", "staff_notes")


def normalise_email(email: str | None) -> str | None:
    if email is None or not email.strip():
        return None
    email = email.strip().lower()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise InvalidInput("is not an email address", field="email")
    return email


def normalise_phone(phone: str | None) -> str | None:
    """Keep a leading + and the digits: ``+49 (30) 123-45`` -> ``+493012345``."""
    if phone is None or not phone.strip():
        return None
    text = phone.strip()
    digits = re.sub(r"[\s().\-/]", "", text)
    if not re.fullmatch(r"\+?\d{6,15}", digits):
        raise InvalidInput("is not a phone number (6 to 15 digits, optionally starting with +)", field="phone")
    return digits


def check_preferences(prefs: Any) -> dict[str, Any]:
    if prefs is None:
        return {}
    if not isinstance(prefs, dict):
        raise InvalidInput("must be an object", field="preferences")
    clean: dict[str, Any] = {}
    for key, value in prefs.items():
        kind = PREFERENCE_KEYS.get(key)
        where = f"preferences.{key}"
        if kind is None:
            raise InvalidInput(f"unknown preference; known ones are {', '.join(sorted(PREFERENCE_KEYS))}", field=where)
        if value is None:
            continue
        if kind is list:
            if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v.strip()) <= 100 for v in value) or len(value) > 50:
                raise InvalidInput("must be a list of short texts", field=where)
            clean[key] = [v.strip() for v in value]
        elif kind is dict:
            if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) and len(v) <= 50 for k, v in value.items()):
                raise InvalidInput("must map names to short texts, like {\"shoe\": \"42\"}", field=where)
            clean[key] = {k.strip(): v.strip() for k, v in value.items()}
        else:
            if not isinstance(value, str) or len(value) > 500:
                raise InvalidInput("must be a short text", field=where)
            if key == "contact_channel" and value not in CONTACT_CHANNELS:
                raise InvalidInput(f"is one of {', '.join(sorted(CONTACT_CHANNELS))}", field=where)
            clean[key] = value.strip()
    return clean


def _clean_profile(fields: dict[str, Any]) -> dict[str, Any]:
    clean = {}
    for key in PROFILE_FIELDS:
        if key not in fields:
            continue
        value = fields[key]
        if key == "name":
            if not isinstance(value, str) or not value.strip():
                raise InvalidInput("a customer needs a name", field="name")
            value = value.strip()
        elif key == "email":
            value = normalise_email(value)
        elif key == "phone":
            value = normalise_phone(value)
        elif key == "preferences":
            value = check_preferences(value)
        elif key in ("preferred_name", "language", "staff_notes") and isinstance(value, str):
            value = value.strip() or None
        elif key == "birthday" and value is not None and value > dt.date.today():
            raise InvalidInput("the birthday is in the future", field="birthday")
        clean[key] = value
    return clean


def _check_unique(uow: UnitOfWork, clean: dict[str, Any], customer_id: int | None = None) -> None:
    if clean.get("email"):
        other = uow.customers.by_email(clean["email"])
        if other is not None and other.id != customer_id:
            raise Conflict("another customer already has this email address", field="email")
    if clean.get("phone"):
        other = uow.customers.by_phone(clean["phone"])
        if other is not None and other.id != customer_id:
            raise Conflict("another customer already has this phone number", field="phone")


def _issue_number(uow: UnitOfWork, prefix: str) -> str:
    for _ in range(20):
        number = new_card_number(prefix)
        if uow.cards.get(number) is None:
            return number
    raise Conflict("could not find a free card number; try again")  # pragma: no cover


def enrol_in(uow: UnitOfWork, shop: Shop, fields: dict[str, Any], *, card_number: str | None, actor: str):
    """Enrol within an open unit of work (used by the API and by the CSV import)."""
    if "name" not in fields:
        raise InvalidInput("a customer needs a name", field="name")
    clean = _clean_profile(fields)
    _check_unique(uow, clean)
    if card_number:
        check = check_card_number(card_number)
        if not check.ok:
            raise InvalidInput(check.problem or "not a card number", field="card_number")
        if uow.cards.get(card_number) is not None:
            raise Conflict("this card number is already in use", field="card_number")
    now = shop.now()
    clean.setdefault("preferences", {})
    customer = uow.customers.add(created_at=now, updated_at=now, balance=0, **clean)
    card = uow.cards.add(card_number or _issue_number(uow, shop.card_prefix), customer.id)
    uow.audit.record(actor, "customer.enrol", "customer", str(customer.id), None, {"card": card.number})
    return customer, card


def enrol_customer(shop: Shop, fields: dict[str, Any], *, card_number: str | None = None, actor: str = "till") -> dict[str, Any]:
    with shop.uow() as uow:
        customer, card = enrol_in(uow, shop, fields, card_number=card_number, actor=actor)
        result = customer_dict(customer, [card])
        uow.commit()
        return result


def get_customer(shop: Shop, customer_id: int) -> dict[str, Any]:
    with shop.uow(read_only=True) as uow:
        customer = uow.customers.get(customer_id)
        if customer is None:
            raise NotFound(f"there is no customer {customer_id}", field="customer_id")
        return customer_dict(customer, uow.cards.of_customer(customer.id))


def update_customer(shop: Shop, customer_id: int, fields: dict[str, Any], *, actor: str = "till") -> dict[str, Any]:
    with shop.uow() as uow:
        customer = uow.customers.get_for_update(customer_id)
        if customer is None:
            raise NotFound(f"there is no customer {customer_id}", field="customer_id")
        if customer.erased_at is not None:
            raise Conflict("this customer's data was erased", field="customer_id")
        clean = _clean_profile(fields)
        _check_unique(uow, clean, customer.id)
        before = {k: _plain(getattr(customer, k)) for k in clean}
        for key, value in clean.items():
            setattr(customer, key, value)
        customer.updated_at = shop.now()
        uow.audit.record(actor, "customer.update", "customer", str(customer.id), before, {k: _plain(v) for k, v in clean.items()})
        result = customer_dict(customer, uow.cards.of_customer(customer.id))
        uow.commit()
        return result


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def search_customers(shop: Shop, text: str, *, limit: int = 25) -> list[dict[str, Any]]:
    if not text or not text.strip():
        raise InvalidInput("say what to search for: a card number, phone, email or name", field="q")
    with shop.uow(read_only=True) as uow:
        phone = None
        try:
            phone = normalise_phone(text)
        except InvalidInput:
            pass
        found = uow.customers.search(phone or text.strip(), limit=limit)
        if not found and phone:
            found = uow.customers.search(text.strip(), limit=limit)
        return [customer_dict(c, uow.cards.of_customer(c.id)) for c in found if c.erased_at is None]


def block_card(shop: Shop, card_number: str, *, reason: str = "lost", actor: str) -> dict[str, Any]:
    with shop.uow() as uow:
        card = uow.cards.get(card_number)
        if card is None:
            raise NotFound(f"there is no card {card_number}", field="card_number")
        if card.status == "blocked":
            raise Conflict("this card is already blocked", field="card_number")
        card.status, card.blocked_at, card.blocked_reason = "blocked", shop.now(), reason
        uow.audit.record(actor, "card.block", "card", card.number, {"status": "active"}, {"status": "blocked", "reason": reason})
        uow.commit()
        return {"number": card.number, "status": card.status}


def issue_card(shop: Shop, customer_id: int, *, card_number: str | None = None, actor: str) -> dict[str, Any]:
    """A new card on the same account (the old one is usually blocked first)."""
    with shop.uow() as uow:
        customer = uow.customers.get(customer_id)
        if customer is None or customer.erased_at is not None:
            raise NotFound(f"there is no customer {customer_id}", field="customer_id")
        if card_number:
            check = check_card_number(card_number)
            if not check.ok:
                raise InvalidInput(check.problem or "not a card number", field="card_number")
            if uow.cards.get(card_number) is not None:
                raise Conflict("this card number is already in use", field="card_number")
        card = uow.cards.add(card_number or _issue_number(uow, shop.card_prefix), customer.id)
        uow.audit.record(actor, "card.issue", "card", card.number, None, {"customer_id": customer.id})
        uow.commit()
        return {"number": card.number, "status": card.status, "customer_id": customer.id}
