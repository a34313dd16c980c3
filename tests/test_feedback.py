"""Visit ratings: tied to the visit, a poor one opens a follow-up the cashier sees until it is resolved."""
from __future__ import annotations

import datetime as dt

from tests.support.factories import enrol, line, return_of, sale


def visit(api, customer: dict | None = None, id: str | None = None) -> dict:
    r = api.post("/transactions", json=sale(line("COF", 300), card=customer["card"] if customer else None, id=id))
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def rate(api, **body):
    return api.post("/feedback", json=body)


def follow_ups(api, customer: dict) -> list[dict]:
    return api.get(f"/cards/{customer['card']}").get_json()["open_follow_ups"]


def test_a_good_rating_is_recorded_and_opens_nothing(api):
    anna = enrol(api)
    tx = visit(api, anna)
    r = rate(api, transaction_id=tx["id"], satisfaction=5, recommend=9, comment="  lovely cake  ")
    assert r.status_code == 201
    body = r.get_json()
    assert body == {"id": body["id"], "transaction_id": tx["id"], "satisfaction": 5, "recommend": 9,
                    "comment": "lovely cake", "complaint": False, "follow_up_id": None}
    assert follow_ups(api, anna) == []


def test_the_visit_code_on_the_receipt_names_the_visit(api):
    anna = enrol(api)
    tx = visit(api, anna)
    r = rate(api, visit_code=tx["visit_code"].lower(), recommend=10)
    assert r.status_code == 201
    assert r.get_json()["transaction_id"] == tx["id"]


def test_a_poor_rating_opens_a_follow_up_the_cashier_sees_until_someone_resolves_it(api, shop, clock):
    anna = enrol(api)
    tx = visit(api, anna)
    opened = rate(api, visit_code=tx["visit_code"], satisfaction=2, comment="rude at the till").get_json()
    assert opened["follow_up_id"] is not None
    [shown] = follow_ups(api, anna)
    assert shown["id"] == opened["follow_up_id"]
    assert shown["reason"] == "satisfaction 2/5: rude at the till"
    visit(api, anna)  # still there on the next visit
    assert [f["id"] for f in follow_ups(api, anna)] == [opened["follow_up_id"]]

    clock.advance(hours=3)
    r = api.post(f"/follow-ups/{opened['follow_up_id']}/resolve", json={"user": "maria", "resolution": "called her and apologised"})
    assert r.status_code == 200
    assert r.get_json() == {"id": opened["follow_up_id"], "resolved_at": clock.now.isoformat(), "resolved_by": "maria",
                            "resolution": "called her and apologised"}
    assert follow_ups(api, anna) == []
    with shop.uow(read_only=True) as uow:
        actions = [(a.actor, a.action, a.entity_id) for a in uow.audit.recent()]
    assert ("maria", "follow_up.resolve", str(opened["follow_up_id"])) in actions

    again = api.post(f"/follow-ups/{opened['follow_up_id']}/resolve", json={"user": "maria", "resolution": "twice"})
    assert again.status_code == 409


def test_unlikely_to_recommend_or_a_complaint_opens_a_follow_up_too(api):
    anna = enrol(api)
    first, second, third = visit(api, anna), visit(api, anna), visit(api, anna)
    assert rate(api, transaction_id=first["id"], recommend=4).get_json()["follow_up_id"] is not None
    assert rate(api, transaction_id=second["id"], satisfaction=4, complaint=True, comment="bread was stale").get_json()["follow_up_id"] is not None
    assert rate(api, transaction_id=third["id"], satisfaction=3, recommend=5).get_json()["follow_up_id"] is None
    reasons = [f["reason"] for f in follow_ups(api, anna)]
    assert reasons == ["would recommend 4/10", "complaint: bread was stale"]


def test_a_visit_is_rated_once(api):
    anna = enrol(api)
    tx = visit(api, anna)
    assert rate(api, transaction_id=tx["id"], satisfaction=1).status_code == 201
    r = rate(api, visit_code=tx["visit_code"], satisfaction=5)
    assert r.status_code == 409
    assert r.content_type == "application/problem+json"
    assert len(follow_ups(api, anna)) == 1


def test_scores_out_of_range_are_refused_naming_the_field(api):
    anna = enrol(api)
    tx = visit(api, anna)
    for body, field in [
        ({"satisfaction": 0}, "satisfaction"),
        ({"satisfaction": 6}, "satisfaction"),
        ({"satisfaction": 4.5}, "satisfaction"),
        ({"recommend": 11}, "recommend"),
        ({"recommend": -1}, "recommend"),
        ({"recommend": "10"}, "recommend"),
        ({}, "satisfaction"),  # nothing said at all
        ({"comment": "   "}, "satisfaction"),
    ]:
        r = rate(api, transaction_id=tx["id"], **body)
        assert r.status_code == 422, (body, r.get_json())
        assert field in {e["field"] for e in r.get_json()["errors"]}, (body, r.get_json())
    assert rate(api, transaction_id=tx["id"], satisfaction=5).status_code == 201  # nothing was stored before


def test_an_unknown_visit_or_none_named_is_refused(api):
    assert rate(api, transaction_id="NO-SUCH-SALE", satisfaction=5).status_code == 404
    r = rate(api, visit_code="ZZZZZZZZ", satisfaction=5)
    assert r.status_code == 404 and r.get_json()["errors"][0]["field"] == "visit_code"
    r = rate(api, satisfaction=5)
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "transaction_id"


def test_a_return_is_not_a_visit_to_rate(api):
    anna = enrol(api)
    visit(api, anna, id="S-1")
    ret = api.post("/transactions/S-1/returns", json=return_of(("COF", 1), at=dt.datetime(2026, 6, 15, 13, tzinfo=dt.timezone.utc)))
    assert rate(api, transaction_id=ret.get_json()["id"], satisfaction=1).status_code == 404


def test_resolving_needs_who_and_how_and_an_existing_follow_up(api):
    anna = enrol(api)
    follow_up = rate(api, transaction_id=visit(api, anna)["id"], satisfaction=1).get_json()["follow_up_id"]
    r = api.post(f"/follow-ups/{follow_up}/resolve", json={"resolution": "called back"})
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "user"
    r = api.post(f"/follow-ups/{follow_up}/resolve", json={"user": "maria", "resolution": "  "})
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "resolution"
    assert api.post("/follow-ups/999999/resolve", json={"user": "maria", "resolution": "x"}).status_code == 404
    assert len(follow_ups(api, anna)) == 1


def test_an_anonymous_visit_can_be_rated_too(api):
    tx = visit(api)
    r = rate(api, visit_code=tx["visit_code"], satisfaction=1, comment="queue too long")
    assert r.status_code == 201 and r.get_json()["follow_up_id"] is not None
