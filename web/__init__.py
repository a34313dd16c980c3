"""The manager panel and the cashier screen, rendered on the server.

``register_web(app)`` wires in: staff sign-in and roles (``web.auth``), CSRF protection on every
form (the till's bearer-token API under ``/api/v1`` is exempt), the cashier screen
(``web.cashier``), the manager panel's own pages (``web.panel``), HTML error pages for everything
outside ``/api``, and the serial scanner when ``scanner_url`` is set.

Manager pages added later go under ``/panel/``: every path there is for managers only (checked
in ``web.auth``, whatever blueprint serves it), and the navigation in ``web.nav`` lists them.
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Callable

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from pos_loyalty.scanning import CounterScanner, ScanHub, start_counter_scanner

csrf = CSRFProtect()
SESSION_LIFETIME = dt.timedelta(hours=12)  # one long shift


@dataclass
class WebState:
    """What the screens share: the scan hub, the serial scanner (if any), and how to pause."""

    hub: ScanHub
    scanner: CounterScanner | None = None
    scanner_url: str = ""
    pause: Callable[[float], None] = field(default=time.sleep)  # tests record instead of sleeping

    def stop(self) -> None:
        """Stop the scanner and end every open scan stream, so the server's threads are free to stop."""
        if self.scanner is not None:
            self.scanner.stop()  # also run at exit if nobody stops it sooner
        self.hub.close()


def register_web(app: Flask) -> None:
    """Wire the panel and the cashier screen into the app."""
    from . import auth, cashier, errors, formatting, manager, panel

    services = app.extensions["pos_loyalty"]
    settings = services.settings
    app.config.update(
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        WTF_CSRF_TIME_LIMIT=None,  # a token lives as long as the session: the screen stays open all shift
    )
    csrf.init_app(app)
    if "till" in app.blueprints:
        csrf.exempt(app.blueprints["till"])

    state = WebState(hub=ScanHub(max_subscribers=max(1, settings.threads // 2)), scanner_url=settings.scanner_url)
    app.extensions["pos_loyalty_web"] = state

    auth.init_app(app)
    errors.init_app(app)
    formatting.init_app(app)
    for blueprint in (auth.bp, cashier.bp, panel.bp, *manager.blueprints):
        app.register_blueprint(blueprint)

    state.scanner = start_counter_scanner(services.shop, state.hub, settings.scanner_url, baudrate=settings.scanner_baudrate)
