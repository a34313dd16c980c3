"""The manager panel and the cashier screen, rendered on the server."""
from __future__ import annotations

from flask import Flask


def register_web(app: Flask) -> None:
    """Wire the panel and the cashier screen into the app (filled in by the panel work)."""
