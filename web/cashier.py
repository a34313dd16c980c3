"""The cashier screen: who is at the counter, and the few things serving them needs.

A card arrives three ways, all ending in the same page: typed into the card field (a plain GET
form, ``/cashier?card=...``, so it works with JavaScript off), typed by a keyboard-wedge scanner
(``cashier.js`` tells its fast burst from a person typing), or read by the serial scanner and
pushed to the open screen over server-sent events (``/cashier/events``).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, stream_with_context, url_for

from pos_loyalty.domain.cards import mask_card_number
from pos_loyalty.domain.errors import LoyaltyError, NotFound
from pos_loyalty.scanning import HubClosed, HubFull, Subscription
from pos_loyalty.services.customers import enrol_customer
from pos_loyalty.services.feedback import record_feedback
from pos_loyalty.services.points import adjust_points, transactions_of
from pos_loyalty.services.programme import get_programme
from pos_loyalty.services.summary import card_summary

from .auth import current_staff
from .errors import page_for_exception
from .formatting import money

bp = Blueprint("cashier", __name__, url_prefix="/cashier", template_folder="templates")
bp.register_error_handler(Exception, page_for_exception)

KEEP_ALIVE_SECONDS = 15.0
MAX_CARD_LENGTH = 64
RECENT_VISITS = 5
SCANNER_STATES = {
    "connected": ("ready", "Scanner ready"),
    "waiting": ("problem", "Scanner not found: is it plugged in?"),
    "disconnected": ("problem", "Scanner unplugged"),
    "busy": ("problem", "Scanner in use by another program"),
    "stopped": ("off", "Scanner off"),
}


def shop():
    return current_app.extensions["pos_loyalty"].shop


def web_state():
    return current_app.extensions["pos_loyalty_web"]


class FormProblem(Exception):
    """One field of a form is not right; the form is shown again with the message beside it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def _sentence(text: str) -> str:
    """A service's message as a sentence: ``is not an email address`` -> ``This is not an email address.``"""
    text = text.strip()
    if text.startswith(("is ", "are ", "must ")):
        text = "this " + text
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def _problem_of(exc: LoyaltyError | FormProblem, fields: dict[str, str], default: str) -> tuple[str, str]:
    """The form field a refusal is about (its service name mapped to the form's), and the message."""
    field = (exc.field or default) if isinstance(exc, LoyaltyError) else exc.field
    field = fields.get(field, field)
    return field, _sentence(exc.message)


def _whole_number(text: str, field: str, *, required: bool = True) -> int | None:
    text = (text or "").strip()
    if not text:
        if required:
            raise FormProblem(field, "Give a whole number.")
        return None
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if not digits.isdigit() or len(digits) > 9:
        raise FormProblem(field, "Give a whole number, like 20.")
    return sign * int(digits)


def _card_from(value: str | None) -> str:
    return "".join((value or "").split())[:MAX_CARD_LENGTH + 1]


# -- what the screen shows -------------------------------------------------------------------------


def _local(iso: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(iso).astimezone(shop().timezone) if iso else None


def customer_view(card: str) -> dict[str, Any]:
    """Everything the customer part of the screen needs for this card, or why there is nothing."""
    if not card:
        return {"card": "", "summary": None, "lookup_error": None}
    if len(card) > MAX_CARD_LENGTH:
        return {"card": "", "summary": None, "lookup_error": "That is too long to be a card number."}
    try:
        summary = card_summary(shop(), card)
    except LoyaltyError as refused:
        title = "Unknown card" if isinstance(refused, NotFound) else "This card cannot be used"
        return {"card": card, "summary": None, "lookup_title": title, "lookup_error": _sentence(refused.message),
                "masked": mask_card_number(card)}
    staff = current_staff()
    programme = get_programme(shop())
    visits = [
        {
            "id": t["id"],
            "label": f"{_local(t['occurred_at']):%d %b %H:%M} · {money(t['total'], t['currency'])}",
        }
        for t in transactions_of(shop(), summary["customer"]["id"], limit=RECENT_VISITS * 2)
        if t["kind"] == "sale"
    ][:RECENT_VISITS]
    return {
        "card": card,
        "summary": summary,
        "lookup_error": None,
        "visits": visits,
        "last_visit": _local(summary["last_visit"]),
        "expiry_date": dt.date.fromisoformat(summary["next_expiry"]["date"]) if summary["next_expiry"] else None,
        "follow_ups": [{**f, "opened": _local(f["opened_at"])} for f in summary["open_follow_ups"]],
        "goodwill_limit": programme.manager_goodwill_limit if staff.is_manager else programme.cashier_goodwill_limit,
    }


def render_screen(card: str = "", *, status: int = 200, **forms: Any):
    """The whole screen; ``forms`` carries a re-shown form's values and errors."""
    view = customer_view(card)
    enrol = forms.pop("enrol", {"values": {}, "errors": {}})
    return render_template(
        "cashier/screen.html",
        **view,
        enrol=enrol,
        rating=forms.pop("rating", {"values": {}, "errors": {}}),
        goodwill=forms.pop("goodwill", {"values": {}, "errors": {}}),
        scanner_live=bool(web_state().scanner_url),
    ), status


# -- the screen and its quick actions --------------------------------------------------------------


@bp.route("", strict_slashes=False)
def screen():
    return render_screen(_card_from(request.args.get("card")))


ENROL_FIELDS = ("name", "preferred_name", "email", "phone", "birthday", "allergies", "card_number")


@bp.route("/enrol", methods=["POST"])
def enrol():
    form = request.form
    values = {key: form.get(key, "").strip() for key in ENROL_FIELDS}
    values["marketing_consent"] = form.get("marketing_consent") == "yes"
    fields: dict[str, Any] = {k: values[k] for k in ("name", "preferred_name", "email", "phone", "birthday") if values[k]}
    fields["name"] = values["name"]
    fields["marketing_consent"] = values["marketing_consent"]
    allergies = [a.strip() for a in values["allergies"].replace(";", ",").split(",") if a.strip()]
    if allergies:
        fields["preferences"] = {"allergies": allergies}
    try:
        customer = enrol_customer(shop(), fields, card_number=values["card_number"] or None, actor=current_staff().username)
    except LoyaltyError as refused:
        field, message = _problem_of(refused, {"preferences.allergies": "allergies"}, "form")
        return render_screen(
            _card_from(form.get("current_card")), status=422, enrol={"values": values, "errors": {field: message}, "open": True}
        )
    number = customer["cards"][0]["number"]
    flash(f"Welcome, {customer['greeting_name'] or customer['name']}! Hand over card {number}.", "success")
    return redirect(url_for("cashier.screen", card=number))


RATING_FIELDS = {"transaction_id": "visit", "visit_code": "visit_code"}


@bp.route("/rating", methods=["POST"])
def rating():
    form = request.form
    card = _card_from(form.get("card"))
    values = {k: form.get(k, "").strip() for k in ("visit", "visit_code", "satisfaction", "recommend", "comment")}
    values["complaint"] = form.get("complaint") == "yes"
    try:
        satisfaction = _whole_number(values["satisfaction"], "satisfaction", required=False)
        recommend = _whole_number(values["recommend"], "recommend", required=False)
        if not values["visit"] and not values["visit_code"]:
            raise FormProblem("visit", "Choose the visit, or type the visit code from the receipt.")
        result = record_feedback(
            shop(),
            transaction_id=None if values["visit_code"] else values["visit"],
            visit_code=values["visit_code"] or None,
            satisfaction=satisfaction,
            recommend=recommend,
            comment=values["comment"] or None,
            complaint=values["complaint"],
        )
    except (LoyaltyError, FormProblem) as refused:
        field, message = _problem_of(refused, RATING_FIELDS, "form")
        return render_screen(card, status=422, rating={"values": values, "errors": {field: message}})
    if result["follow_up_id"]:
        flash("Rating recorded. A follow-up is open: a manager will be in touch with the customer.", "warning")
    else:
        flash("Rating recorded. Thank you for asking!", "success")
    return redirect(url_for("cashier.screen", card=card or None))


@bp.route("/goodwill", methods=["POST"])
def goodwill():
    form = request.form
    card = _card_from(form.get("card"))
    values = {k: form.get(k, "").strip() for k in ("points", "reason")}
    staff = current_staff()
    try:
        points = _whole_number(values["points"], "points")
        if not values["reason"]:
            raise FormProblem("reason", "Say why the points are given.")
        customer_id = card_summary(shop(), card)["customer"]["id"]
        result = adjust_points(shop(), customer_id, points, reason=values["reason"], user=staff.username, role=staff.role)
    except (LoyaltyError, FormProblem) as refused:
        field, message = _problem_of(refused, {"card_number": "form", "customer_id": "form", "user": "form", "role": "form"}, "form")
        return render_screen(card, status=422, goodwill={"values": values, "errors": {field: message}})
    flash(f"{result['points']} goodwill points given; the balance is now {result['balance_after']}.", "success")
    return redirect(url_for("cashier.screen", card=card))


# -- the serial scanner's scans, pushed to the screen ----------------------------------------------


def _event(name: str, data: str) -> str:
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {name}\n{lines}\n"


@bp.route("/events")
def events():
    """Server-sent events: ``card`` (the customer part of the screen, rendered for the scanned card)
    and ``scanner`` (its status). Ends when the client goes, the server stops or the hub drops it."""
    try:
        subscription = web_state().hub.subscribe()
    except (HubFull, HubClosed) as refused:
        return Response(f"{refused}\n", status=503, mimetype="text/plain", headers={"Retry-After": "10"})
    client_gone = request.environ.get("waitress.client_disconnected") or (lambda: False)

    @stream_with_context
    def stream():
        try:
            yield "retry: 1000\n: connected\n\n"
            while not client_gone():
                push = subscription.next(timeout=KEEP_ALIVE_SECONDS)
                if push is Subscription.CLOSED:
                    return
                if push is None:
                    yield ": still here\n\n"  # a write to a client that left ends the stream
                elif push.kind == "card":
                    yield _event("card", render_template("cashier/_customer.html", **customer_view(push.value),
                                                         rating={"values": {}, "errors": {}},
                                                         goodwill={"values": {}, "errors": {}}))
                elif push.kind == "scanner":
                    state, text = SCANNER_STATES.get(push.value, ("problem", f"Scanner: {push.value}"))
                    yield _event("scanner", f"{state} {text}")
        finally:
            subscription.close()

    response = Response(stream(), mimetype="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    response.call_on_close(subscription.close)
    return response
