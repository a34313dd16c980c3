"""Staff sign-in and sign-out, and who may see what.

Every path under ``/cashier`` needs a signed-in staff member; every path under ``/panel`` needs a
manager (a cashier gets a friendly 403 page). The check is made by path, before any view runs, so
a panel page added later is protected without doing anything.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface

from pos_loyalty.services.staff import SignInRefused, StaffMember, sign_in as staff_sign_in, slow_down_for, staff_member

from .errors import page_for_exception
from .nav import panel_nav

bp = Blueprint("auth", __name__, template_folder="templates", static_folder="static", static_url_path="/static/web")
bp.register_error_handler(Exception, page_for_exception)

MANAGER_AREA = "/panel"
STAFF_AREAS = ("/cashier", MANAGER_AREA)


class StaffSessions(SecureCookieSessionInterface):
    """Flask's signed cookie session, marked Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure

    def open_session(self, app: Flask, request):
        # The till API signs in with bearer tokens and never reads the staff's cookie: unsigning
        # it (and building the signer) was a tenth of a millisecond of every till request.
        if request.path.startswith("/api/"):
            return self.make_null_session(app)
        return super().open_session(app, request)


def shop():
    return current_app.extensions["pos_loyalty"].shop


def current_staff() -> StaffMember | None:
    return g.get("staff")


def _under(path: str, area: str) -> bool:
    return path == area or path.startswith(area + "/")


def home_for(staff: StaffMember) -> str:
    return url_for("panel.index") if staff.is_manager else url_for("cashier.screen")


def safe_next(target: str | None) -> str | None:
    """A path on this site to go back to after signing in; anything else is ignored."""
    if not target or not target.startswith("/") or "\\" in target or any(c.isspace() or ord(c) < 32 for c in target):
        return None  # browsers drop tabs and newlines from addresses: "/\t/evil.example" is "//evil.example"
    if target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _load_staff() -> None:
    g.staff = None
    if request.path.startswith(("/api/", "/static/")):
        return
    user_id, username = session.get("staff_id"), session.get("staff_name")
    if user_id is None:
        return
    g.staff = staff_member(shop(), user_id, username)
    if g.staff is None:  # the login was disabled (or is gone) since this session began
        session.clear()


def _guard_areas():
    path = request.path
    if not any(_under(path, area) for area in STAFF_AREAS):
        return None
    staff = current_staff()
    if staff is None:
        if request.accept_mimetypes.best == "text/event-stream":
            abort(401)
        flash("Please sign in first.", "info")
        return redirect(url_for("auth.sign_in", next=request.full_path.rstrip("?") if request.method == "GET" else None))
    if _under(path, MANAGER_AREA) and not staff.is_manager:
        abort(403, description="This page is for managers.")
    return None


def init_app(app: Flask) -> None:
    app.session_interface = StaffSessions()
    app.before_request(_load_staff)
    app.before_request(_guard_areas)

    @app.context_processor
    def _staff_context():
        staff = g.get("staff")
        services = current_app.extensions["pos_loyalty"]
        return {
            "staff": staff,
            "shop_name": services.settings.shop_name,
            "panel_nav": panel_nav(current_app, request.path) if staff is not None and staff.is_manager else [],
        }


@bp.route("/")
def home():
    staff = current_staff()
    if staff is None:
        return redirect(url_for("auth.sign_in"))
    return redirect(home_for(staff))


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    nxt = safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_staff() is not None:
            return redirect(nxt or home_for(current_staff()))
        return render_template("sign_in.html", next=nxt, username="", error=None)
    username = request.form.get("username", "")
    try:
        staff = staff_sign_in(shop(), username, request.form.get("password", ""))
    except SignInRefused as refused:
        if refused.failures:
            current_app.extensions["pos_loyalty_web"].pause(slow_down_for(refused.failures))
        error = refused.message[0].upper() + refused.message[1:] + "."
        return render_template(
            "sign_in.html", next=nxt, username=username.strip()[:64], error=error, locked=refused.locked_until is not None
        ), 401
    session.clear()  # a fresh session (and CSRF token) for whoever signed in
    session.permanent = True
    session["staff_id"], session["staff_name"] = staff.id, staff.username
    return redirect(nxt or home_for(staff))


@bp.route("/sign-out", methods=["POST"])
def sign_out():
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.sign_in"))
