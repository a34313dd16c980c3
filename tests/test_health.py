"""GET /api/v1/health: what a supervisor or the till's software checks before trusting the service."""
from __future__ import annotations

import pytest

from pos_loyalty import __version__
from pos_loyalty.app import create_app
from pos_loyalty.persistence.migrate import head_revision


def test_health_reports_the_version_a_reachable_database_and_the_current_schema(app):
    r = app.test_client().get("/api/v1/health")  # no till token needed
    assert r.status_code == 200
    body = r.get_json()
    assert body["status"] == "ok"
    assert body["version"] == __version__
    assert body["database"]["reachable"] is True
    assert body["schema"] == {"revision": head_revision(), "head": head_revision(), "current": True}


@pytest.fixture
def till_app(tmp_path):
    made = []

    def make(database_url: str):
        app = create_app({"data_dir": tmp_path / "data", "database_url": database_url, "testing": True})
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["pos_loyalty"].db.dispose()


def test_a_database_that_was_never_initialised_is_reported_as_degraded(till_app, tmp_path):
    r = till_app(f"sqlite:///{tmp_path / 'fresh.db'}").test_client().get("/api/v1/health")
    assert r.status_code == 503
    body = r.get_json()
    assert body["status"] == "degraded"
    assert body["database"]["reachable"] is True
    assert body["schema"] == {"revision": None, "head": head_revision(), "current": False}


def test_an_unreachable_database_is_reported_without_its_password(till_app):
    # Port 1 on this machine refuses connections at once.
    r = till_app("postgresql://till:s3cret@127.0.0.1:1/store").test_client().get("/api/v1/health")
    assert r.status_code == 503
    body = r.get_json()
    assert body["database"]["reachable"] is False
    assert body["database"]["url"] == "postgresql://till:***@127.0.0.1:1/store"
    assert body["schema"]["current"] is False
    assert "s3cret" not in r.get_data(as_text=True)
