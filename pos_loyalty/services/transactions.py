"""Checkout, returns and claims: the use cases the till calls at the counter.

Each is one database transaction: the sale, its lines, its redemptions, its ledger entries and
the customer's stored balance are written together or not at all. Requests carry the till's own
transaction id; a retry with the same body gets the stored answer and writes nothing, a
different body under the same id is refused.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Sequence

from ..domain import earning as E
from ..domain.errors import Conflict, DuplicateKey, InsufficientPoints, InvalidInput, LoyaltyError, NotFound
from ..domain.ledger import Entry, birthday_week_start, expiry_for, replay, still_reversible
from ..domain.programme import Programme
from ..domain.timing import CLOCK_TOLERANCE, check_occurred_at
from .access import till_of_token, till_of_token_later
from .context import Shop, UnitOfWork
from .lots import open_lots_later
from .programme import current_programme, offer_of, programme_as_of, programme_version
from .summary import greeting_name, points_position, position_of

ROLLING = dt.timedelta(days=365)
VISIT_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass(frozen=True)
class LineInput:
    sku: str
    description: str
    quantity_milli: int
    unit_price: int
    category: str | None = None
    line_discount: int = 0


@dataclass(frozen=True)
class SaleRequest:
    id: str
    occurred_at: dt.datetime
    currency: str
    lines: Sequence[LineInput]
    card_number: str | None = None
    cashier: str | None = None
    rewards: Sequence[int] = ()


@dataclass(frozen=True)
class ReturnRequest:
    id: str
    occurred_at: dt.datetime
    lines: Sequence[tuple[str, int]]  # (sku, quantity_milli)
    cashier: str | None = None


def fingerprint(request: Any) -> str:
    """A stable hash of what the till sent, to tell a retry from a different request. (Stored with
    every transaction: its text must never change, or a till's retry across an upgrade would be
    refused as a different request.)"""
    plain = _sale_plain(request) if type(request) is SaleRequest else _plain(request)
    body = json.dumps(plain, sort_keys=True, default=_json_default, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def _sale_plain(request: SaleRequest) -> dict[str, Any]:
    """``_plain`` of a sale, written out (a checkout's hottest few µs): the same dict, as
    tests/test_fingerprint.py proves; anything unusual in it goes the general way."""
    if not all(type(ln) is LineInput for ln in request.lines) or not all(type(r) is int for r in request.rewards):
        return _plain(request)
    return {
        "id": request.id,
        "occurred_at": request.occurred_at,
        "currency": request.currency,
        "lines": [
            {"sku": ln.sku, "description": ln.description, "quantity_milli": ln.quantity_milli, "unit_price": ln.unit_price,
             "category": ln.category, "line_discount": ln.line_discount}
            for ln in request.lines
        ],
        "card_number": request.card_number,
        "cashier": request.cashier,
        "rewards": list(request.rewards),
    }


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    """``dataclasses.asdict`` without its deep copies (the same result, a tenth of the time)."""
    names = _FIELD_NAMES.get(type(value))
    if names is None and is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES[type(value)] = tuple(f.name for f in fields(value))
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat()
    if isinstance(value, (dt.date, tuple)):
        return str(value)
    raise TypeError(type(value))


# Each of eight random bytes picks a letter by its low five bits: the alphabet has 32 letters, so
# every letter is equally likely (40 random bits). One translate of eight bytes, in C: drawing
# each letter with secrets.choice cost 30 µs a sale.
_BYTE_TO_VISIT_LETTER = (VISIT_CODE_ALPHABET * 8).encode()  # byte b -> letter b % 32


def _new_visit_code() -> str:
    return secrets.token_bytes(8).translate(_BYTE_TO_VISIT_LETTER).decode()


def _replay(existing, request_hash: str, kind: str) -> dict[str, Any]:
    if existing.request_hash != request_hash or existing.kind != kind:
        raise Conflict(
            f"transaction id {existing.id!r} was already used for a different {existing.kind}", field="id"
        )
    return {**existing.response, "replayed": True}


def _with_retry(work, stored):
    """Run ``work`` again once if a concurrent writer stored the same id first; the second run
    then finds that row and answers as for a retry. And if ``work`` is refused, answer with what
    ``stored`` finds under the id after all: on PostgreSQL the row lock may have waited for
    another till's commit of this very request (a till retrying on a second till), and what the
    first copy left (a balance spent on the reward, a line already returned) refuses the second,
    which must get the first's answer (or a 409 naming ``id`` for a different body) instead."""
    try:
        return work()
    except DuplicateKey:
        return work()
    except LoyaltyError as refused:
        try:
            answer = stored()  # (a different body under the id: its 409 naming ``id``)
        except LoyaltyError:
            raise
        except Exception:  # (the database is unreachable too: the first refusal says so)
            raise refused from None
        if answer is None:
            raise
        return answer


def _stored_answer(shop: Shop, transaction_id: str, request_hash: str, kind: str, till_token: str | None = None
                   ) -> dict[str, Any] | None:
    """What is stored under the id, as the answer to this request; with ``till_token``, only for
    the till holding it (``TokenRefused`` else: a request whose token was never checked, because
    the database failed first, must not be answered with a stored sale)."""
    with shop.uow(read_only=True, one_read=True) as uow:
        if till_token is not None:
            till_of_token(uow, till_token)
        existing = uow.transactions.answer_of(transaction_id)
    return None if existing is None else _replay(existing, request_hash, kind)


# -- sale ------------------------------------------------------------------------------------------


def record_sale(shop: Shop, request: SaleRequest, *, till_id: int | None = None, till_name: str | None = None,
                till_token: str | None = None) -> dict[str, Any]:
    """Record a sale for the till ``till_id`` (named ``till_name`` on the receipt), or for the till
    holding ``till_token``, checked first in the sale's own transaction (``access.till_of_token``:
    ``TokenRefused``, and nothing written, if no active till holds it)."""
    if till_token is not None and (till_id is not None or till_name is not None):
        raise ValueError("a till's token, or its id and name: not both")
    request_hash = fingerprint(request)
    return _with_retry(lambda: _record_sale(shop, request, request_hash, till_id, till_name, till_token),
                       lambda: _stored_answer(shop, request.id, request_hash, "sale", till_token))


def _card_holder_for_sale(uow: UnitOfWork, card_number: str):
    """The card's holder as a row, locked for this sale (or claim) where the database can; a card
    that is unknown, blocked or of an erased account is refused."""
    return _usable_holder(uow.customers.card_holder(card_number, for_update=True), card_number)


def _usable_holder(holder, card_number: str):
    """The holder's row as read for a sale, unless the card is unknown, blocked or of an erased account."""
    if holder is None:
        raise NotFound(f"no customer has the card {card_number}", field="card_number")
    if holder.card_status != "active":
        raise Conflict("this card is blocked; ask the customer for their new card", field="card_number")
    if holder.erased_at is not None:
        raise Conflict("this card belongs to an erased account", field="card_number")
    return holder


def _record_sale(shop: Shop, request: SaleRequest, request_hash: str, till_id, till_name, till_token) -> dict[str, Any]:
    """The checkout: a handful of reads, everything worked out in memory (the answer too), then
    written with one statement per table. The hottest path in the product."""
    with shop.uow() as uow:
        with uow.in_one_trip():  # (PostgreSQL: the till, a stored answer and the card's holder in one round trip)
            till = till_of_token_later(uow, till_token) if till_token is not None else None
            existing = uow.transactions.answer_of_later(request.id)
            # (on PostgreSQL the row lock may wait for another till's commit of this very id:
            # then storing it fails as a duplicate, or what that one changed refuses this one, and
            # either way ``_with_retry`` answers as for a retry)
            holder = uow.customers.card_holder_later(request.card_number, for_update=True) if request.card_number else None
        if till is not None:  # (the answers are read once the round trip is back: a get() inside would wait twice)
            till_id, till_name = till.get().id, till.get().name  # (TokenRefused before anything else is used)
        existing = existing.get()
        holder = holder.get() if holder is not None else None
        if existing is not None:
            return _replay(existing, request_hash, "sale")
        if request.currency != shop.currency:
            raise InvalidInput(f"this shop's points are earned in {shop.currency}, not {request.currency}", field="currency")
        now = shop.now()
        check_occurred_at(request.occurred_at, now)
        if request.rewards and not request.card_number:
            raise InvalidInput("a reward can only be redeemed with the customer's card", field="rewards")
        customer = None
        if request.card_number:
            customer = _usable_holder(holder, request.card_number)
            programme = programme_as_of(uow, customer.latest_programme_id)  # (read with the holder)
        else:
            programme = current_programme(uow)

        lines = [
            E.Line(i + 1, li.sku, li.description, li.category, li.quantity_milli, li.unit_price, li.line_discount)
            for i, li in enumerate(request.lines)
        ]
        E.check_lines(lines)
        day = shop.local_date(request.occurred_at)
        tier = programme.tiers[0]
        rolling_before = rolling_now = balance_before = 0
        reward_rows = []
        held_lots = None
        if customer is not None:
            birthday_week = birthday_week_start(day, customer.birthday, programme.birthday_window_days) if programme.birthday_bonus else None
            with uow.in_one_trip():  # (PostgreSQL: the history, the rewards and the ledger in one round trip)
                history = uow.transactions.sale_history_later(
                    customer.id, spend_after=(request.occurred_at - ROLLING, now - ROLLING),
                    birthday_since=now if birthday_week is None else _birthday_counted_since(shop, birthday_week),
                )
                reward_rows = uow.rewards.rows_later(active_only=True, also=request.rewards)
                held_lots = open_lots_later(uow, customer.id)  # (SQLite: read only if the balance is positive, below)
            rolling_before, rolling_now, welcome_held, birthday_held = history.get()
            reward_rows = reward_rows.get()
            tier = programme.tier_for(rolling_before)
            balance_before = customer.balance

        by_id = {r.id: r for r in reward_rows}
        offers = []
        for i, reward_id in enumerate(request.rewards):
            row = by_id.get(reward_id)
            if row is None:
                raise InvalidInput(f"there is no reward {reward_id}", field=f"rewards.{i}")
            offer = offer_of(row)
            if not offer.available(day, tier.code):
                raise InvalidInput(f"the reward {offer.name!r} cannot be redeemed today in tier {tier.name}", field=f"rewards.{i}")
            offers.append(offer)
        cost = sum(o.points_cost for o in offers)
        if cost and balance_before < cost:
            raise InsufficientPoints(balance_before, cost)
        lines, applied = E.apply_rewards(lines, offers, programme)

        if customer is not None:
            earning = E.compute_earning(
                lines, programme, tier=tier, day=day,
                extra_bonuses=_visit_bonuses(programme, welcome_held, birthday_week is not None, birthday_held),
            )
        else:
            earning = E.Earning(lines=lines, base=0, promotion=0, tier=0, eligible_spend=0)

        subtotal = sum(ln.net for ln in lines)
        discount = sum(a.discount for a in applied)
        eligible_spend = sum(ln.paid for ln in lines if programme.earns(ln.category))
        tx = {
            "id": request.id,
            "kind": "sale",
            "original_id": None,
            "till_id": till_id,
            "cashier": request.cashier,
            "occurred_at": request.occurred_at,
            "recorded_at": now,
            "currency": request.currency,
            "customer_id": customer.id if customer else None,
            "card_number": request.card_number,
            "subtotal": subtotal,
            "discount": discount,
            "total": subtotal - discount,
            "eligible_spend": eligible_spend,
            "points_earned": earning.total,
            "points_redeemed": cost,
            "programme_version_id": programme.version_id,
            "request_hash": request_hash,
            "visit_code": _new_visit_code(),
        }
        line_rows = [
            {
                "transaction_id": request.id,
                "line_no": ln.line_no,
                "sku": ln.sku,
                "description": ln.description,
                "category": ln.category,
                "quantity_milli": ln.quantity_milli,
                "unit_price": ln.unit_price,
                "line_discount": ln.line_discount,
                "reward_discount": ln.reward_discount,
                "paid": ln.paid,
                "points": ln.points,
                "original_line_id": None,
            }
            for ln in earning.lines
        ]
        redemption_rows = [
            {"transaction_id": request.id, "reward_id": a.reward_id, "reward_name": a.name, "points": a.points, "discount": a.discount}
            for a in applied
        ]
        entries: list[dict[str, Any]] = []
        position = None
        if customer is not None:
            entries = _sale_ledger_rows(shop, programme, customer.id, request, applied, earning, now)
            balance_after = balance_before + sum(e["points"] for e in entries)
            rolling_after = rolling_now + (eligible_spend if request.occurred_at > now - ROLLING else 0)
            expiry = held = None
            if balance_after > 0:  # (as in points_position: no open lot without a positive balance)
                held = held_lots.get()
                next_id = held.last_entry_id + 1  # (ids for the order only: the database gives the real ones)
                new = [Entry(next_id + k, e["points"], e["kind"], e["created_at"], e["expires_at"], e["lot_id"]) for k, e in enumerate(entries)]
                expiry = replay(new, start=held.lots).next_expiry(now)
            position = position_of(
                programme, shop, balance=balance_after, rolling=rolling_after, expiry=expiry, rewards=reward_rows,
                birthday=customer.birthday, now=now,
            )
        tx["response"] = build_view(
            tx, line_rows, entries, redemption_rows, customer, position,
            till_name=till_name, balance_before=balance_before, earning=earning if customer else None,
        )
        with uow.in_one_trip():  # (PostgreSQL: one round trip for all of them)
            uow.transactions.insert(tx, line_rows, redemption_rows)
            if customer is not None:
                uow.ledger.append(entries)
                uow.customers.change_balance(customer.id, sum(e["points"] for e in entries))
                bought: dict[str, tuple[str, int]] = {}
                for ln in lines:  # the favourites: a product counts one visit per sale, however many lines it was on
                    description, quantity = bought.get(ln.sku, (ln.description, 0))
                    bought[ln.sku] = (description, quantity + ln.quantity_milli)
                uow.products.record_bought(customer.id, [(sku, d, q) for sku, (d, q) in bought.items()], request.occurred_at)
        uow.commit()
        if customer is not None and held is not None:
            held.remember()  # (only once committed: nothing uncertain is kept)
        return tx["response"]


def _birthday_counted_since(shop: Shop, week_start: dt.date) -> dt.datetime:
    """From when birthday points already held mean this birthday has paid: the start of its week
    (local midnight), less the day a till's stamp may run ahead of the shop's clock (the bonus's
    entry is dated by the shop's clock). The last birthday's week ended eleven months before, so
    its bonus never counts against this one; a 1 January birthday's week that starts in December
    pays once, not once in each year it touches."""
    return dt.datetime.combine(week_start, dt.time(), tzinfo=shop.timezone) - CLOCK_TOLERANCE


def _claimed_birthday_week(shop: Shop, programme: Programme, birthday: dt.date | None, day: dt.date,
                           now: dt.datetime) -> dt.date | None:
    """The start of the birthday week a claimed sale fell in, if the card is shown in that week
    too: then the claim collects the bonus as a card sale in the week would have.

    Shown after the week, it does not. Whether a birthday has paid is judged by the birthday
    points entered since its week began, and a claim may come up to a year after its sale: its
    bonus, entered then, could count as the next birthday's, and the customer would lose that one."""
    if not programme.birthday_bonus:
        return None
    week = birthday_week_start(day, birthday, programme.birthday_window_days)
    if week is None or birthday_week_start(shop.local_date(now), birthday, programme.birthday_window_days) != week:
        return None
    return week


def _visit_bonuses(programme: Programme, welcome_held: int, birthday_week: bool, birthday_held: int) -> list[E.Bonus]:
    """Welcome: until one is held (a full return takes it back). Birthday: once a birthday, in its
    week (``birthday_held``: the birthday points held since that week began; a full return of the
    sale that paid it takes it back, and a later sale in the week earns it again)."""
    birthday_week = bool(programme.birthday_bonus) and birthday_week
    if not programme.welcome_bonus and not birthday_week:
        return []
    return E.visit_bonuses(
        programme, welcome_due=bool(programme.welcome_bonus) and welcome_held == 0, birthday_due=birthday_week and birthday_held == 0
    )


def _sale_ledger_rows(shop: Shop, programme: Programme, customer_id: int, request: SaleRequest, applied, earning: E.Earning, now) -> list[dict[str, Any]]:
    """Spend first (from the points held before the sale), then what the sale earns."""
    expires = expiry_for(request.occurred_at, programme.expiry_months, shop.timezone)
    common = {"customer_id": customer_id, "created_at": now, "transaction_id": request.id, "lot_id": None, "user": None}
    rows = [{**common, "kind": "redeem", "cause": "sale", "points": -a.points, "expires_at": None, "reason": a.name} for a in applied]
    if earning.line_points:
        rows.append({**common, "kind": "earn", "cause": "sale", "points": earning.line_points, "expires_at": expires, "reason": None})
    for bonus in earning.bonuses:
        rows.append({**common, "kind": "bonus", "cause": bonus.cause, "points": bonus.points, "expires_at": expires, "reason": bonus.reason})
    return rows


# -- return ----------------------------------------------------------------------------------------


def record_return(
    shop: Shop, original_id: str, request: ReturnRequest, *, till_id: int | None, till_name: str | None = None
) -> dict[str, Any]:
    request_hash = hashlib.sha256(f"{original_id}:{fingerprint(request)}".encode()).hexdigest()
    return _with_retry(lambda: _record_return(shop, original_id, request, request_hash, till_id, till_name),
                       lambda: _stored_answer(shop, request.id, request_hash, "return"))


def _sale_lines(rows) -> list[E.Line]:
    return [
        E.Line(r.line_no, r.sku, r.description, r.category, r.quantity_milli, r.unit_price, r.line_discount, r.reward_discount, r.points)
        for r in rows
    ]


def _record_return(shop: Shop, original_id: str, request: ReturnRequest, request_hash: str, till_id, till_name) -> dict[str, Any]:
    with shop.uow() as uow:
        existing = uow.transactions.get(request.id)
        if existing is not None:
            return _replay(existing, request_hash, "return")
        check_occurred_at(request.occurred_at, shop.now())
        # Lock order everywhere: the sale row, then the customer. Two returns of one sale queue here.
        original = uow.transactions.get_for_update(original_id)
        if original is None:
            raise NotFound(f"there is no transaction {original_id}", field="transaction_id")
        if original.kind != "sale":
            raise InvalidInput("only a sale can be returned", field="transaction_id")
        if request.occurred_at < original.occurred_at - CLOCK_TOLERANCE:
            # (within a day: the till taking the return may run behind the one that sold)
            raise InvalidInput(
                f"the return is dated {request.occurred_at.isoformat()}, before the sale it returns "
                f"({original.occurred_at.isoformat()}): is the till's clock set?",
                field="occurred_at",
            )
        existing = uow.transactions.get(request.id)  # another till may have committed it while we waited
        if existing is not None:
            return _replay(existing, request_hash, "return")
        customer = None
        if original.customer_id is not None:
            customer = uow.customers.get_for_update(original.customer_id)
        programme = programme_version(uow, original.programme_version_id)
        rows = uow.transactions.lines(original.id)
        line_no_of = {r.id: r.line_no for r in rows}
        line_id_of = {r.line_no: r.id for r in rows}
        before = {line_no_of[k]: v for k, v in uow.transactions.returned_quantities(original.id).items()}
        sale_lines = _sale_lines(rows)
        returned = E.return_lines(sale_lines, before, request.lines, programme)
        after = dict(before)
        for r in returned:
            after[r.original.line_no] = after.get(r.original.line_no, 0) + r.quantity_milli
        paid_back = sum(r.paid for r in returned)
        balance_before = customer.balance if customer is not None else 0

        tx = uow.transactions.add(
            id=request.id,
            kind="return",
            original_id=original.id,
            till_id=till_id,
            cashier=request.cashier,
            occurred_at=request.occurred_at,
            recorded_at=shop.now(),
            currency=original.currency,
            customer_id=original.customer_id,
            card_number=original.card_number,
            subtotal=-paid_back,
            discount=0,
            total=-paid_back,
            eligible_spend=-sum(r.paid for r in returned if r.eligible),
            points_earned=0,
            points_redeemed=0,
            programme_version_id=original.programme_version_id,
            request_hash=request_hash,
        )
        uow.transactions.add_lines(
            [
                {
                    "transaction_id": request.id,
                    "line_no": n,
                    "sku": r.original.sku,
                    "description": r.original.description,
                    "category": r.original.category,
                    "quantity_milli": r.quantity_milli,
                    "unit_price": r.original.unit_price,
                    "line_discount": 0,
                    "reward_discount": 0,
                    "paid": -r.paid,
                    "points": -r.points,
                    "original_line_id": line_id_of[r.original.line_no],
                }
                for n, r in enumerate(returned, start=1)
            ]
        )
        if customer is not None:
            tx.points_earned = _write_return_ledger(uow, shop, programme, customer, original, request, sale_lines, returned, after)
            _forget_returned_products(uow, customer, request, sale_lines, returned, after)
        response = transaction_view(uow, shop, request.id, till_name=till_name, balance_before=balance_before)
        uow.transactions.set_response(request.id, response)
        uow.commit()
        return response


def _write_return_ledger(uow, shop: Shop, programme: Programme, customer, original, request: ReturnRequest, sale_lines, returned, after) -> int:
    """Reverse what the returned lines earned and the promotion bonuses the sale no longer reaches;
    once everything is back, every bonus of the sale too and the points spent on it are given
    back, so a sale and its full return net zero. Returns the net change to the balance."""
    now = shop.now()
    sale_entries = uow.ledger.of_transaction(original.id)
    # What each of the sale's lots still holds to take back: never points that already expired,
    # nor what an earlier return took.
    history = uow.ledger.entries(customer.id)
    full = all(after.get(ln.line_no, 0) >= ln.quantity_milli for ln in sale_lines)
    day = shop.local_date(original.occurred_at)
    still_reached = {b.reason for b in E.promotion_bonuses(sale_lines, programme, day, after)}
    change = 0

    def add(kind: str, cause: str, points: int, **kw) -> None:
        nonlocal change
        uow.ledger.add(customer_id=customer.id, kind=kind, cause=cause, points=points, created_at=now, transaction_id=request.id, **kw)
        change += points

    earned = next((e for e in sale_entries if e.kind == "earn"), None)
    points_back = sum(r.points for r in returned)
    if earned is not None:
        points_back = min(points_back, still_reversible(history, earned.id))
    if points_back:
        add("reverse", "return", -points_back, lot_id=earned.id if earned else None, reason=f"return of {original.id}")
    for entry in sale_entries:
        if entry.kind == "bonus" and (full or (entry.cause == "promotion" and entry.reason not in still_reached)):
            if take := still_reversible(history, entry.id):
                add("reverse", entry.cause, -take, lot_id=entry.id, reason=f"{entry.reason} taken back with the return of {original.id}")
    if full:
        expires = expiry_for(now, programme.expiry_months, shop.timezone)
        for entry in sale_entries:
            if entry.kind == "redeem":
                add("reverse", "return", -entry.points, expires_at=expires, reason=f"points spent on {entry.reason} given back")
    uow.customers.add_to_balance(customer, change)
    return change


def _remember_products(uow, customer, lines, at: dt.datetime) -> None:
    """The favourites: a product counts one visit per sale, however many lines it was scanned on."""
    bought: dict[str, tuple[str, int]] = {}
    for ln in lines:
        description, quantity = bought.get(ln.sku, (ln.description, 0))
        bought[ln.sku] = (description, quantity + ln.quantity_milli)
    uow.products.record(customer.id, [(sku, desc, qty, 1) for sku, (desc, qty) in bought.items()], at)


def _forget_returned_products(uow, customer, request: ReturnRequest, sale_lines, returned, after) -> None:
    """The favourites follow the returns: the quantity goes down, and a product given back in full
    no longer counts as bought on that visit."""
    back: dict[str, tuple[str, int]] = {}
    for r in returned:
        description, quantity = back.get(r.original.sku, (r.original.description, 0))
        back[r.original.sku] = (description, quantity + r.quantity_milli)
    changes = []
    for sku, (description, quantity) in back.items():
        all_back = all(after.get(ln.line_no, 0) >= ln.quantity_milli for ln in sale_lines if ln.sku == sku)
        changes.append((sku, description, -quantity, -1 if all_back else 0))
    uow.products.record(customer.id, changes, request.occurred_at)


# -- claim -----------------------------------------------------------------------------------------


def claim_transaction(shop: Shop, transaction_id: str, card_number: str) -> dict[str, Any]:
    """A card shown after an anonymous sale collects the points that sale would have earned, once:
    under the programme version and tier of the sale, expiring as if earned at the sale; with the
    welcome bonus if none is held (a customer who joins after paying claims their first
    purchase), and the birthday bonus if the sale and the claim fall in the same birthday week and
    it has not paid (``_claimed_birthday_week``). Those two expire as if earned at the claim."""
    with shop.uow() as uow:
        # Lock order everywhere: the sale row, then the customer. A second claim of the same sale
        # (with any card) waits here and then reads the sale as the first one left it.
        tx = uow.transactions.get_for_update(transaction_id)
        if tx is None:
            raise NotFound(f"there is no transaction {transaction_id}", field="transaction_id")
        if tx.kind != "sale":
            raise InvalidInput("only a sale can be claimed", field="transaction_id")
        if tx.customer_id is not None:
            raise Conflict("this sale already belongs to a customer", field="transaction_id")
        if uow.transactions.returns_of(tx.id):
            raise Conflict("this sale has been returned, so it cannot be claimed", field="transaction_id")
        window = dt.timedelta(days=current_programme(uow).claim_window_days)
        now = shop.now()
        check_occurred_at(tx.occurred_at, now)  # (a sale stored before the rule, or the shop's clock set back since)
        if now - tx.occurred_at > window:
            raise Conflict(f"a sale can be claimed within {window.days} days; this one is older", field="transaction_id")
        customer = uow.customers.get_for_update(_card_holder_for_sale(uow, card_number).id)  # the claim changes it as an object
        programme = programme_version(uow, tx.programme_version_id)
        rows = uow.transactions.lines(tx.id)
        day = shop.local_date(tx.occurred_at)
        birthday_week = _claimed_birthday_week(shop, programme, customer.birthday, day, now)
        year_before, after_sale, welcome_held, birthday_held = uow.transactions.sale_history_later(
            customer.id, spend_after=(tx.occurred_at - ROLLING, tx.occurred_at),
            birthday_since=now if birthday_week is None else _birthday_counted_since(shop, birthday_week),
        ).get()
        spend_before_sale = year_before - after_sale
        earning = E.compute_earning(
            _sale_lines(rows), programme, tier=programme.tier_for(spend_before_sale), day=day,
            extra_bonuses=_visit_bonuses(programme, welcome_held, birthday_week is not None, birthday_held),
        )
        for row, line in zip(rows, earning.lines):
            row.points = line.points
        balance_before = customer.balance
        tx.customer_id, tx.card_number, tx.claimed_at = customer.id, card_number, now
        tx.eligible_spend = earning.eligible_spend
        tx.points_earned = earning.total
        expires = expiry_for(tx.occurred_at, programme.expiry_months, shop.timezone)
        # the welcome and birthday bonuses are paid for showing the card, so they run from today: a
        # welcome paid with a claim late in a long claim window must not be born expired (and so
        # spend the customer's one welcome for nothing)
        shown = expiry_for(now, programme.expiry_months, shop.timezone)
        if earning.line_points:
            uow.ledger.add(customer_id=customer.id, kind="earn", cause="claim", points=earning.line_points, created_at=now, expires_at=expires, transaction_id=tx.id)
        for bonus in earning.bonuses:
            uow.ledger.add(customer_id=customer.id, kind="bonus", cause=bonus.cause, points=bonus.points, created_at=now,
                           expires_at=shown if bonus.cause in E.VISIT_BONUSES else expires, transaction_id=tx.id, reason=bonus.reason)
        uow.customers.add_to_balance(customer, earning.total)
        _remember_products(uow, customer, rows, tx.occurred_at)
        response = transaction_view(uow, shop, tx.id, balance_before=balance_before, earning=earning)
        uow.transactions.set_response(tx.id, {**tx.response, **{k: response[k] for k in ("customer", "lines", "points", "tier", "next_expiry", "next_reward", "birthday_week")}})
        uow.commit()
        return response


# -- reading ---------------------------------------------------------------------------------------


def get_transaction(shop: Shop, transaction_id: str) -> dict[str, Any]:
    with shop.uow(read_only=True) as uow:
        tx = uow.transactions.get(transaction_id)
        if tx is None:
            raise NotFound(f"there is no transaction {transaction_id}", field="transaction_id")
        view = dict(tx.response or {})
        view["returns"] = [r.id for r in uow.transactions.returns_of(tx.id)]
        view.pop("replayed", None)
        return view


def transaction_view(
    uow: UnitOfWork,
    shop: Shop,
    transaction_id: str,
    *,
    till_name: str | None = None,
    balance_before: int = 0,
    earning: E.Earning | None = None,
) -> dict[str, Any]:
    """The answer the till gets for a stored transaction (returns and claims), read back and shaped
    by ``build_view``, as a sale's is."""
    tx = uow.transactions.get(transaction_id)
    lines = uow.transactions.lines(transaction_id)
    entries = uow.ledger.of_transaction(transaction_id)
    redemptions = uow.transactions.redemptions(transaction_id)
    customer = uow.customers.get(tx.customer_id) if tx.customer_id else None
    if till_name is None and tx.till_id is not None:
        till = uow.tills.get(tx.till_id)
        till_name = till.name if till else None
    position = points_position(uow, shop, customer, programme=current_programme(uow)) if customer is not None else None

    def plain(row, *names):
        return {n: getattr(row, n) for n in names}

    return build_view(
        plain(tx, "id", "kind", "original_id", "occurred_at", "recorded_at", "cashier", "currency", "visit_code", "programme_version_id",
              "subtotal", "discount", "total", "points_earned", "points_redeemed", "card_number"),
        [plain(ln, "line_no", "sku", "description", "category", "quantity_milli", "unit_price", "line_discount", "reward_discount", "paid", "points")
         for ln in lines],
        [plain(e, "kind", "cause", "points", "reason") for e in entries],
        [plain(r, "reward_id", "reward_name", "points", "discount") for r in redemptions],
        customer,
        position,
        till_name=till_name,
        balance_before=balance_before,
        earning=earning,
    )


def build_view(
    tx: dict[str, Any],
    lines: Sequence[dict[str, Any]],
    entries: Sequence[dict[str, Any]],
    redemptions: Sequence[dict[str, Any]],
    customer,
    position: dict[str, Any] | None,
    *,
    till_name: str | None,
    balance_before: int,
    earning: E.Earning | None,
) -> dict[str, Any]:
    """The answer the till gets: everything the receipt needs, worked out once and stored with
    the transaction (a retry gets it back as it was). ``position`` is the customer's standing
    after the transaction, with its balance."""
    bonuses = [{"cause": e["cause"], "points": e["points"], "reason": e["reason"]} for e in entries if e["kind"] == "bonus"]
    reversals = [{"cause": e["cause"], "points": e["points"], "reason": e["reason"]} for e in entries if e["kind"] == "reverse"]
    view: dict[str, Any] = {
        "id": tx["id"],
        "kind": tx["kind"],
        "original_id": tx["original_id"],
        "occurred_at": tx["occurred_at"].isoformat(),
        "recorded_at": tx["recorded_at"].isoformat(),
        "till": till_name,
        "cashier": tx["cashier"],
        "currency": tx["currency"],
        "visit_code": tx["visit_code"],
        "programme_version": tx["programme_version_id"],
        "lines": [
            {
                "line_no": ln["line_no"],
                "sku": ln["sku"],
                "description": ln["description"],
                "category": ln["category"],
                "quantity": E.format_quantity(ln["quantity_milli"]),
                "unit_price": ln["unit_price"],
                "line_discount": ln["line_discount"],
                "reward_discount": ln["reward_discount"],
                "paid": ln["paid"],
                "points": ln["points"],
            }
            for ln in lines
        ],
        "subtotal": tx["subtotal"],
        "rewards": [{"reward_id": r["reward_id"], "name": r["reward_name"], "points": r["points"], "discount": r["discount"]} for r in redemptions],
        "discount": tx["discount"],
        "total": tx["total"],
        "customer": None,
        "points": {
            "earned": tx["points_earned"] if tx["kind"] == "sale" else 0,
            "breakdown": None,
            "reversed": -sum(r["points"] for r in reversals if r["points"] < 0),
            "given_back": sum(r["points"] for r in reversals if r["points"] > 0),
            "redeemed": tx["points_redeemed"],
            "balance_before": balance_before if customer else None,
            "balance_after": position["balance"] if customer else None,
        },
        "tier": None,
        "next_expiry": None,
        "next_reward": None,
        "birthday_week": False,
    }
    if customer is None:
        return view
    if earning is not None:
        view["points"]["breakdown"] = {"base": earning.base, "promotion": earning.promotion, "tier": earning.tier, "bonuses": bonuses}
    view["customer"] = {
        "id": customer.id,
        "name": customer.name,
        "preferred_name": greeting_name(customer),
        "language": customer.language,
        "card_number": tx["card_number"],
    }
    view["tier"] = position["tier"]
    view["next_expiry"] = position["next_expiry"]
    view["next_reward"] = position["next_reward"]
    view["birthday_week"] = position["birthday_week"]
    return view
