"""Error pages for people (everything outside ``/api``), and the headers every page carries."""
from __future__ import annotations

import logging

from flask import Flask, Response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from pos_loyalty.domain.errors import LoyaltyError

log = logging.getLogger("pos_loyalty.web")

FRIENDLY = {
    400: ("Something in that request was not right", "Go back and try again."),
    401: ("Please sign in", "Your session has ended; sign in again to carry on."),
    403: ("Not for this login", "Ask a manager if you need something from these pages."),
    404: ("There is no page here", "The address may be mistyped, or the page has moved."),
    405: ("That does not work here", "Go back and use the buttons on the page."),
    409: ("That clashes with what is stored", "Go back, reload the page and try again."),
    413: ("That is too much to send at once", "Send less and try again."),
    422: ("That could not be saved", "Go back, correct the form and try again."),
    500: ("Something went wrong on our side", "Nothing was changed. Try again; if it keeps happening, tell a manager."),
    503: ("Busy right now", "Try again in a moment."),
}

# Pages load nothing from elsewhere and run no inline script: a till may be offline, and an
# injected script would have nowhere to come from.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def error_page(status: int, detail: str | None = None) -> Response:
    title, advice = FRIENDLY.get(status, FRIENDLY[500] if status >= 500 else FRIENDLY[400])
    html = render_template("error.html", status=status, title=title, detail=detail, advice=advice)
    return Response(html, status=status, mimetype="text/html")


def html_error(exc: HTTPException) -> Response:
    """Called by the app's error handler for every HTTP error outside ``/api``."""
    status = exc.code or 500
    if isinstance(exc, CSRFError):
        return error_page(400, "This form was open too long, or did not come from this screen, so nothing was saved. "
                               "Go back, reload the page and try again.")
    detail = exc.description if status in (403, 413) and exc.description != type(exc).description else None
    response = error_page(status, detail)
    if status == 405 and getattr(exc, "valid_methods", None):
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def page_for_exception(exc: Exception) -> Response:
    """Errors raised in the screens' own views: an HTTP error, a refused use case, or a bug."""
    if isinstance(exc, HTTPException):
        return html_error(exc)
    if isinstance(exc, LoyaltyError):
        return error_page(exc.status, exc.message[:1].upper() + exc.message[1:] + ".")
    log.exception("unexpected error on %s %s", request.method, request.path)
    return html_error(InternalServerError())


def _page_headers(response: Response) -> Response:
    if request.path.startswith("/api/") or response.mimetype != "text/html":
        return response
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if request.path.startswith(("/cashier", "/panel")):
        response.headers["Cache-Control"] = "no-store"  # customers' details stay out of the browser's cache
    return response


def init_app(app: Flask) -> None:
    app.extensions["pos_loyalty_html_errors"] = html_error
    app.after_request(_page_headers)
