"""The programme page: how points are earned, tiers, bonuses and expiry, with a preview and the
history of saved versions.

One form carries every setting. Its rows (multipliers, promotions, tiers) are added and removed
by the server, so the page works without JavaScript; nothing is saved until "Save" is pressed,
and "Preview" works out what a sample basket would earn under the rules as they stand in the
form (the domain's own ``compute_earning``; nothing is written). A saved change is a new
programme version: the next sale on any till uses it.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from pos_loyalty.domain.earning import Line
from pos_loyalty.domain.errors import LoyaltyError
from pos_loyalty.domain.programme import Programme, format_multiplier
from pos_loyalty.services.programme import get_programme, preview_earning, programme_history, save_programme

from ..auth import current_staff
from ..errors import page_for_exception
from . import forms as F

bp = Blueprint("manager_programme", __name__, url_prefix="/panel/programme")
bp.register_error_handler(Exception, page_for_exception)

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
SCALARS = (
    "points_per_unit", "unit", "excluded_categories", "welcome_bonus", "birthday_bonus", "birthday_window_days",
    "expiry_months", "claim_window_days", "cashier_goodwill_limit", "manager_goodwill_limit", "point_value_minor",
    "preview_day", "preview_tier",
)
ROWS = {
    "categories": ("name", "multiplier"),
    "skus": ("name", "multiplier"),
    "promotions": ("name", "starts_on", "ends_on", "multiplier", "bonus_points", "min_spend", "categories", "skus"),
    "tiers": ("code", "name", "min_spend", "multiplier"),
    "basket": ("sku", "category", "quantity", "price"),
}
ROW_FIELD = re.compile(r"^(categories|skus|promotions|tiers|basket)-(\d{1,3})-([a-z_]+)\Z")
MAX_ROWS = 100
SAMPLE_BASKET = (
    {"sku": "COFFEE", "category": "drinks", "quantity": "2", "price": 250},
    {"sku": "BREAD", "category": "bakery", "quantity": "1", "price": 320},
    {"sku": "CIGARETTES", "category": "tobacco", "quantity": "1", "price": 800},
)
BASKET_ROWS = 5


def shop():
    return current_app.extensions["pos_loyalty"].shop


# -- the form, from a programme or from what was sent -----------------------------------------------


def form_of(programme: Programme) -> dict[str, Any]:
    """The form showing a programme as it is stored, with the sample basket."""
    p = programme
    values = {
        "points_per_unit": str(p.points_per_unit),
        "unit": F.money_text(p.unit_minor),
        "excluded_categories": ", ".join(sorted(p.excluded_categories)),
        "welcome_bonus": str(p.welcome_bonus),
        "birthday_bonus": str(p.birthday_bonus),
        "birthday_window_days": str(p.birthday_window_days),
        "expiry_months": "" if p.expiry_months is None else str(p.expiry_months),
        "claim_window_days": str(p.claim_window_days),
        "cashier_goodwill_limit": str(p.cashier_goodwill_limit),
        "manager_goodwill_limit": str(p.manager_goodwill_limit),
        "point_value_minor": format_multiplier(p.point_value_minor),
        "preview_day": shop().local_date().isoformat(),
        "preview_tier": p.tiers[0].code,
    }
    rows = {
        "categories": [{"name": k, "multiplier": format_multiplier(v)} for k, v in sorted(p.category_multipliers.items())],
        "skus": [{"name": k, "multiplier": format_multiplier(v)} for k, v in sorted(p.sku_multipliers.items())],
        "promotions": [
            {
                "name": promo.name,
                "starts_on": promo.starts_on.isoformat(),
                "ends_on": promo.ends_on.isoformat(),
                "weekdays": sorted(promo.weekdays),
                "multiplier": format_multiplier(promo.multiplier),
                "bonus_points": str(promo.bonus_points),
                "min_spend": F.money_text(promo.min_spend),
                "categories": ", ".join(sorted(promo.categories)),
                "skus": ", ".join(sorted(promo.skus)),
            }
            for promo in p.promotions
        ],
        "tiers": [
            {"code": t.code, "name": t.name, "min_spend": F.money_text(t.min_spend), "multiplier": format_multiplier(t.multiplier)}
            for t in p.tiers
        ],
        "basket": [{**line, "price": F.money_text(line["price"])} for line in SAMPLE_BASKET],
    }
    rows["basket"] += [_blank("basket") for _ in range(BASKET_ROWS - len(rows["basket"]))]
    return {"values": values, "rows": rows, "errors": {}}


def _blank(kind: str) -> dict[str, Any]:
    row: dict[str, Any] = {key: "" for key in ROWS[kind]}
    if kind == "promotions":
        row["weekdays"] = []
    return row


def form_from(sent: MultiDict) -> dict[str, Any]:
    """The form as it was sent: every row in the order of its number, renumbered from 0."""
    values = {key: str(sent.get(key, "")).strip() for key in SCALARS}
    values["preview_welcome"] = sent.get("preview_welcome") == "yes"
    values["preview_birthday"] = sent.get("preview_birthday") == "yes"
    found: dict[str, dict[int, dict[str, Any]]] = {kind: {} for kind in ROWS}
    for key in sent.keys():
        match = ROW_FIELD.match(key)
        if not match or match.group(3) not in ROWS[match.group(1)] + (("weekdays",) if match.group(1) == "promotions" else ()):
            continue
        kind, index, name = match.group(1), int(match.group(2)), match.group(3)
        row = found[kind].setdefault(index, _blank(kind))
        if name == "weekdays":
            row["weekdays"] = sorted({int(d) for d in sent.getlist(key) if d in {"0", "1", "2", "3", "4", "5", "6"}})
        else:
            row[name] = str(sent.get(key, "")).strip()
    rows = {kind: [found[kind][i] for i in sorted(found[kind])][:MAX_ROWS] for kind in ROWS}
    rows["basket"] += [_blank("basket") for _ in range(BASKET_ROWS - len(rows["basket"]))]
    return {"values": values, "rows": rows, "errors": {}}


def decimal_text(text: str) -> str:
    """A multiplier as the domain reads it: ``1,5`` (as many shops write it) -> ``1.5``."""
    return text.replace(",", ".") if re.fullmatch(r"\d+,\d+", text) else text


def _is_blank(row: Mapping[str, Any]) -> bool:
    return not any(v for v in row.values())


# -- from the form to the programme's settings ---------------------------------------------------------


class Reading:
    """Turns the form into the programme's settings, noting every field that cannot be read, and
    where each stored row came from (so the domain's message lands beside the right field)."""

    def __init__(self, form: dict[str, Any]) -> None:
        self.form = form
        self.errors: dict[str, str] = {}
        self.row_of: dict[str, dict[Any, int]] = {kind: {} for kind in ROWS}

    def take(self, read, text: Any, field: str, **kw: Any) -> Any:
        try:
            return read(text, field, **kw)
        except F.FormProblem as problem:
            self.errors.setdefault(problem.field, problem.message)
            return None

    def settings(self) -> dict[str, Any]:
        v = self.form["values"]
        data: dict[str, Any] = {
            "points_per_unit": self.take(F.whole_number, v["points_per_unit"], "points_per_unit"),
            "unit_minor": self.take(F.money, v["unit"], "unit"),
            "excluded_categories": F.names(v["excluded_categories"]),
            "category_multipliers": self.multipliers("categories"),
            "sku_multipliers": self.multipliers("skus"),
            "promotions": self.promotions(),
            "tiers": self.tiers(),
            "welcome_bonus": self.take(F.whole_number, v["welcome_bonus"], "welcome_bonus"),
            "birthday_bonus": self.take(F.whole_number, v["birthday_bonus"], "birthday_bonus"),
            "birthday_window_days": self.take(F.whole_number, v["birthday_window_days"], "birthday_window_days"),
            "expiry_months": self.take(F.whole_number, v["expiry_months"], "expiry_months", required=False),
            "claim_window_days": self.take(F.whole_number, v["claim_window_days"], "claim_window_days"),
            "cashier_goodwill_limit": self.take(F.whole_number, v["cashier_goodwill_limit"], "cashier_goodwill_limit"),
            "manager_goodwill_limit": self.take(F.whole_number, v["manager_goodwill_limit"], "manager_goodwill_limit"),
            "point_value_minor": decimal_text(v["point_value_minor"]),
        }
        return data

    def multipliers(self, kind: str) -> dict[str, str]:
        found: dict[str, str] = {}
        for i, row in enumerate(self.form["rows"][kind]):
            if _is_blank(row):
                continue
            what = "category" if kind == "categories" else "product code (SKU)"
            if not row["name"]:
                self.errors.setdefault(f"{kind}-{i}-name", f"Name the {what}.")
            elif row["name"] in found:
                self.errors.setdefault(f"{kind}-{i}-name", f"This {what} is listed twice.")
            else:
                found[row["name"]] = decimal_text(row["multiplier"])
                self.row_of[kind][row["name"]] = i
        return found

    def promotions(self) -> list[dict[str, Any]]:
        found = []
        for i, row in enumerate(self.form["rows"]["promotions"]):
            if _is_blank(row):
                continue
            where = f"promotions-{i}-"
            self.row_of["promotions"][len(found)] = i
            found.append({
                "name": row["name"],
                "starts_on": row["starts_on"],
                "ends_on": row["ends_on"],
                "weekdays": row["weekdays"],
                "multiplier": decimal_text(row["multiplier"]) or "1",
                "bonus_points": self.take(F.whole_number, row["bonus_points"], where + "bonus_points", required=False) or 0,
                "min_spend": self.take(F.money, row["min_spend"], where + "min_spend", required=False) or 0,
                "categories": F.names(row["categories"]),
                "skus": F.names(row["skus"]),
            })
        return found

    def tiers(self) -> list[dict[str, Any]]:
        found = []
        for i, row in enumerate(self.form["rows"]["tiers"]):
            if _is_blank(row):
                continue
            where = f"tiers-{i}-"
            self.row_of["tiers"][len(found)] = i
            spend = self.take(F.money, row["min_spend"], where + "min_spend", required=bool(found))
            found.append({
                "code": row["code"], "name": row["name"], "min_spend": spend or 0,
                "multiplier": decimal_text(row["multiplier"]) or "1",
            })
        return found

    def field_of(self, refused: LoyaltyError) -> str:
        """The form field the domain's message is about."""
        field = refused.field or "form"
        head, _, rest = field.partition(".")
        if head in ("category_multipliers", "sku_multipliers"):
            kind = "categories" if head == "category_multipliers" else "skus"
            i = self.row_of[kind].get(rest.strip())
            return f"{kind}-{i}-multiplier" if i is not None else kind
        if head in ("promotions", "tiers"):
            index, _, key = rest.partition(".")
            i = self.row_of[head].get(int(index)) if index.isdigit() else None
            if i is None:
                return head
            return f"{head}-{i}-{key or 'name'}"
        if head == "unit_minor":
            return "unit"
        return head if head in SCALARS else "form"


def _programme_from(form: dict[str, Any]) -> Programme | None:
    """The rules as typed, checked by the domain; None (with the form's errors filled in) if they
    cannot be read or break a rule."""
    reading = Reading(form)
    data = reading.settings()
    if reading.errors:
        form["errors"] = reading.errors
        return None
    try:
        return Programme.from_dict(data)
    except LoyaltyError as refused:
        form["errors"] = {reading.field_of(refused): F.sentence(refused.message)}
        return None


# -- the preview -----------------------------------------------------------------------------------


def preview_of(form: dict[str, Any], programme: Programme) -> dict[str, Any] | None:
    """What the sample basket earns under ``programme``: per line, and base / promotion / tier /
    bonuses. A pure calculation; None (with the basket's errors) if the basket cannot be read."""
    reading = Reading(form)
    v = form["values"]
    lines = []
    for i, row in enumerate(form["rows"]["basket"]):
        if _is_blank(row):
            continue
        where = f"basket-{i}-"
        quantity = reading.take(F.quantity_milli, row["quantity"] or "1", where + "quantity")
        price = reading.take(F.money, row["price"], where + "price")
        if not row["sku"]:
            reading.errors.setdefault(where + "sku", "Give the product code.")
        if quantity and price is not None and row["sku"]:
            lines.append(Line(len(lines) + 1, row["sku"], row["sku"], row["category"] or None, quantity, price))
    day = reading.take(F.day, v["preview_day"], "preview_day", required=True)
    if not lines and not reading.errors:
        reading.errors["basket"] = "Put at least one item in the sample basket."
    if reading.errors:
        form["errors"] = reading.errors
        return None
    tier = programme.tier_by_code(v["preview_tier"]) or programme.tiers[0]
    earning = preview_earning(
        programme, lines, day=day, tier_code=tier.code,
        welcome=bool(v.get("preview_welcome")), birthday=bool(v.get("preview_birthday")),
    )
    return {
        "day": day,
        "tier": tier,
        "lines": [
            {
                "line": line,
                "earns": programme.earns(line.category),
                "multiplier": format_multiplier(programme.product_multiplier(line.sku, line.category)),
            }
            for line in earning.lines
        ],
        "earning": earning,
        "promotions_running": [p.name for p in programme.promotions if p.runs_on(day)],
    }


# -- the page --------------------------------------------------------------------------------------


def _page(form: dict[str, Any], *, preview: dict[str, Any] | None = None, status: int = 200):
    current = get_programme(shop())
    return render_template(
        "manager/programme.html",
        form=form,
        current=current,
        history=programme_history(shop()),
        preview=preview,
        weekdays=WEEKDAYS,
        currency=F.currency(),
    ), status


@bp.route("", strict_slashes=False)
def show():
    return _page(form_of(get_programme(shop())))


@bp.route("", methods=["POST"], strict_slashes=False)
def change():
    form = form_from(request.form)
    action = request.form.get("action", "save")
    kind, _, index = action.partition(":")[2].partition(":")
    if action.startswith("add:") and kind in ("categories", "skus", "promotions", "tiers"):
        if len(form["rows"][kind]) < MAX_ROWS:
            form["rows"][kind].append(_blank(kind))
        return _page(form)
    if action.startswith("remove:") and kind in ("categories", "skus", "promotions", "tiers") and index.isdigit():
        if int(index) < len(form["rows"][kind]):
            del form["rows"][kind][int(index)]
        return _page(form)
    if action == "preview":
        programme = _programme_from(form)
        preview = preview_of(form, programme) if programme is not None else None
        return _page(form, preview=preview, status=200 if preview is not None else 422)
    programme = _programme_from(form)
    if programme is None:
        return _page(form, status=422)
    try:
        saved = save_programme(shop(), programme.to_dict(), actor=current_staff().username)
    except LoyaltyError as refused:
        form["errors"] = {"form": F.sentence(refused.message)}
        return _page(form, status=422)
    flash(f"Saved as version {saved.version_id}. The next sale on every till uses it.", "success")
    return redirect(url_for(".show"))
