"""The manager panel's navigation: one list, in the order the header shows it.

Sections not built yet stay in the list, shown greyed out as "coming soon" until some page is
served at their path; a panel page added under one of these paths appears in the navigation
without touching this file. Every path under ``/panel/`` is for managers only (see ``web.auth``).
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect


@dataclass(frozen=True)
class Section:
    label: str
    path: str
    about: str


PANEL_SECTIONS = (
    Section("Programme", "/panel/programme", "How points are earned, tiers, bonuses and expiry"),  # panel work: not built yet
    Section("Rewards", "/panel/rewards", "What customers can spend their points on"),  # panel work: not built yet
    Section("Customers", "/panel/customers", "Profiles, preferences, history, goodwill and privacy requests"),  # panel work: not built yet
    Section("Reports", "/panel/reports", "Points outstanding, earn and spend, ratings and follow-ups"),  # panel work: not built yet
    Section("Devices", "/panel/devices", "Tills, the receipt printer and the scanner"),  # panel work: not built yet
    Section("Users", "/panel/users", "Staff logins: add, unlock, disable"),
    Section("Audit", "/panel/audit", "Who changed what, and when"),
)


def is_served(app: Flask, path: str) -> bool:
    adapter = app.url_map.bind("localhost")
    try:
        adapter.match(path, method="GET")
    except RequestRedirect:  # served with a trailing slash
        return True
    except (NotFound, MethodNotAllowed):
        return False
    return True


def panel_nav(app: Flask, current_path: str) -> list[dict]:
    return [
        {
            "label": s.label,
            "path": s.path,
            "about": s.about,
            "ready": is_served(app, s.path),
            "active": current_path == s.path or current_path.startswith(s.path + "/"),
        }
        for s in PANEL_SECTIONS
    ]
