"""Looking after customers: search, the profile and preferences, cards, purchase history, the
points ledger, goodwill adjustments, follow-ups, and privacy requests (export, erase).

Every change goes through a service that audits it; the views only read the forms and show the
answers.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for

from pos_loyalty.domain.errors import LoyaltyError, NotFound
from pos_loyalty.services.customers import (
    CONTACT_CHANNELS,
    block_card,
    get_customer,
    issue_card,
    list_customers,
    search_customers,
    update_customer,
)
from pos_loyalty.services.feedback import follow_ups_of, resolve_follow_up
from pos_loyalty.services.points import adjust_points, ledger_of, transactions_of
from pos_loyalty.services.privacy import erase_customer, export_customer
from pos_loyalty.services.programme import get_programme

from ..auth import current_staff
from ..errors import page_for_exception
from . import forms as F

bp = Blueprint("manager_customers", __name__, url_prefix="/panel/customers")
bp.register_error_handler(Exception, page_for_exception)

MAX_QUERY = 100
LIST_SIZE = 50
LEDGER_ROWS = 200
HISTORY_ROWS = 50
PROFILE_FIELDS = ("name", "preferred_name", "email", "phone", "birthday", "language", "staff_notes")
LIST_PREFERENCES = ("allergies", "dietary", "favourite_products")
TEXT_PREFERENCES = ("packaging", "contact_channel", "service_notes")
PROFILE_FORM = (*PROFILE_FIELDS, "marketing_consent", *LIST_PREFERENCES, *TEXT_PREFERENCES, "sizes")
LEDGER_KINDS = {"earn": "Earned", "bonus": "Bonus", "redeem": "Spent", "reverse": "Reversed", "expire": "Expired", "adjust": "Adjusted"}
LEDGER_CAUSES = {
    "sale": "a purchase",
    "return": "a return",
    "claim": "a receipt claimed later",
    "adjustment": "an adjustment",
    "expiry": "points past their date",
    "welcome": "the welcome bonus",
    "birthday": "the birthday bonus",
    "promotion": "a promotion",
    "import": "the opening balance (import)",
}


def shop():
    return current_app.extensions["pos_loyalty"].shop


def actor() -> str:
    return current_staff().username


def _moment(iso: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(iso) if iso else None


# -- the list and the search -----------------------------------------------------------------------


@bp.route("", strict_slashes=False)
def index():
    query = " ".join(request.args.get("q", "").split())[:MAX_QUERY]
    if query:
        found, total = search_customers(shop(), query, limit=LIST_SIZE), None
    else:
        listed = list_customers(shop(), limit=LIST_SIZE)
        found, total = listed["customers"], listed["count"]
    return render_template("manager/customers.html", query=query, customers=found, total=total)


# -- one customer ----------------------------------------------------------------------------------


def profile_form(customer: dict[str, Any]) -> dict[str, Any]:
    prefs = customer["preferences"]
    values = {key: customer[key] or "" for key in PROFILE_FIELDS}
    values["marketing_consent"] = customer["marketing_consent"]
    values.update({key: ", ".join(prefs.get(key) or ()) for key in LIST_PREFERENCES})
    values.update({key: prefs.get(key) or "" for key in TEXT_PREFERENCES})
    values["sizes"] = ", ".join(f"{k}: {v}" for k, v in (prefs.get("sizes") or {}).items())
    return F.empty_form(values)


def profile_page(customer_id: int, *, status: int = 200, **forms: dict[str, Any]):
    customer = get_customer(shop(), customer_id)
    customer = {
        **customer,
        "created_at": _moment(customer["created_at"]),
        "cards": [{**card, "blocked_at": _moment(card["blocked_at"])} for card in customer["cards"]],
    }
    ledger = [
        {**e, "created_at": _moment(e["created_at"]), "expires_at": _moment(e["expires_at"]),
         "kind_label": LEDGER_KINDS.get(e["kind"], e["kind"]), "cause_label": LEDGER_CAUSES.get(e["cause"], e["cause"])}
        for e in ledger_of(shop(), customer_id, limit=LEDGER_ROWS)
    ]
    history = [{**t, "occurred_at": _moment(t["occurred_at"])} for t in transactions_of(shop(), customer_id, limit=HISTORY_ROWS)]
    follow_ups = follow_ups_of(shop(), customer_id)
    return render_template(
        "manager/customer.html",
        customer=customer,
        ledger=ledger,
        history=history,
        follow_ups=follow_ups,
        goodwill_limit=get_programme(shop()).manager_goodwill_limit,
        channels=sorted(CONTACT_CHANNELS),
        profile=forms.get("profile") or profile_form(customer),
        adjust=forms.get("adjust") or F.empty_form(),
        cards=forms.get("cards") or F.empty_form(),
        resolve=forms.get("resolve") or F.empty_form(),
    ), status


@bp.route(f"/<{F.ID}:customer_id>")
def profile(customer_id: int):
    return profile_page(customer_id)


def _sizes(text: str) -> dict[str, str]:
    sizes = {}
    for part in F.names(text):
        name, sep, size = part.partition(":")
        if not sep or not name.strip() or not size.strip():
            raise F.FormProblem("sizes", "Write sizes as name: size, with commas between, like shoe: 42, shirt: M.")
        sizes[name.strip()] = size.strip()
    return sizes


@bp.route(f"/<{F.ID}:customer_id>/profile", methods=["POST"])
def change_profile(customer_id: int):
    sent = request.form
    values: dict[str, Any] = {key: sent.get(key, "").strip() for key in PROFILE_FORM}
    values["marketing_consent"] = sent.get("marketing_consent") == "yes"
    try:
        fields: dict[str, Any] = {key: values[key] for key in PROFILE_FIELDS}
        fields["marketing_consent"] = values["marketing_consent"]
        preferences: dict[str, Any] = {key: F.names(values[key]) for key in LIST_PREFERENCES}
        preferences.update({key: values[key] for key in TEXT_PREFERENCES})
        preferences["sizes"] = _sizes(values["sizes"])
        fields["preferences"] = preferences
        customer = update_customer(shop(), customer_id, fields, actor=actor())
    except (LoyaltyError, F.FormProblem) as refused:
        if isinstance(refused, NotFound):
            raise
        mapped = {f"preferences.{key}": key for key in (*LIST_PREFERENCES, *TEXT_PREFERENCES, "sizes")}
        field, message = F.problem_of(refused, mapped, set(PROFILE_FORM))
        return profile_page(customer_id, status=422, profile={"values": values, "errors": {field: message}})
    flash(f"{customer['name']}'s profile is saved.", "success")
    return redirect(url_for(".profile", customer_id=customer_id))


@bp.route(f"/<{F.ID}:customer_id>/adjust", methods=["POST"])
def adjust(customer_id: int):
    values = {key: request.form.get(key, "").strip() for key in ("points", "reason")}
    try:
        points = F.whole_number(values["points"], "points", signed=True)
        if not values["reason"]:
            raise F.FormProblem("reason", "Say why the points are adjusted; the customer may ask.")
        result = adjust_points(shop(), customer_id, points, reason=values["reason"], user=actor(), role="manager")
    except (LoyaltyError, F.FormProblem) as refused:
        if isinstance(refused, NotFound):
            raise
        field, message = F.problem_of(refused, {}, {"points", "reason"})
        return profile_page(customer_id, status=422, adjust={"values": values, "errors": {field: message}})
    flash(f"{result['points']:+,} points recorded; the balance is now {result['balance_after']:,}.", "success")
    return redirect(url_for(".profile", customer_id=customer_id) + "#points")


def _own_card(customer_id: int, number: str) -> None:
    if number not in {c["number"] for c in get_customer(shop(), customer_id)["cards"]}:
        abort(404)


@bp.route(f"/<{F.ID}:customer_id>/cards/block", methods=["POST"])
def block(customer_id: int):
    number = request.form.get("card_number", "").strip()
    _own_card(customer_id, number)
    reason = request.form.get("reason", "").strip()[:200] or "lost"
    try:
        block_card(shop(), number, reason=reason, actor=actor())
    except LoyaltyError as refused:
        flash(F.sentence(refused.message), "error")
    else:
        flash(f"Card {number} is blocked ({reason}). The account and its points are kept; issue a new card.", "success")
    return redirect(url_for(".profile", customer_id=customer_id) + "#cards")


@bp.route(f"/<{F.ID}:customer_id>/cards", methods=["POST"])
def issue(customer_id: int):
    values = {"card_number": request.form.get("card_number", "").strip()}
    try:
        card = issue_card(shop(), customer_id, card_number=values["card_number"] or None, actor=actor())
    except LoyaltyError as refused:
        if isinstance(refused, NotFound):
            raise
        field, message = F.problem_of(refused, {}, {"card_number"})
        return profile_page(customer_id, status=422, cards={"values": values, "errors": {field: message}})
    flash(f"Card {card['number']} is issued: hand it over.", "success")
    return redirect(url_for(".profile", customer_id=customer_id) + "#cards")


@bp.route(f"/<{F.ID}:customer_id>/follow-ups/<{F.ID}:follow_up_id>/resolve", methods=["POST"])
def resolve(customer_id: int, follow_up_id: int):
    if follow_up_id not in {f["id"] for f in follow_ups_of(shop(), customer_id)}:
        abort(404)
    values = {"resolution": request.form.get("resolution", "").strip(), "follow_up_id": follow_up_id}
    try:
        resolve_follow_up(shop(), follow_up_id, user=actor(), resolution=values["resolution"])
    except LoyaltyError as refused:
        field, message = F.problem_of(refused, {}, {"resolution"})
        return profile_page(customer_id, status=422, resolve={"values": values, "errors": {field: message}})
    flash("The follow-up is resolved; the cashier screen no longer shows it.", "success")
    return redirect(url_for(".profile", customer_id=customer_id) + "#follow-ups")


# -- privacy requests ------------------------------------------------------------------------------


@bp.route(f"/<{F.ID}:customer_id>/export", methods=["POST"])
def export(customer_id: int):
    """Everything held about the customer, as a JSON file to hand over (the export is audited)."""
    document = export_customer(shop(), customer_id, actor())
    body = json.dumps(document, ensure_ascii=False, indent=2, sort_keys=False) + "\n"
    filename = f"customer-{customer_id}-{shop().local_date().isoformat()}.json"
    return Response(
        body,
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@bp.route(f"/<{F.ID}:customer_id>/erase", methods=["GET", "POST"])
def erase(customer_id: int):
    customer = get_customer(shop(), customer_id)
    if request.method == "GET":
        return render_template("manager/erase.html", customer=customer, form=F.empty_form())
    values = {"reason": request.form.get("reason", "").strip(), "confirm": request.form.get("confirm") == "yes"}
    try:
        if not values["confirm"]:
            raise F.FormProblem("confirm", "Tick the box to confirm: erasing cannot be undone.")
        erase_customer(shop(), customer_id, actor(), values["reason"])
    except (LoyaltyError, F.FormProblem) as refused:
        if isinstance(refused, NotFound):
            raise
        field, message = F.problem_of(refused, {}, {"reason", "confirm"})
        return render_template("manager/erase.html", customer=customer, form={"values": values, "errors": {field: message}}), 422
    flash(f"Customer #{customer_id}'s personal data is erased. Their points and sales stay in the figures, without a name.", "success")
    return redirect(url_for(".index"))
