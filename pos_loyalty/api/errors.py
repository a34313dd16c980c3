"""Every error the API gives is ``application/problem+json`` (RFC 9457), naming the fields at fault."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException, InternalServerError

from ..domain.errors import LoyaltyError

log = logging.getLogger("pos_loyalty.api")
PROBLEM = "application/problem+json"

TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


def problem(status: int, detail: str, *, errors: list[dict[str, Any]] | None = None, **extra: Any) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    body.update(extra)
    resp = Response(json.dumps(body), status=status, mimetype=PROBLEM)
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="pos-loyalty"'
    return resp


def _flatten(messages: Any, prefix: str = "") -> list[dict[str, str]]:
    """webargs/marshmallow nest messages by location and field; give each field its dotted path."""
    out: list[dict[str, str]] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            if prefix == "" and key in ("json", "query", "form", "view_args", "headers", "files"):
                out.extend(_flatten(value, ""))
                continue
            path = f"{prefix}.{key}" if prefix else str(key)
            out.extend(_flatten(value, path))
    elif isinstance(messages, list):
        if all(isinstance(m, str) for m in messages):
            out.extend({"field": prefix or "body", "message": m} for m in messages)
        else:
            for m in messages:
                out.extend(_flatten(m, prefix))
    else:
        out.append({"field": prefix or "body", "message": str(messages)})
    return out


def wants_problem() -> bool:
    return request.path.startswith("/api/")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(LoyaltyError)
    def _loyalty_error(exc: LoyaltyError):
        errors = [{"field": exc.field, "message": exc.message}] if exc.field else None
        extra = {k: v for k, v in exc.extra.items() if isinstance(v, (int, str, bool)) or v is None}
        return problem(exc.status, exc.message, errors=errors, **extra)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if not wants_problem() and app.extensions.get("pos_loyalty_html_errors"):
            return app.extensions["pos_loyalty_html_errors"](exc)
        status = exc.code or 500
        data = getattr(exc, "data", None) or {}
        if status in (400, 422) and "messages" in data:
            errors = _flatten(data["messages"])
            first = errors[0] if errors else {"field": "body", "message": "invalid"}
            return problem(422, f"{first['field']}: {first['message']}", errors=errors)
        return problem(status, exc.description or TITLES.get(status, "Error"))

    @app.errorhandler(RecursionError)
    def _too_deep(exc: RecursionError):
        return problem(400, "the JSON body is nested too deeply")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # pragma: no cover - a bug; logged with its traceback
        log.exception("unexpected error on %s %s", request.method, request.path)
        if not wants_problem() and app.extensions.get("pos_loyalty_html_errors"):
            return app.extensions["pos_loyalty_html_errors"](InternalServerError())
        return problem(500, "something went wrong on our side; the request changed nothing")
