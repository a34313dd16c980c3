"""The application factory: a short list of steps, each wiring one part of the service."""
from __future__ import annotations

import atexit
import http
import logging
import threading
from dataclasses import dataclass
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from flask import Flask, abort, request
from flask.json.provider import DefaultJSONProvider
from flask_smorest import Api
from sqlalchemy import text
from werkzeug.routing import IntegerConverter

from . import __version__, jsoncodec
from .config import Settings, ensure_data_dir, load_settings
from .persistence.db import Database, connect
from .persistence.revision import current_revision, head_revision
from .persistence.uow import uow_factory
from .services.context import Shop

MAX_BODY_BYTES = 512 * 1024


@dataclass
class Services:
    """What the views, the CLI and the background jobs share: settings, database, shop context."""

    settings: Settings
    db: Database
    shop: Shop
    printer: Any = None  # PrintQueue when a receipt printer is configured

    @property
    def receipt_options(self):
        from .services.receipts import ReceiptOptions

        return ReceiptOptions(columns=self.settings.printer_columns, feedback_url=self.settings.feedback_url or None)

    def health(self) -> tuple[dict[str, Any], bool]:
        database = {"url": self.settings.masked_database_url, "reachable": False}
        schema = {"revision": None, "head": head_revision()}
        try:
            with self.db.reader.connect() as conn:
                conn.execute(text("SELECT 1"))
            database["reachable"] = True
            schema["revision"] = current_revision(self.db.reader)
        except Exception as exc:  # the point of a health check is to say so, not to fail
            database["error"] = type(exc).__name__
        schema["current"] = schema["revision"] == schema["head"]
        ok = database["reachable"] and schema["current"]
        body = {"status": "ok" if ok else "degraded", "version": __version__, "database": database, "schema": schema}
        if self.settings.printer_url:
            from drivers.printer import printer_status

            body["printer"] = printer_status(self.settings.printer_url, profile=self.settings.printer_profile, timeout=1.0)
        return body, ok

    def start_devices(self) -> None:
        """Start the print queue's worker when a receipt printer is configured."""
        if self.settings.printer_url and self.printer is None:
            from .printing import PrintQueue

            self.printer = PrintQueue(
                self.shop, self.settings.printer_url, profile=self.settings.printer_profile, options=self.receipt_options,
                station=self.settings.station,
            )
            self.printer.start()

    def stop_devices(self) -> None:
        if self.printer is not None:
            self.printer.stop()
            self.printer = None


def build_services(settings: Settings) -> Services:
    db = connect(settings.effective_database_url, sqlite_synchronous=settings.sqlite_synchronous)
    shop = Shop(
        uow=None,  # type: ignore[arg-type]  (set just below, with the shop's clock)
        timezone=ZoneInfo(settings.timezone),
        currency=settings.currency,
        locale=settings.locale,
        card_prefix=settings.card_prefix,
        shop_name=settings.shop_name,
    )
    shop.uow = uow_factory(db, now=shop.now)
    return Services(settings=settings, db=db, shop=shop)


def create_app(config: Settings | Mapping[str, Any] | None = None) -> Flask:
    settings = config if isinstance(config, Settings) else load_settings(config)
    settings = ensure_data_dir(settings)
    app = Flask(__name__)
    configure(app, settings)
    services = app.extensions["pos_loyalty"] = build_services(settings)
    services.start_devices()
    atexit.register(services.stop_devices)
    register_api(app)
    register_web(app)
    register_errors(app)
    from .api.counter import CounterRoutes

    app.wsgi_app = CounterRoutes(app, app.wsgi_app, MAX_BODY_BYTES)  # the checkout and card lookup, off Flask's path
    return app


def refuse_nul_characters():
    """A NUL character is never part of a card, a name or a note; PostgreSQL cannot store one.
    Refused here for paths, queries and forms; JSON bodies are checked by the schemas (422)."""
    if "\x00" in request.path:
        abort(404)
    if any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)):
        abort(422, "a query parameter contains a NUL character")
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        if any("\x00" in k or "\x00" in v for k, v in request.form.items(multi=True)):
            abort(400, "a form field contains a NUL character")


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, written and read by orjson (``jsoncodec``): the same values out (dates as HTTP
    dates, decimals and UUIDs as text, dataclasses as objects), keys in the order given, text as
    UTF-8. An indented dump (debug mode) or other ``json`` options go to the standard library."""

    sort_keys = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if not kwargs or kwargs == {"separators": (",", ":")}:
            return jsoncodec.dumps(obj, default=self.default, sort_keys=self.sort_keys)
        return super().dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return super().loads(s, **kwargs) if kwargs else jsoncodec.loads(s)


class BoundedInt(IntegerConverter):
    """``<int:id>`` up to the largest 64-bit integer: a longer number is a 404, not a database error."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)


def configure(app: Flask, settings: Settings) -> None:
    app.json = JSONProvider(app)
    app.url_map.converters["int"] = BoundedInt
    app.before_request(refuse_nul_characters)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        TESTING=settings.testing,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        API_TITLE="pos-loyalty till API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
    )
    logging.getLogger("pos_loyalty").setLevel(settings.log_level.upper())


def register_api(app: Flask) -> None:
    from .api.docs import api_docs
    from .api.till import blp

    from flask_smorest.spec import prepare_response

    from .api.errors import PROBLEM
    from .api.schemas import Problem

    class TillApi(Api):
        """Documents every error as what it is: ``application/problem+json``.

        The views are written into the OpenAPI document when it is first read (``/api/v1/docs``,
        ``openapi.json``), not at start-up: the till's first request does not wait for it.
        """

        ERROR_SCHEMA = Problem

        def __init__(self, *args, **kwargs):
            self._undocumented: list[tuple[Any, str, Any]] = []
            self._documenting = threading.RLock()
            super().__init__(*args, **kwargs)

        @property
        def spec(self):
            with self._documenting:
                while self._undocumented:
                    blp, name, parameters = self._undocumented.pop(0)
                    blp.register_views_in_doc(self, self._app, self._spec, name=name, parameters=parameters)
                    self._spec.tag({"name": name, "description": blp.description})
                return self._spec

        @spec.setter
        def spec(self, value):
            self._spec = value

        def register_blueprint(self, blp, *, parameters=None, **options):
            name = options.get("name", blp.name)
            self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
            self._app.register_blueprint(blp, **options)
            self._undocumented.append((blp, name, parameters))

        def _register_responses(self):
            for status in http.HTTPStatus:
                response = {"description": status.phrase}
                if status >= 400:
                    response["schema"] = self.ERROR_SCHEMA
                    prepare_response(response, self.spec, PROBLEM)
                else:
                    prepare_response(response, self.spec, self.DEFAULT_RESPONSE_CONTENT_TYPE)
                self.spec.components.response(status.name, response, lazy=True)
            response = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
            prepare_response(response, self.spec, PROBLEM)
            self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

    api = TillApi(app, spec_kwargs={"info": {"description": "Called by the till's sales software at checkout."}})
    api.spec.components.security_scheme("tillToken", {"type": "http", "scheme": "bearer"})
    api.spec.options["security"] = [{"tillToken": []}]
    api.register_blueprint(blp)
    app.register_blueprint(api_docs)


def register_web(app: Flask) -> None:
    from web import register_web as register

    register(app)


def register_errors(app: Flask) -> None:
    from .api.errors import register_error_handlers

    register_error_handlers(app)
