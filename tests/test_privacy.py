"""Privacy requests: a customer may see everything we hold about them, and have it erased.

Erasure is tested the hard way: the customer's details are planted as unmistakable "canary"
values through the till's API, and after the erasure every text and JSON column of every table
is read back through the app's own engine; no canary may appear anywhere, while the points
ledger and the takings add up exactly as before.
"""
from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import JSON, String, Text, func, select

from pos_loyalty.domain.errors import Conflict, InvalidInput, NotFound
from pos_loyalty.persistence import models as m
from pos_loyalty.persistence.models import Base
from pos_loyalty.services.feedback import record_feedback, resolve_follow_up
from pos_loyalty.services.privacy import erase_customer, export_customer
from pos_loyalty.services.reports import points_outstanding, visit_ratings
from tests.support.factories import adjust, enrol, line, return_of, reward, sale

BERLIN = ZoneInfo("Europe/Berlin")

CANARY = {
    "name": "Quentin Zyxwvut-Canary",
    "preferred_name": "Quenzy",
    "new_preferred_name": "Quentinchen",
    "email": "quentin.zyxwvut@canary.example",
    "phone": "+49 30 9876 5432",
    "allergy": "canary-sesame-allergy",
    "service_note": "canary: face him when speaking",
    "staff_note": "canary staff note: prefers the blue door",
    "new_staff_note": "canary note two: asks for Greta",
    "comment": "canary comment about the cold croissant",
    "claimed_comment": "canary remark left before the card was shown",
    "resolution": "canary resolution: rang Quentin Zyxwvut-Canary back",
    "goodwill": "canary goodwill: waited twenty minutes at the deli counter",
}


def at(year: int, month: int, day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=BERLIN)


def buy(api, clock, card: str | None, *lines, when: dt.datetime, rewards=None) -> dict:
    clock.now = when
    r = api.post("/transactions", json=sale(*(lines or [line("TV", 4000, category="electronics")]), card=card, at=when, rewards=rewards))
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def quentins_history(api, shop, clock) -> dict:
    """Half a year of a regular customer, told through the till's API, planting the canaries."""
    coffee = reward(shop, "Free coffee", points_cost=30)
    clock.now = at(2026, 1, 5)
    quentin = enrol(
        api, CANARY["name"], preferred_name=CANARY["preferred_name"], email=CANARY["email"], phone=CANARY["phone"],
        birthday="1981-07-14", language="de", marketing_consent=True, staff_notes=CANARY["staff_note"],
        preferences={"allergies": [CANARY["allergy"]], "service_notes": CANARY["service_note"], "packaging": "no plastic bag"},
    )
    ben = enrol(api, "Ben Bystander", email="ben@example.com", staff_notes="Ben's own note")
    first = buy(api, clock, quentin["card"], when=at(2026, 1, 10))
    buy(api, clock, ben["card"], when=at(2026, 1, 11))
    clock.now = at(2026, 2, 2)
    r = api.patch(f"/customers/{quentin['id']}", json={"preferred_name": CANARY["new_preferred_name"], "staff_notes": CANARY["new_staff_note"]})
    assert r.status_code == 200, r.get_json()
    poor = buy(api, clock, quentin["card"], line("COF", 250, category="drinks"), when=at(2026, 2, 14), rewards=[coffee["id"]])
    opened = record_feedback(shop, transaction_id=poor["id"], satisfaction=1, comment=CANARY["comment"])
    clock.now = at(2026, 2, 16)
    resolve_follow_up(shop, opened["follow_up_id"], user="maria", resolution=CANARY["resolution"])
    second = buy(api, clock, quentin["card"], when=at(2026, 3, 3))
    clock.now = at(2026, 3, 4)
    r = api.post(f"/transactions/{second['id']}/returns", json=return_of(("TV", 1), at=clock.now))
    assert r.status_code == 201, r.get_json()
    clock.now = at(2026, 3, 20)
    r = api.post(f"/cards/{quentin['card']}/block", json={"reason": "lost on the tram", "user": "maria"})
    assert r.status_code == 200, r.get_json()
    new_card = api.post(f"/customers/{quentin['id']}/cards", json={}).get_json()["number"]
    anonymous = buy(api, clock, None, when=at(2026, 4, 8))
    record_feedback(shop, transaction_id=anonymous["id"], satisfaction=2, comment=CANARY["claimed_comment"])  # opens a follow-up
    r = api.post(f"/transactions/{anonymous['id']}/claim", json={"card_number": new_card})
    assert r.status_code == 200, r.get_json()
    adjust(api, quentin["id"], 15, reason=CANARY["goodwill"])  # staff's words about him, in the append-only ledger
    adjust(api, ben["id"], 5, reason="goodwill: Ben's receipt was misprinted")
    adjust(api, ben["id"], 7, reason=f"points moved from his brother's card, {CANARY['email']}")  # quoting Quentin
    clock.now = at(2026, 4, 9)
    with shop.uow() as uow:  # another part of the shop quoting his email in its own audit entry
        uow.audit.record("maria", "newsletter.bounce", "newsletter", "2026-04", None, {"address": CANARY["email"], "count": 1})
        uow.commit()
    buy(api, clock, new_card, when=at(2026, 5, 2))
    clock.now = at(2026, 6, 15)
    return {"quentin": quentin, "ben": ben, "cards": [quentin["card"], new_card], "first_sale": first["id"]}


def text_everywhere(app) -> list[tuple[str, str, str]]:
    """(table, column, text) for every text and JSON value in every table, read through the app's engine."""
    found = []
    with app.extensions["pos_loyalty"].db.writer.connect() as conn:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, (String, Text, JSON))]
            if not columns:
                continue
            for row in conn.execute(select(*columns)):
                for column, value in zip(columns, row):
                    if value is None:
                        continue
                    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                    found.append((table.name, column.name, text))
    return found


def figures(app, customer_id: int) -> dict[str, int]:
    with app.extensions["pos_loyalty"].db.writer.connect() as conn:
        def one(stmt):
            return int(conn.execute(stmt).scalar() or 0)
        return {
            "ledger_points": one(select(func.sum(m.LedgerEntry.points)).where(m.LedgerEntry.customer_id == customer_id)),
            "ledger_entries": one(select(func.count()).select_from(m.LedgerEntry)),
            "all_ledger_points": one(select(func.sum(m.LedgerEntry.points))),
            "balance": one(select(m.Customer.balance).where(m.Customer.id == customer_id)),
            "sales_total": one(select(func.sum(m.Transaction.total))),
            "their_sales_total": one(select(func.sum(m.Transaction.total)).where(m.Transaction.customer_id == customer_id)),
            "transactions": one(select(func.count()).select_from(m.Transaction)),
            "lines_paid": one(select(func.sum(m.TransactionLine.paid))),
            "redeemed": one(select(func.sum(m.Redemption.points))),
        }


def canaries(story: dict) -> dict[str, str]:
    return {**CANARY, "phone": "+493098765432", "old_card": story["cards"][0], "new_card": story["cards"][1]}


def test_an_export_holds_everything_we_keep_about_the_customer_and_is_audited(api, shop, clock):
    story = quentins_history(api, shop, clock)
    quentin = story["quentin"]
    clock.now = at(2026, 6, 20, 10)
    document = export_customer(shop, quentin["id"], actor="maria")
    json.dumps(document)  # one JSON document, nothing that needs a custom encoder

    profile = document["customer"]
    assert (profile["name"], profile["email"], profile["phone"]) == (CANARY["name"], CANARY["email"], "+493098765432")
    assert profile["preferred_name"] == CANARY["new_preferred_name"] and profile["staff_notes"] == CANARY["new_staff_note"]
    assert profile["preferences"]["allergies"] == [CANARY["allergy"]] and profile["birthday"] == "1981-07-14"
    assert [(c["number"], c["status"]) for c in document["cards"]] == [(story["cards"][0], "blocked"), (story["cards"][1], "active")]
    assert [t["kind"] for t in document["transactions"]] == ["sale", "sale", "sale", "return", "sale", "sale"]
    assert document["transactions"][0]["lines"][0]["sku"] == "TV"
    assert document["transactions"][1]["rewards"][0]["name"] == "Free coffee"
    assert sum(e["points"] for e in document["ledger"]) == profile["balance"] == api.get(f"/cards/{story['cards'][1]}").get_json()["balance"]
    assert {f["comment"] for f in document["feedback"]} == {CANARY["comment"], CANARY["claimed_comment"]}  # the claimed sale's too
    assert [f["resolution"] for f in document["follow_ups"]] == [CANARY["resolution"], None]
    assert {p["sku"] for p in document["products"]} == {"TV", "COF"}
    actions = [a["action"] for a in document["audit"]]
    assert {"customer.enrol", "customer.update", "card.block", "card.issue", "points.adjust", "follow_up.resolve"} <= set(actions)
    assert "Ben Bystander" not in json.dumps(document)

    with shop.uow(read_only=True) as uow:
        last = uow.audit.recent(1)[0]
        assert (last.actor, last.action, last.entity, last.entity_id) == ("maria", "customer.export", "customer", str(quentin["id"]))
        assert last.before is None and last.after is None  # who exported whom and when; nothing of the data itself


def test_erasure_leaves_no_trace_of_the_person_but_the_points_and_takings_add_up(app, api, shop, clock):
    story = quentins_history(api, shop, clock)
    quentin, ben = story["quentin"], story["ben"]
    planted = canaries(story)
    before = figures(app, quentin["id"])
    everywhere = text_everywhere(app)
    for key in ("name", "email", "allergy", "staff_note", "comment", "claimed_comment", "resolution", "old_card", "goodwill"):
        assert any(planted[key].lower() in text.lower() for _, _, text in everywhere), key  # planted, and seen by the dump

    clock.now = at(2026, 6, 20, 10)
    summary = erase_customer(shop, quentin["id"], actor="maria", reason=f"asked in store; {CANARY['name']} showed ID")
    assert summary["balance"] == before["balance"]
    assert summary["cards_removed"] == 2

    leaks = [
        (table, column, key)
        for table, column, text in text_everywhere(app)
        for key, value in planted.items()
        if value.lower() in text.lower()
    ]
    assert leaks == []
    assert figures(app, quentin["id"]) == before

    names = {text for table, column, text in text_everywhere(app) if (table, column) == ("customers", "name")}
    assert names == {f"Erased customer #{quentin['id']}", "Ben Bystander"}
    with shop.uow(read_only=True) as uow:  # the ledger's points stay; only the staff's words about him went
        reasons = {(e.customer_id, e.cause, e.points, e.reason) for e in uow.privacy.ledger(quentin["id"]) + uow.privacy.ledger(ben["id"])}
    assert (quentin["id"], "adjustment", 15, "[erased]") in reasons and (ben["id"], "adjustment", 5, "goodwill: Ben's receipt was misprinted") in reasons
    assert (ben["id"], "adjustment", 7, "[erased]") in reasons  # Ben's entry quoted Quentin's email
    assert ("Free coffee" in {r for *_, r in reasons}) and summary["ledger_reasons_scrubbed"] == 2
    assert api.get(f"/customers/{ben['id']}").get_json()["staff_notes"] == "Ben's own note"  # nobody else touched

    with shop.uow(read_only=True) as uow:
        entry = uow.audit.recent(1)[0]
        assert (entry.actor, entry.action, entry.entity_id) == ("maria", "customer.erase", str(quentin["id"]))
        assert entry.after["reason"] == "asked in store; [erased] showed ID"
        bounce = next(a for a in uow.audit.recent(50) if a.action == "newsletter.bounce")
        assert bounce.after == {"address": "[erased]", "count": 1}  # only the quoted address went


def test_after_erasure_the_old_cards_the_search_and_the_till_know_nobody(api, shop, clock):
    story = quentins_history(api, shop, clock)
    quentin = story["quentin"]
    held = points_outstanding(shop)["points"]
    assert visit_ratings(shop, "2026-01-01", "2026-07-01")["open_follow_ups"]["count"] == 1  # the claimed sale's rating
    erase_customer(shop, quentin["id"], actor="maria", reason="customer's written request")

    for card in story["cards"]:
        r = api.get(f"/cards/{card}")
        assert r.status_code == 404, card
        assert r.content_type == "application/problem+json"
        assert f"no customer has the card {card}" in r.get_json()["detail"]
        refused = api.post("/transactions", json=sale(line("COF", 300), card=card, at=clock.now))
        assert refused.status_code == 404 and refused.get_json()["errors"][0]["field"] == "card_number"
    for q in (CANARY["name"], "Quentin", CANARY["email"], CANARY["phone"], "030 98765432", story["cards"][1], "Erased"):
        assert api.get("/customers", query_string={"q": q}).get_json() == [], q

    profile = api.get(f"/customers/{quentin['id']}").get_json()
    assert profile["erased"] is True and profile["name"] == f"Erased customer #{quentin['id']}"
    assert (profile["email"], profile["phone"], profile["birthday"], profile["preferences"], profile["cards"]) == (None, None, None, {}, [])
    assert api.patch(f"/customers/{quentin['id']}", json={"name": "Quentin"}).status_code == 409
    assert api.get(f"/transactions/{story['first_sale']}").get_json()["customer"]["name"] == f"Erased customer #{quentin['id']}"
    assert points_outstanding(shop)["points"] == held  # the ledger keeps the points, anonymised
    assert visit_ratings(shop, "2026-01-01", "2026-07-01")["open_follow_ups"]["count"] == 0  # nobody left to follow up

    with pytest.raises(Conflict):
        erase_customer(shop, quentin["id"], actor="maria", reason="again")
    document = export_customer(shop, quentin["id"], actor="maria")
    assert document["customer"]["erased_at"] is not None and document["cards"] == []

    rejoined = api.post("/customers", json={"name": "Quentin Again", "card_number": story["cards"][1]})
    assert rejoined.status_code == 201  # the card he kept in his wallet can start afresh, with nothing of the old account


def test_a_privacy_request_names_a_known_customer_who_asks_and_why(api, shop, clock):
    anna = enrol(api, "Anna Schmidt")
    with pytest.raises(NotFound):
        erase_customer(shop, 999_999, actor="maria", reason="asked")
    with pytest.raises(NotFound):
        export_customer(shop, 999_999, actor="maria")
    for actor, reason, field in [("maria", "  ", "reason"), ("", "asked", "actor"), ("maria", "x" * 501, "reason")]:
        with pytest.raises(InvalidInput) as caught:
            erase_customer(shop, anna["id"], actor=actor, reason=reason)
        assert caught.value.field == field
    with pytest.raises(InvalidInput) as caught:
        export_customer(shop, anna["id"], actor=" ")
    assert caught.value.field == "actor"
    assert api.get(f"/cards/{anna['card']}").get_json()["customer"]["name"] == "Anna Schmidt"  # nothing changed
