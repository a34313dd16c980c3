"""GET /api/v1/health: what a supervisor or the till's software checks before trusting the service."""
from __future__ import annotations

import pytest

from pos_loyalty import __version__
from pos_loyalty.app import create_app
from pos_loyalty.persistence.migrate import head_revision
from tests.support.escpos_capture import CapturePrinter, closed_port


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


class TestWithAReceiptPrinter:
    """The printer is reported beside the database; a printer fault never makes the service
    unhealthy (sales still go through and their receipts wait), it is there to be seen."""

    @pytest.fixture
    def shop_printer(self):
        with CapturePrinter() as shop_printer:
            yield shop_printer

    @pytest.fixture
    def settings_overrides(self, request):
        return {"printer_url": request.getfixturevalue("printer_url")}

    @pytest.fixture
    def printer_url(self, shop_printer):
        return shop_printer.url

    def test_a_printer_that_answers_is_online_with_paper(self, app, shop_printer):
        r = app.test_client().get("/api/v1/health")
        assert r.status_code == 200
        assert r.get_json()["printer"] == {"printer": shop_printer.url, "online": True, "paper": "ok", "error": None}

    @pytest.mark.parametrize("printer_url", [f"tcp://127.0.0.1:{closed_port()}"], ids=["switched-off"])
    def test_a_printer_that_refuses_the_connection_is_reported_offline_and_the_service_still_ok(self, app, printer_url):
        r = app.test_client().get("/api/v1/health")
        assert r.status_code == 200
        body = r.get_json()
        assert body["status"] == "ok"
        assert body["printer"]["printer"] == printer_url and body["printer"]["online"] is False
        assert "refused the connection" in body["printer"]["error"]


def test_without_a_printer_health_says_nothing_about_one(app):
    assert "printer" not in app.test_client().get("/api/v1/health").get_json()
