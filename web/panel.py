"""The manager panel's own pages: its front page, staff logins, and the audit log.

Every path under ``/panel`` is for managers only (``web.auth``). The other sections (programme,
rewards, customers, reports, devices) are served by their own blueprints under ``/panel/...``
and listed in ``web.nav``.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from pos_loyalty.domain.errors import LoyaltyError
from pos_loyalty.services.access import STAFF_ROLES
from pos_loyalty.services.staff import add_staff, audit_trail, list_staff, set_staff_disabled, unlock_staff

from .auth import current_staff
from .errors import page_for_exception

bp = Blueprint("panel", __name__, url_prefix="/panel", template_folder="templates")
bp.register_error_handler(Exception, page_for_exception)

AUDIT_PAGE_SIZES = (100, 200, 500, 1000)


def shop():
    return current_app.extensions["pos_loyalty"].shop


@bp.route("/")
def index():
    return render_template("panel/index.html")


def _users_page(form: dict[str, Any] | None = None, status: int = 200):
    form = form or {"values": {"role": "cashier"}, "errors": {}}
    return render_template("panel/users.html", users=list_staff(shop()), roles=STAFF_ROLES, form=form), status


@bp.route("/users", methods=["GET", "POST"])
def users():
    if request.method == "GET":
        return _users_page()
    values = {"username": request.form.get("username", "").strip(), "role": request.form.get("role", "")}
    try:
        add_staff(shop(), values["username"], request.form.get("password", ""), values["role"],
                  repeated=request.form.get("repeated", ""), actor=current_staff().username)
    except LoyaltyError as refused:
        field = refused.field if refused.field in ("username", "role", "password", "repeated") else "form"
        message = refused.message[:1].upper() + refused.message[1:] + "."
        return _users_page({"values": values, "errors": {field: message}}, 422)
    flash(f"{values['username']} can now sign in as {values['role']}.", "success")
    return redirect(url_for("panel.users"))


def _change_user(username: str, change, done: str):
    try:
        change()
    except LoyaltyError as refused:
        flash(refused.message[:1].upper() + refused.message[1:] + ".", "error")
    else:
        flash(done.format(username=username), "success")
    return redirect(url_for("panel.users"))


@bp.route("/users/<username>/unlock", methods=["POST"])
def unlock(username: str):
    actor = current_staff().username
    return _change_user(username, lambda: unlock_staff(shop(), username, actor=actor), "{username} can sign in again.")


@bp.route("/users/<username>/disable", methods=["POST"])
def disable(username: str):
    actor = current_staff().username
    return _change_user(username, lambda: set_staff_disabled(shop(), username, True, actor=actor),
                        "{username} can no longer sign in.")


@bp.route("/users/<username>/enable", methods=["POST"])
def enable(username: str):
    actor = current_staff().username
    return _change_user(username, lambda: set_staff_disabled(shop(), username, False, actor=actor),
                        "{username} can sign in again.")


@bp.route("/audit")
def audit():
    limit = request.args.get("show", type=int)
    limit = limit if limit in AUDIT_PAGE_SIZES else AUDIT_PAGE_SIZES[0]
    return render_template("panel/audit.html", entries=audit_trail(shop(), limit=limit), limit=limit, sizes=AUDIT_PAGE_SIZES)
