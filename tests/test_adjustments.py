"""Goodwill points: granted with a reason and by someone, within what their role allows, audited."""
from __future__ import annotations

import pytest

from pos_loyalty.domain.errors import Conflict, Forbidden, InvalidInput
from pos_loyalty.services.points import adjust_points
from tests.support.factories import enrol, programme


def post_adjustment(api, customer_id: int, points, reason="coffee was cold", user="anna"):
    return api.post(f"/customers/{customer_id}/adjustments", json={"points": points, "reason": reason, "user": user})


def balance(api, customer: dict) -> int:
    return api.get(f"/cards/{customer['card']}").get_json()["balance"]


def entries(api, customer: dict) -> list[dict]:
    return api.get(f"/customers/{customer['id']}/ledger").get_json()


def audit(shop) -> list:
    with shop.uow(read_only=True) as uow:
        return [(a.actor, a.action, a.entity_id, a.before, a.after) for a in uow.audit.recent()]


def test_a_cashier_grants_goodwill_points_with_a_reason_and_it_is_audited(api, shop):
    anna = enrol(api)
    r = post_adjustment(api, anna["id"], 50, reason="  waited twenty minutes  ", user="maria")
    assert r.status_code == 201
    assert r.get_json() == {"entry_id": r.get_json()["entry_id"], "points": 50, "balance_before": 0, "balance_after": 50}
    assert balance(api, anna) == 50
    [entry] = entries(api, anna)
    assert (entry["kind"], entry["cause"], entry["user"], entry["reason"]) == ("adjust", "adjustment", "maria", "waited twenty minutes")
    assert entry["expires_at"] is not None  # goodwill points expire like any others
    assert ("maria", "points.adjust", str(anna["id"]), {"balance": 0},
            {"balance": 50, "points": 50, "reason": "waited twenty minutes", "role": "cashier"}) in audit(shop)


def test_a_cashier_cannot_go_beyond_the_goodwill_limit_and_nothing_is_written(api, shop):
    programme(shop, cashier_goodwill_limit=30)
    anna = enrol(api)
    assert post_adjustment(api, anna["id"], 30).status_code == 201
    r = post_adjustment(api, anna["id"], 31)
    assert r.status_code == 403
    assert r.content_type == "application/problem+json"
    assert r.get_json()["errors"][0]["field"] == "points"
    assert "at most 30" in r.get_json()["detail"]
    assert balance(api, anna) == 30 and len(entries(api, anna)) == 1


def test_a_cashier_cannot_take_points_away(api):
    anna = enrol(api)
    post_adjustment(api, anna["id"], 40)
    r = post_adjustment(api, anna["id"], -10, reason="given by mistake")
    assert r.status_code == 403
    assert "only a manager" in r.get_json()["detail"]
    assert balance(api, anna) == 40 and len(entries(api, anna)) == 1


BAD_ADJUSTMENTS = [
    ({"points": 10, "user": "anna"}, "reason"),
    ({"points": 10, "reason": "", "user": "anna"}, "reason"),
    ({"points": 10, "reason": "   ", "user": "anna"}, "reason"),
    ({"points": 10, "reason": "cold coffee"}, "user"),
    ({"points": "10", "reason": "cold coffee", "user": "anna"}, "points"),
    ({"points": 2.5, "reason": "cold coffee", "user": "anna"}, "points"),
    ({"points": True, "reason": "cold coffee", "user": "anna"}, "points"),
    ({"points": 0, "reason": "cold coffee", "user": "anna"}, "points"),
]


def test_an_adjustment_needs_whole_points_a_reason_and_who_gave_them(api):
    anna = enrol(api)
    for body, field in BAD_ADJUSTMENTS:
        r = api.post(f"/customers/{anna['id']}/adjustments", json=body)
        assert r.status_code == 422, (body, r.get_json())
        assert field in {e["field"] for e in r.get_json()["errors"]}, (body, r.get_json())
    assert balance(api, anna) == 0 and entries(api, anna) == []


def test_adjusting_an_unknown_customer_is_404(api):
    r = post_adjustment(api, 999999, 10)
    assert r.status_code == 404
    assert r.get_json()["errors"][0]["field"] == "customer_id"


def test_a_manager_corrects_a_balance_downwards_within_the_manager_limit(api, shop):
    programme(shop, manager_goodwill_limit=500)
    anna = enrol(api)
    adjust_points(shop, anna["id"], 400, reason="points from the old card", user="maria", role="manager")
    result = adjust_points(shop, anna["id"], -150, reason="old card counted twice", user="maria", role="manager")
    assert (result["balance_before"], result["balance_after"]) == (400, 250)
    assert balance(api, anna) == 250
    assert entries(api, anna)[0]["expires_at"] is None  # a deduction opens no lot
    with pytest.raises(Forbidden):
        adjust_points(shop, anna["id"], -501, reason="too much", user="maria", role="manager")
    with pytest.raises(Forbidden):
        adjust_points(shop, anna["id"], 501, reason="too much", user="maria", role="manager")
    assert balance(api, anna) == 250
    assert [a[1] for a in audit(shop)].count("points.adjust") == 2


def test_a_correction_never_takes_more_than_the_customer_holds(api, shop):
    anna = enrol(api)
    adjust_points(shop, anna["id"], 40, reason="welcome back", user="maria", role="manager")
    with pytest.raises(Conflict) as refused:
        adjust_points(shop, anna["id"], -41, reason="correction", user="maria", role="manager")
    assert refused.value.field == "points" and "holds 40 points" in refused.value.message
    assert balance(api, anna) == 40


def test_an_unknown_role_is_refused(shop, api):
    anna = enrol(api)
    with pytest.raises(InvalidInput) as refused:
        adjust_points(shop, anna["id"], 5, reason="x", user="maria", role="owner")
    assert refused.value.field == "role"
