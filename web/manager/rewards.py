"""The rewards catalogue: what customers can spend their points on. List, add, edit, deactivate."""
from __future__ import annotations

from typing import Any, Mapping

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from pos_loyalty.domain.errors import LoyaltyError
from pos_loyalty.services.programme import REWARD_KINDS, add_reward, get_programme, list_rewards, update_reward

from ..auth import current_staff
from ..errors import page_for_exception
from . import forms as F

bp = Blueprint("manager_rewards", __name__, url_prefix="/panel/rewards")
bp.register_error_handler(Exception, page_for_exception)

KIND_LABELS = {"amount_off": "Amount off", "percent_off": "Percent off", "free_item": "A free item"}
FIELDS = ("name", "kind", "amount", "percent", "cap", "sku", "points_cost", "valid_from", "valid_to")
MAX_NAME = 120  # what the catalogue stores
MAX_SKU = 64
MAX_POINTS_COST = 1_000_000_000


def shop():
    return current_app.extensions["pos_loyalty"].shop


def form_of(reward: Mapping[str, Any] | None = None) -> dict[str, Any]:
    if reward is None:
        return F.empty_form({"kind": "amount_off", "tiers": []})
    return F.empty_form({
        "name": reward["name"],
        "kind": reward["kind"],
        "amount": F.money_text(reward["amount"]),
        "percent": "" if reward["percent"] is None else str(reward["percent"]),
        "cap": F.money_text(reward["cap"]),
        "sku": reward["sku"] or "",
        "points_cost": str(reward["points_cost"]),
        "valid_from": reward["valid_from"].isoformat() if reward["valid_from"] else "",
        "valid_to": reward["valid_to"].isoformat() if reward["valid_to"] else "",
        "tiers": list(reward["tiers"]),
    })


def reward_fields(form: dict[str, Any]) -> dict[str, Any]:
    """The reward as the service takes it; only the fields its kind uses are filled in."""
    v = form["values"]
    name = v["name"]
    if not name:
        raise F.FormProblem("name", "Give the reward a name, as the receipt will print it.")
    if len(name) > MAX_NAME:
        raise F.FormProblem("name", f"Keep the name to {MAX_NAME} characters.")
    kind = v["kind"]
    if kind == "free_item" and len(v["sku"]) > MAX_SKU:
        raise F.FormProblem("sku", f"A product code has at most {MAX_SKU} characters.")
    fields: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "amount": F.money(v["amount"], "amount") if kind == "amount_off" else None,
        "percent": F.whole_number(v["percent"], "percent", maximum=1000) if kind == "percent_off" else None,
        "cap": F.money(v["cap"], "cap", required=False) if kind == "percent_off" else None,
        "sku": v["sku"] if kind == "free_item" else None,
        "points_cost": F.whole_number(v["points_cost"], "points_cost", maximum=MAX_POINTS_COST),
        "valid_from": F.day(v["valid_from"], "valid_from"),
        "valid_to": F.day(v["valid_to"], "valid_to"),
        "tiers": v["tiers"],
    }
    return fields


def form_from(sent) -> dict[str, Any]:
    values = {key: sent.get(key, "").strip() for key in FIELDS}
    values["tiers"] = [code for code in sent.getlist("tiers") if code]
    return F.empty_form(values)


def _kind_ok(form: dict[str, Any]) -> None:
    if form["values"]["kind"] not in REWARD_KINDS:
        raise F.FormProblem("kind", "Choose what the reward gives.")


def _page(template: str, form: dict[str, Any], status: int = 200, **extra: Any):
    return render_template(
        template,
        form=form,
        kinds=KIND_LABELS,
        tiers=get_programme(shop()).tiers,
        currency=F.currency(),
        **extra,
    ), status


def _find(reward_id: int) -> dict[str, Any]:
    reward = next((r for r in list_rewards(shop()) if r["id"] == reward_id), None)
    if reward is None:
        abort(404)
    return reward


@bp.route("", strict_slashes=False)
def catalogue():
    return _page("manager/rewards.html", form_of(), rewards=list_rewards(shop()))


@bp.route("", methods=["POST"], strict_slashes=False)
def add():
    form = form_from(request.form)
    try:
        _kind_ok(form)
        reward = add_reward(shop(), reward_fields(form), actor=current_staff().username)
    except (LoyaltyError, F.FormProblem) as refused:
        field, message = F.problem_of(refused, {}, set(FIELDS) | {"tiers"})
        form["errors"] = {field: message}
        return _page("manager/rewards.html", form, 422, rewards=list_rewards(shop()))
    flash(f"{reward['name']} is in the catalogue for {reward['points_cost']:,} points.", "success")
    return redirect(url_for(".catalogue"))


@bp.route(f"/<{F.ID}:reward_id>", methods=["GET", "POST"])
def edit(reward_id: int):
    reward = _find(reward_id)
    if request.method == "GET":
        return _page("manager/reward.html", form_of(reward), reward=reward)
    form = form_from(request.form)
    try:
        _kind_ok(form)
        changed = update_reward(shop(), reward_id, reward_fields(form), actor=current_staff().username)
    except (LoyaltyError, F.FormProblem) as refused:
        field, message = F.problem_of(refused, {}, set(FIELDS) | {"tiers"})
        form["errors"] = {field: message}
        return _page("manager/reward.html", form, 422, reward=reward)
    flash(f"{changed['name']} is saved.", "success")
    return redirect(url_for(".catalogue"))


@bp.route(f"/<{F.ID}:reward_id>/active", methods=["POST"])
def set_active(reward_id: int):
    reward = _find(reward_id)
    active = request.form.get("active") == "yes"
    try:
        update_reward(shop(), reward_id, {"active": active}, actor=current_staff().username)
    except LoyaltyError as refused:
        flash(f"{reward['name']} was not changed: {F.sentence(refused.message)}", "error")
        return redirect(url_for(".catalogue"))
    if active:
        flash(f"{reward['name']} can be redeemed again.", "success")
    else:
        flash(f"{reward['name']} is deactivated: it is no longer offered. Past redemptions keep it.", "success")
    return redirect(url_for(".catalogue"))
