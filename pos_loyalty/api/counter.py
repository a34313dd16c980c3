"""The two requests of every sale, answered without Flask's request machinery.

A checkout (``POST /api/v1/transactions``) and a card lookup (``GET /api/v1/cards/N``) are most of
what a till sends. Through Flask, flask-smorest and webargs (routing, the request and its
contexts, the before-request hooks, the view's decorators) they cost ~0.3 ms each, a sixth of a
checkout's CPU in the till's busiest process. ``CounterRoutes`` stands in front of Flask's WSGI
app and answers the usual, well-formed request of those two itself, with the same parts: the
till-token check (``access.till_of_token``, run as the use case's first read, in its own unit of
work; a sale's token not seen here before is checked on a read of its own first), the body
loaded by the same ``SaleSchema``, the same use case, and the answer made by the app's own JSON
provider (so the bytes and headers are Flask's).

Anything else goes to Flask, which answers exactly as it always did: any other path or method, a
query string, a missing or unknown token, a body that is not a JSON object the schema accepts,
and any error the use case raises (Flask runs it again and makes the problem+json of it: a use
case that failed changed nothing, so running it again is safe). A use case that succeeded is
never run twice. ``tests/test_counter_routes.py`` proves the answers are the same either way.
"""
from __future__ import annotations

import io
from typing import Any, Callable

from marshmallow import ValidationError

from .. import jsoncodec
from ..services import transactions as tx_svc
from ..services.access import TokenRefused, authenticate_till, hash_token
from ..services.summary import card_summary
from . import schemas as S
from .till import _CARD_SUMMARY_AS_IS as CARD_SUMMARY_AS_IS  # the views' own tests and schema
from .till import _TRANSACTION_AS_IS as TRANSACTION_AS_IS
from .till import SALE_SCHEMA, _sale_request

SALES = "/api/v1/transactions"
CARDS = "/api/v1/cards/"
KNOWN_TOKENS = 256  # tokens remembered as active (their hashes); a store has a handful of tills


class CounterRoutes:
    def __init__(self, app, flask_wsgi: Callable, max_body: int) -> None:
        self.app = app
        self.flask = flask_wsgi  # Flask's own WSGI app: everything not answered here
        self.services = app.extensions["pos_loyalty"]
        self.max_body = max_body
        self.answered = 0  # requests answered here (for tests and diagnostics; approximate under threads)
        self._active_tokens: set[str] = set()  # hashes of tokens an active till held when last seen here

    def __call__(self, environ: dict[str, Any], start_response):
        method = environ.get("REQUEST_METHOD")
        path = environ.get("PATH_INFO", "")
        response = None
        if not environ.get("QUERY_STRING") and not self.app.debug:  # (debug mode: Flask's indented JSON)
            if method == "POST" and path == SALES:
                response = self._sale(environ)
            elif method == "GET" and path.startswith(CARDS):
                response = self._card(environ, path[len(CARDS):])
        if response is None:
            return self.flask(environ, start_response)
        self.answered += 1
        status, body = response
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    # -- the two routes --

    def _sale(self, environ):
        token = _bearer(environ)
        if token is None:
            return None
        body = self._json_body(environ)
        if type(body) is not dict:
            return None
        try:
            data = SALE_SCHEMA.load(body)
        except ValidationError:
            return None
        if not self._seen_active(token):
            return None
        try:
            answer = tx_svc.record_sale(self.services.shop, _sale_request(data), till_token=token)
        except TokenRefused:  # revoked since: forgotten here, and Flask answers 401
            self._active_tokens.discard(hash_token(token))
            return None
        except Exception:  # nothing was written (a LoyaltyError, a fault): Flask runs it again and answers
            return None
        printer = self.services.printer
        if printer is not None and not answer.get("replayed"):
            printer.submit(answer["id"])
        return self._json(answer, "201 CREATED", TRANSACTION_AS_IS, S.TransactionOut)

    def _card(self, environ, number: str):
        if not number or "/" in number or not number.isascii() or not number.isprintable():
            return None
        token = _bearer(environ)
        if token is None:
            return None
        try:
            answer = card_summary(self.services.shop, number, till_token=token)
        except Exception:  # a refused token, an unknown or blocked card (a LoyaltyError), a fault: Flask answers it
            return None
        return self._json(answer, "200 OK", CARD_SUMMARY_AS_IS, S.CardSummaryOut)

    def _seen_active(self, token: str) -> bool:
        """Whether an active till held this token when it was last seen here; else it is checked
        now, on a read of its own. A sale checks its token as its first read (``record_sale``'s
        ``till_token``, so that revocation is immediate), but by then it holds SQLite's write lock
        or, on PostgreSQL, the customer's row: a token never seen, or refused since, must not take
        them from the tills, however many sales a wrongly set-up till or a stranger sends."""
        digest = hash_token(token)
        if digest in self._active_tokens:
            return True
        try:
            if authenticate_till(self.services.shop, token) is None:
                return False  # Flask answers 401
        except Exception:  # (a dropped connection, a busy database): Flask checks it again and answers
            return False
        if len(self._active_tokens) >= KNOWN_TOKENS:
            self._active_tokens.clear()
        self._active_tokens.add(digest)
        return True

    # -- the parts Flask would have done --

    def _json_body(self, environ) -> Any:
        """The body, parsed, if it is plainly JSON of an acceptable size; else None (and the body
        put back for Flask to read)."""
        mimetype = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
        length = environ.get("CONTENT_LENGTH", "")
        if mimetype != "application/json" or not length.isdigit() or not 0 < int(length) <= self.max_body:
            return None
        raw = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(raw)  # (for Flask, if it is to answer after all)
        if len(raw) != int(length) or raw.startswith(b"\xef\xbb\xbf"):
            return None
        try:
            return jsoncodec.loads(raw)
        except (ValueError, RecursionError):  # not JSON (or nested too deep): Flask says what is wrong
            return None

    def _json(self, answer: dict[str, Any], status: str, as_is, schema) -> tuple[str, bytes]:
        """The answer as the view's ``@blp.response`` sends it: as it is when the dump would change
        nothing, else dumped by the schema; the text the app's JSON provider makes of it, with the
        newline Flask's ``jsonify`` ends it with (and its two headers, above)."""
        body = answer if as_is(answer) else schema().dump(answer)
        return status, (self.app.json.dumps(body, separators=(",", ":")) + "\n").encode()


def _bearer(environ) -> str | None:
    """The bearer token, as ``api/till.py`` reads it; the use case checks it in its own unit of
    work (``access.till_of_token``), and a missing, malformed or refused one goes to Flask, which
    answers 401."""
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
