"""When a till says a sale happened: a till's clock may run a little ahead of the shop's, but a sale
dated tomorrow-and-then-some, before 2000, or at the end of the calendar is a till whose clock is
wrong. It is refused (422 naming ``occurred_at``) and nothing is written: no points are earned
under the wrong date's rules, and no date is too late to be given an expiry date."""
from __future__ import annotations

import datetime as dt

import pytest

from pos_loyalty.services import transactions as tx_svc
from tests.support.factories import adjust, enrol, line, return_of, sale

UTC = dt.timezone.utc


def balance(api, card: str) -> int:
    return api.get(f"/cards/{card}").get_json()["balance"]


def refused_for_its_date(response) -> dict:
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    problem = response.get_json()
    assert [e["field"] for e in problem["errors"]] == ["occurred_at"]
    assert "is the till's clock set?" in problem["detail"]
    return problem


def test_a_till_clock_up_to_a_day_ahead_of_the_shop_is_forgiven(api, clock):
    anna = enrol(api)
    for ahead in (dt.timedelta(minutes=3), dt.timedelta(hours=14), dt.timedelta(hours=24)):
        r = api.post("/transactions", json=sale(line("COF", 1000), card=anna["card"], at=clock.now + ahead))
        assert r.status_code == 201, r.get_json()
    assert balance(api, anna["card"]) == 30


@pytest.mark.parametrize(
    "occurred_at",
    [
        dt.datetime(2026, 6, 16, 12, 0, 1, tzinfo=UTC),  # a day and a second ahead of the shop's clock
        dt.datetime(2030, 1, 1, tzinfo=UTC),
        dt.datetime(9999, 12, 30, 12, 0, tzinfo=UTC),  # its expiry date would be past the end of the calendar
        dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
        dt.datetime(1990, 6, 15, tzinfo=UTC),
        dt.datetime(1970, 1, 1, tzinfo=UTC),  # a till whose clock was never set
    ],
    ids=["a day and a second ahead", "2030", "end of 9999", "just before 2000", "1990", "1970"],
)
@pytest.mark.parametrize("with_card", [True, False], ids=["card", "anonymous"])
def test_a_sale_dated_in_the_future_or_before_2000_is_refused_and_earns_nothing(api, occurred_at, with_card):
    anna = enrol(api)
    adjust(api, anna["id"], 10)
    body = sale(line("COF", 1000), card=anna["card"] if with_card else None, at=occurred_at)
    refused_for_its_date(api.post("/transactions", json=body))
    assert api.get(f"/transactions/{body['id']}").status_code == 404
    assert balance(api, anna["card"]) == 10
    assert len(api.get(f"/customers/{anna['id']}/ledger").get_json()) == 1


def test_the_date_is_judged_as_an_instant_whatever_time_zone_the_till_writes(api, clock):
    anna = enrol(api)
    tomorrow_evening_in_auckland = dt.datetime(2026, 6, 16, 20, 0, tzinfo=dt.timezone(dt.timedelta(hours=12)))  # 08:00 UTC
    assert api.post("/transactions", json=sale(line("COF", 1000), card=anna["card"], at=tomorrow_evening_in_auckland)).status_code == 201
    two_days_on_in_berlin = dt.datetime(2026, 6, 17, 13, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # 11:00 UTC, 47 h ahead
    refused_for_its_date(api.post("/transactions", json=sale(line("COF", 1000), card=anna["card"], at=two_days_on_in_berlin)))


def test_a_refused_date_is_answered_the_same_off_flask_and_through_flask(app, api):
    anna = enrol(api)
    body = sale(line("COF", 1000), card=anna["card"], at=dt.datetime(2031, 1, 1, tzinfo=UTC))
    ours = api.post("/transactions", json=body)
    routes = app.wsgi_app
    app.wsgi_app = routes.flask
    try:
        theirs = api.post("/transactions", json=body)
    finally:
        app.wsgi_app = routes
    assert (ours.status_code, ours.get_data()) == (theirs.status_code, theirs.get_data())
    refused_for_its_date(ours)


def test_a_shop_clock_at_the_end_of_the_calendar_refuses_rather_than_fails(api, clock):
    anna = enrol(api)
    clock.now = dt.datetime(9999, 12, 30, 12, 0, tzinfo=UTC)
    refused_for_its_date(api.post("/transactions", json=sale(line("COF", 1000), card=anna["card"], at=clock.now)))


def test_a_return_dated_in_the_future_or_before_2000_is_refused_and_takes_nothing_back(api):
    anna = enrol(api)
    bought = api.post("/transactions", json=sale(line("COF", 1000), card=anna["card"])).get_json()
    for when in (dt.datetime(2026, 6, 20, tzinfo=UTC), dt.datetime(1999, 1, 1, tzinfo=UTC), dt.datetime(9999, 12, 31, tzinfo=UTC)):
        body = return_of(("COF", 1), at=when)
        refused_for_its_date(api.post(f"/transactions/{bought['id']}/returns", json=body))
        assert api.get(f"/transactions/{body['id']}").status_code == 404
    assert balance(api, anna["card"]) == 10
    assert api.get(f"/transactions/{bought['id']}").get_json()["returns"] == []


def test_a_sale_dated_ahead_of_the_shop_s_clock_cannot_be_claimed(api, clock):
    """The shop's clock was put back after the sale (or the sale was stored before dates were
    checked): the claim would date the points from a day that has not come."""
    bought = api.post("/transactions", json=sale(line("COF", 1000))).get_json()  # 15 June 2026, 12:00
    anna = enrol(api)
    clock.now = dt.datetime(2026, 6, 10, tzinfo=UTC)
    refused_for_its_date(api.post(f"/transactions/{bought['id']}/claim", json={"card_number": anna["card"]}))
    assert api.get(f"/transactions/{bought['id']}").get_json()["customer"] is None
    assert balance(api, anna["card"]) == 0
    clock.now = dt.datetime(2026, 6, 15, 13, 0, tzinfo=UTC)
    assert api.post(f"/transactions/{bought['id']}/claim", json={"card_number": anna["card"]}).status_code == 200


def test_an_anonymous_sale_stored_at_the_end_of_the_calendar_is_refused_when_claimed_not_a_500(api, monkeypatch):
    with monkeypatch.context() as before_the_rule:  # stored by a version that checked no dates
        before_the_rule.setattr(tx_svc, "check_occurred_at", lambda *args, **kwargs: None)
        bought = api.post("/transactions", json=sale(line("COF", 1000), at=dt.datetime(9999, 12, 30, 12, 0, tzinfo=UTC)))
        assert bought.status_code == 201
    anna = enrol(api)
    refused_for_its_date(api.post(f"/transactions/{bought.get_json()['id']}/claim", json={"card_number": anna["card"]}))
    assert balance(api, anna["card"]) == 0


def test_the_api_document_tells_the_till_s_developers_which_dates_are_refused(app):
    """A till vendor reading /api/v1/openapi.json learns the bounds before a sale is refused."""
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    described = {name: schema["properties"]["occurred_at"].get("description", "")
                 for name, schema in schemas.items() if "occurred_at" in schema.get("properties", {}) and name in ("Sale", "Return")}
    assert set(described) == {"Sale", "Return"}
    for text in described.values():
        assert "before 2000-01-01" in text and "24 hours ahead of the shop's clock" in text
