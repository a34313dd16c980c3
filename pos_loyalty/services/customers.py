"""Enrolling and looking after customers: profiles, preferences, cards; and bringing customers in
from (or out to) a CSV file with their opening balances."""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..domain.cards import check_card_number, new_card_number
from ..domain.errors import Conflict, InvalidInput, LoyaltyError, NotFound
from ..domain.ledger import expiry_for
from .context import Shop, UnitOfWork
from .programme import current_programme
from .staff import record_export
from .summary import customer_dict

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z")
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}([_-][A-Za-z]{2,4})?\Z")
PHONE_SEPARATORS = re.compile(r"[\s().\-/]")
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
TEXT_LIMITS = {"name": 200, "preferred_name": 100, "staff_notes": 2000}
MAX_OPENING_BALANCE = 10**9


def _text(value: str) -> str:
    """Trimmed and in one Unicode form, so ``José`` typed two ways is one name."""
    return unicodedata.normalize("NFC", value).strip()


def normalise_email(email: str | None) -> str | None:
    """Email addresses are kept, compared and searched in lower case."""
    if email is None or (isinstance(email, str) and not email.strip()):
        return None
    if not isinstance(email, str):
        raise InvalidInput("is not an email address", field="email")
    email = _text(email).lower()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise InvalidInput("is not an email address", field="email")
    return email


def normalise_phone(phone: str | None) -> str | None:
    """Keep a leading + and the digits: ``+49 (30) 123-45`` -> ``+493012345``; ``0049 …`` -> ``+49…``."""
    if phone is None or (isinstance(phone, str) and not phone.strip()):
        return None
    if not isinstance(phone, str):
        raise InvalidInput("is not a phone number", field="phone")
    digits = PHONE_SEPARATORS.sub("", phone.strip())
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if not re.fullmatch(r"\+?\d{6,15}", digits):
        raise InvalidInput("is not a phone number (6 to 15 digits, optionally starting with +)", field="phone")
    return digits


def check_preferences(prefs: Any, current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check preferences and lay them over ``current``: a key given as null, empty text or an empty
    list is removed; keys not given are kept, so changing the packaging never loses an allergy."""
    clean: dict[str, Any] = dict(current or {})
    if prefs is None:
        return clean
    if not isinstance(prefs, dict):
        raise InvalidInput("must be an object", field="preferences")
    for key, value in prefs.items():
        kind = PREFERENCE_KEYS.get(key)
        where = f"preferences.{key}"
        if kind is None:
            raise InvalidInput(f"unknown preference; known ones are {', '.join(sorted(PREFERENCE_KEYS))}", field=where)
        if value is None or value == "" or value == [] or value == {}:
            clean.pop(key, None)
        elif kind is list:
            if not isinstance(value, list) or len(value) > 50 or not all(isinstance(v, str) and 0 < len(_text(v)) <= 100 for v in value):
                raise InvalidInput("must be a list of up to 50 short texts", field=where)
            clean[key] = list(dict.fromkeys(_text(v) for v in value))
        elif kind is dict:
            if not isinstance(value, dict) or len(value) > 50 or not all(
                isinstance(k, str) and 0 < len(_text(k)) <= 50 and isinstance(v, str) and len(v) <= 50 for k, v in value.items()
            ):
                raise InvalidInput("must map names to short texts, like {\"shoe\": \"42\"}", field=where)
            clean[key] = {_text(k): _text(v) for k, v in value.items()}
        else:
            if not isinstance(value, str) or len(value) > 500:
                raise InvalidInput("must be a text of up to 500 characters", field=where)
            value = _text(value)
            if key == "contact_channel" and value not in CONTACT_CHANNELS:
                raise InvalidInput(f"is one of {', '.join(sorted(CONTACT_CHANNELS))}", field=where)
            if value:
                clean[key] = value
            else:
                clean.pop(key, None)
    return clean


def _birthday(value: Any, today: dt.date) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            raise InvalidInput("is a date written YYYY-MM-DD", field="birthday")
        try:
            value = dt.date.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput("is not a real date", field="birthday") from None
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise InvalidInput("is a date written YYYY-MM-DD", field="birthday")
    if value > today:
        raise InvalidInput("the birthday is in the future", field="birthday")
    if value.year < 1900:
        raise InvalidInput("the birthday is before 1900", field="birthday")
    return value


def clean_profile(fields: Mapping[str, Any], *, today: dt.date, current_preferences: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check and normalise profile fields; raises InvalidInput naming the first field at fault."""
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        if key not in PROFILE_FIELDS:
            raise InvalidInput("is not a customer field", field=key)
        if key in TEXT_LIMITS:
            if value is not None and not isinstance(value, str):
                raise InvalidInput("must be a text", field=key)
            value = _text(value) if value else None
            if value and len(value) > TEXT_LIMITS[key]:
                raise InvalidInput(f"is at most {TEXT_LIMITS[key]} characters", field=key)
            if key == "name" and not value:
                raise InvalidInput("a customer needs a name", field="name")
        elif key == "email":
            value = normalise_email(value)
        elif key == "phone":
            value = normalise_phone(value)
        elif key == "birthday":
            value = _birthday(value, today)
        elif key == "language":
            if value is not None and not isinstance(value, str):
                raise InvalidInput("use a language code like en or de", field="language")
            value = value.strip() if value else None
            if value and not LANGUAGE_RE.match(value):
                raise InvalidInput("use a language code like en or de", field="language")
        elif key == "marketing_consent":
            if not isinstance(value, bool):
                raise InvalidInput("is true or false", field="marketing_consent")
        elif key == "preferences":
            value = check_preferences(value, current_preferences)
        clean[key] = value
    return clean


def _check_unique(uow: UnitOfWork, clean: Mapping[str, Any], customer_id: int | None = None) -> None:
    if clean.get("email"):
        other = uow.customers.by_email(clean["email"])
        if other is not None and other.id != customer_id:
            raise Conflict("another customer already has this email address", field="email")
    if clean.get("phone"):
        other = uow.customers.by_phone(clean["phone"])
        if other is not None and other.id != customer_id:
            raise Conflict("another customer already has this phone number", field="phone")


def check_new_card(uow: UnitOfWork, card_number: str | None) -> str | None:
    """A card number the customer brings (or an import carries): well-formed and not in use."""
    if card_number is None or not str(card_number).strip():
        return None
    card_number = str(card_number).strip()
    check = check_card_number(card_number)
    if not check.ok:
        raise InvalidInput(check.problem or "is not a card number", field="card_number")
    if uow.cards.get(card_number) is not None:
        raise Conflict("this card number is already in use", field="card_number")
    return card_number


def _issue_number(uow: UnitOfWork, prefix: str) -> str:
    for _ in range(20):
        number = new_card_number(prefix)
        if uow.cards.get(number) is None:
            return number
    raise Conflict("could not find a free card number; try again")  # pragma: no cover


def enrol_in(uow: UnitOfWork, shop: Shop, fields: Mapping[str, Any], *, card_number: str | None, actor: str):
    """Enrol within an open unit of work (the API and the CSV import). Every check is made before
    anything is written, so a refused customer leaves the unit of work as it was."""
    if not fields.get("name"):
        raise InvalidInput("a customer needs a name", field="name")
    clean = clean_profile(fields, today=shop.local_date())
    _check_unique(uow, clean)
    card_number = check_new_card(uow, card_number)
    now = shop.now()
    clean.setdefault("preferences", {})
    clean.setdefault("marketing_consent", False)
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
    """Change the fields given and no others; preferences are merged key by key. Audited."""
    with shop.uow() as uow:
        customer = uow.customers.get_for_update(customer_id)
        if customer is None:
            raise NotFound(f"there is no customer {customer_id}", field="customer_id")
        if customer.erased_at is not None:
            raise Conflict("this customer's data was erased", field="customer_id")
        if "name" in fields and not fields["name"]:
            raise InvalidInput("a customer needs a name", field="name")
        clean = clean_profile(fields, today=shop.local_date(), current_preferences=customer.preferences or {})
        _check_unique(uow, clean, customer.id)
        changed = {k: v for k, v in clean.items() if getattr(customer, k) != v}
        if changed:
            before = {k: _plain(getattr(customer, k)) for k in changed}
            for key, value in changed.items():
                setattr(customer, key, value)
            customer.updated_at = shop.now()
            uow.audit.record(actor, "customer.update", "customer", str(customer.id), before, {k: _plain(v) for k, v in changed.items()})
        result = customer_dict(customer, uow.cards.of_customer(customer.id))
        uow.commit()
        return result


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def search_customers(shop: Shop, text: str, *, limit: int = 25) -> list[dict[str, Any]]:
    """By card number, phone (however it is written), email, or words of the name; never an erased customer."""
    if not text or not text.strip():
        raise InvalidInput("say what to search for: a card number, phone, email or name", field="q")
    text = _text(text)
    with shop.uow(read_only=True) as uow:
        try:
            phone = normalise_phone(text)
        except InvalidInput:
            phone = None
        found = uow.customers.search(phone or text, limit=limit)
        if not found and phone and phone != text:
            found = uow.customers.search(text, limit=limit)
        return [customer_dict(c, uow.cards.of_customer(c.id)) for c in found if c.erased_at is None]


def block_card(shop: Shop, card_number: str, *, reason: str = "lost", actor: str) -> dict[str, Any]:
    """Block a lost card; the account, its points and its other cards stay as they are."""
    reason = (reason or "").strip() or "lost"
    with shop.uow() as uow:
        card = uow.cards.get(card_number)
        if card is None:
            raise NotFound(f"there is no card {card_number}", field="card_number")
        if card.status == "blocked":
            raise Conflict("this card is already blocked", field="card_number")
        card.status, card.blocked_at, card.blocked_reason = "blocked", shop.now(), reason
        uow.audit.record(actor, "card.block", "card", card.number, {"status": "active"}, {"status": "blocked", "reason": reason})
        uow.commit()
        return {"number": card.number, "status": card.status, "customer_id": card.customer_id}


def issue_card(shop: Shop, customer_id: int, *, card_number: str | None = None, actor: str) -> dict[str, Any]:
    """A new card on the same account (the old one is usually blocked first)."""
    with shop.uow() as uow:
        customer = uow.customers.get(customer_id)
        if customer is None or customer.erased_at is not None:
            raise NotFound(f"there is no customer {customer_id}", field="customer_id")
        card_number = check_new_card(uow, card_number)
        card = uow.cards.add(card_number or _issue_number(uow, shop.card_prefix), customer.id)
        uow.audit.record(actor, "card.issue", "card", card.number, None, {"customer_id": customer.id})
        uow.commit()
        return {"number": card.number, "status": card.status, "customer_id": customer.id}


# -- CSV import and export -------------------------------------------------------------------------

IMPORT_COLUMNS = (
    "name", "email", "phone", "birthday", "preferred_name", "language", "marketing_consent", "card_number", "opening_balance",
)
OPTIONAL_COLUMNS = ("allergies", "dietary", "staff_notes")
EXPORT_COLUMNS = tuple("balance" if c == "opening_balance" else c for c in IMPORT_COLUMNS) + OPTIONAL_COLUMNS
CONSENT_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False, "": False}
IMPORT_ACTOR = "import"
OPENING_BALANCE_REASON = "opening balance from import"


def check_import_columns(columns: Iterable[str | None] | None) -> None:
    """The header of an import file: every standard column, the optional ones, nothing else.

    An exported file names its points column ``balance``; it is read as the opening balance.
    """
    given = [c for c in (columns or ()) if c is not None]
    if not given:
        raise InvalidInput("the file is empty; its first line names the columns: " + ", ".join(IMPORT_COLUMNS), field="columns")
    names = set(given)
    for name in names:
        if given.count(name) > 1:
            raise InvalidInput(f"the column {name!r} appears twice", field=name)
    if {"balance", "opening_balance"} <= names:
        raise InvalidInput("give either opening_balance or balance, not both", field="balance")
    if "balance" in names:
        names = (names - {"balance"}) | {"opening_balance"}
    missing = [c for c in IMPORT_COLUMNS if c not in names]
    if missing:
        raise InvalidInput(f"the file has no {missing[0]!r} column; the columns are {', '.join(IMPORT_COLUMNS)}", field=missing[0])
    unknown = sorted(names - set(IMPORT_COLUMNS) - set(OPTIONAL_COLUMNS))
    if unknown:
        known = ", ".join(IMPORT_COLUMNS + OPTIONAL_COLUMNS)
        raise InvalidInput(f"the column {unknown[0]!r} is not one we know; the columns are {known}", field=unknown[0])


@dataclass(frozen=True)
class RejectedRow:
    row: int
    field: str | None
    message: str


@dataclass
class ImportSummary:
    accepted: int = 0
    opening_points: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    dry_run: bool = False

    @property
    def rejected_rows(self) -> int:
        return len({r.row for r in self.rejected})


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(";") if part.strip()]


def _blank(row: Mapping[str | None, Any]) -> bool:
    cells = [c for k, v in row.items() for c in (v if k is None and isinstance(v, list) else [v])]
    return not any(str(c).strip() for c in cells if c is not None)


def _row_fields(row: Mapping[str | None, Any], today: dt.date) -> tuple[dict[str, Any], str | None, int, list[LoyaltyError]]:
    """One CSV row as profile fields, card number and opening balance, with every problem found."""
    if row.get(None):
        return {}, None, 0, [InvalidInput("this row has more cells than the file has columns", field=None)]
    value = {k: (v or "").strip() for k, v in row.items() if k is not None}
    if "balance" in value and "opening_balance" not in value:
        value["opening_balance"] = value.pop("balance")
    problems: list[LoyaltyError] = []
    fields: dict[str, Any] = {
        "name": value.get("name", ""),
        "email": value.get("email") or None,
        "phone": value.get("phone") or None,
        "birthday": value.get("birthday") or None,
        "preferred_name": value.get("preferred_name") or None,
        "language": value.get("language") or None,
        "staff_notes": value.get("staff_notes") or None,
    }
    consent = value.get("marketing_consent", "").lower()
    if consent in CONSENT_WORDS:
        fields["marketing_consent"] = CONSENT_WORDS[consent]
    else:
        problems.append(InvalidInput("is true or false (yes/no, 1/0)", field="marketing_consent"))
    preferences = {key: _split_list(value[key]) for key in ("allergies", "dietary") if value.get(key)}
    if preferences:
        fields["preferences"] = preferences
    clean: dict[str, Any] = {}
    for key, given in fields.items():
        try:
            clean.update(clean_profile({key: given}, today=today))
        except InvalidInput as exc:
            if exc.field and exc.field.startswith("preferences."):
                exc.field = exc.field.removeprefix("preferences.")
            problems.append(exc)
    card_number = value.get("card_number") or None
    if card_number:
        check = check_card_number(card_number)
        if not check.ok:
            problems.append(InvalidInput(check.problem or "is not a card number", field="card_number"))
    opening = 0
    text = value.get("opening_balance", "")
    if text:
        if not text.isdigit():
            problems.append(InvalidInput("is a whole number of points, 0 or more", field="opening_balance"))
        elif int(text) > MAX_OPENING_BALANCE:
            problems.append(InvalidInput(f"is at most {MAX_OPENING_BALANCE} points", field="opening_balance"))
        else:
            opening = int(text)
    return clean, card_number, opening, problems


def import_customers(
    shop: Shop,
    rows: Iterable[Mapping[str | None, Any]],
    progress: Callable[[int], Any] | None = None,
    *,
    first_row: int = 2,
    dry_run: bool = False,
) -> ImportSummary:
    """Enrol customers from CSV rows (column name -> text), each with its opening balance.

    Rows are numbered from ``first_row`` (2: the header is row 1, as a spreadsheet shows it); blank
    rows are skipped. A row
    that breaks a rule, or repeats an email, phone or card of an earlier row or of a customer we
    already have, is rejected with its reasons; the others are written together in one unit of work.
    If anything unexpected fails, nothing at all is written. ``progress(n)`` is told of every row.
    """
    summary = ImportSummary(dry_run=dry_run)
    with shop.uow() as uow:
        now = shop.now()
        today = shop.local_date(now)
        programme = current_programme(uow)
        expires_at = expiry_for(now, programme.expiry_months, shop.timezone)
        seen: dict[tuple[str, str], int] = {}
        for number, row in enumerate(rows, start=first_row):
            if number == first_row:
                check_import_columns(row.keys())
            if _blank(row):
                if progress is not None:
                    progress(1)
                continue
            clean, card_number, opening, problems = _row_fields(row, today)
            keys = [(k, clean.get(k)) for k in ("email", "phone")] + [("card_number", (card_number or "").strip())]
            for key, val in keys:
                if val and (key, val) in seen:
                    label = key.replace("_", " ")
                    problems.append(Conflict(f"the same {label} as row {seen[key, val]}", field=key))
            if not problems:
                try:
                    customer, card = enrol_in(uow, shop, clean, card_number=card_number, actor=IMPORT_ACTOR)
                except (InvalidInput, Conflict) as exc:
                    problems.append(exc)
            if problems:
                summary.rejected.extend(RejectedRow(number, p.field, p.message) for p in problems)
            else:
                summary.accepted += 1
                for key, val in keys:
                    if val:
                        seen[key, val] = number
                if opening:
                    uow.ledger.add(
                        customer_id=customer.id, kind="adjust", cause="import", points=opening, created_at=now,
                        expires_at=expires_at, user=IMPORT_ACTOR, reason=OPENING_BALANCE_REASON,
                    )
                    uow.customers.add_to_balance(customer, opening)
                    summary.opening_points += opening
            if progress is not None:
                progress(1)
        if not dry_run:
            uow.audit.record(IMPORT_ACTOR, "customers.import", "customer", None, None,
                             {"accepted": summary.accepted, "rejected_rows": summary.rejected_rows, "opening_points": summary.opening_points})
            uow.commit()
    return summary


def export_customers(shop: Shop, *, actor: str = "cli", to: str | None = None) -> list[dict[str, str]]:
    """Every customer not erased, as CSV rows in the import's columns (with today's balance).

    Audited as ``customers.export``: who (``actor``), how many rows, and where they went (``to``,
    a file name, if the caller says)."""
    rows = []
    with shop.uow(read_only=True) as uow:
        for c in uow.customers.all():
            if c.erased_at is not None:
                continue
            active = [card.number for card in uow.cards.of_customer(c.id) if card.status == "active"]
            prefs = c.preferences or {}
            rows.append({
                "name": c.name,
                "email": c.email or "",
                "phone": c.phone or "",
                "birthday": c.birthday.isoformat() if c.birthday else "",
                "preferred_name": c.preferred_name or "",
                "language": c.language or "",
                "marketing_consent": "true" if c.marketing_consent else "false",
                "card_number": active[-1] if active else "",
                "balance": str(c.balance),
                "allergies": "; ".join(prefs.get("allergies") or ()),
                "dietary": "; ".join(prefs.get("dietary") or ()),
                "staff_notes": c.staff_notes or "",
            })
    details: dict[str, Any] = {"rows": len(rows)}
    if to is not None:
        details["to"] = to
    record_export(shop, actor, "customers.export", "customer", None, details)
    return rows


def list_customers(shop: Shop, *, limit: int = 50) -> dict[str, Any]:
    """Customers by name (never an erased one), the first ``limit`` of them, and how many there are."""
    with shop.uow(read_only=True) as uow:
        return {
            "count": uow.customers.count(include_erased=False),
            "customers": [customer_dict(c, uow.cards.of_customer(c.id)) for c in uow.customers.by_name(limit=limit)],
        }
