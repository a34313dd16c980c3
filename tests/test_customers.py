"""Customers as the shop looks after them: enrolling, finding, updating, and what the cashier sees
when a card is scanned."""
from __future__ import annotations

import datetime as dt
import unicodedata

from sqlalchemy import event

from pos_loyalty.domain.ledger import expiry_for, last_valid_day
from tests.support.factories import adjust, enrol, line, programme, return_of, reward, sale

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.timezone.utc)


def days_ago(n: int) -> dt.datetime:
    return NOW - dt.timedelta(days=n)


# -- enrolling -------------------------------------------------------------------------------------


def test_a_customer_is_enrolled_with_their_profile_and_greeted_by_the_name_they_prefer(api):
    r = api.post("/customers", json={
        "name": "Margarete Schmidt",
        "preferred_name": "Grete",
        "email": "  Grete.Schmidt@Example.DE ",
        "phone": "+49 (30) 123-456 78",
        "birthday": "1961-03-02",
        "language": "de",
        "marketing_consent": True,
        "preferences": {
            "allergies": ["peanuts", " sesame "],
            "dietary": ["vegetarian"],
            "sizes": {"shoe": "39"},
            "packaging": "no plastic bag",
            "contact_channel": "email",
            "service_notes": "hard of hearing, face her when speaking",
        },
        "staff_notes": "likes to chat about her garden",
    })
    assert r.status_code == 201, r.get_json()
    grete = r.get_json()
    assert grete["greeting_name"] == "Grete"
    assert grete["email"] == "grete.schmidt@example.de"
    assert grete["phone"] == "+493012345678"
    assert grete["birthday"] == "1961-03-02" and grete["language"] == "de" and grete["marketing_consent"] is True
    assert grete["preferences"]["allergies"] == ["peanuts", "sesame"]
    assert grete["preferences"]["packaging"] == "no plastic bag"
    assert grete["staff_notes"] == "likes to chat about her garden"
    assert grete["balance"] == 0
    assert [c["status"] for c in grete["cards"]] == ["active"]
    assert api.get(f"/customers/{grete['id']}").get_json() == grete


def test_a_name_is_all_a_customer_needs_and_they_are_greeted_by_their_first_name(api):
    tom = enrol(api, "Tom Baker")
    assert tom["greeting_name"] == "Tom"
    assert tom["email"] is None and tom["phone"] is None and tom["preferences"] == {}
    assert tom["marketing_consent"] is False


def test_bad_input_is_refused_naming_the_field_and_enrols_nobody(api):
    cases = [
        ({}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "Anna", "email": "anna-at-example.com"}, "email"),
        ({"name": "Anna", "phone": "call me"}, "phone"),
        ({"name": "Anna", "phone": "12"}, "phone"),
        ({"name": "Anna", "birthday": "2026-07-01"}, "birthday"),  # after the shop's today
        ({"name": "Anna", "birthday": "01.07.1990"}, "birthday"),
        ({"name": "Anna", "language": "German"}, "language"),
        ({"name": "Anna", "preferences": {"favourite_colour": "red"}}, "preferences.favourite_colour"),
        ({"name": "Anna", "preferences": {"allergies": "peanuts"}}, "preferences.allergies"),
        ({"name": "Anna", "preferences": {"contact_channel": "pigeon"}}, "preferences.contact_channel"),
        ({"name": "Anna", "card_number": "2712345678900"}, "card_number"),  # wrong check digit
        ({"name": "Anna", "card_number": "NO SPACES PLEASE"}, "card_number"),
        ({"name": "Anna", "marketing_consent": "maybe"}, "marketing_consent"),
    ]
    for body, field in cases:
        r = api.post("/customers", json=body)
        assert r.status_code == 422, (body, r.get_json())
        assert r.content_type == "application/problem+json"
        assert field in [e["field"] for e in r.get_json()["errors"]], (body, r.get_json())
    assert api.get("/customers?q=Anna").get_json() == []


def test_an_email_phone_or_card_already_in_use_is_a_conflict_naming_it(api):
    anna = enrol(api, "Anna Schmidt", email="anna@example.com", phone="030 1234567")
    for body, field in [
        ({"email": "ANNA@Example.com"}, "email"),
        ({"phone": "030/123 45 67"}, "phone"),
        ({"card_number": anna["card"]}, "card_number"),
    ]:
        r = api.post("/customers", json={"name": "Anna Other", **body})
        assert r.status_code == 409, r.get_json()
        problem = r.get_json()
        assert problem["errors"] == [{"field": field, "message": problem["detail"]}]
        assert "already" in problem["detail"]
    assert [c["id"] for c in api.get("/customers?q=anna").get_json()] == [anna["id"]]


# -- finding ---------------------------------------------------------------------------------------


def test_a_customer_is_found_by_card_phone_email_or_name(api):
    anna = enrol(api, "Anna Schmidt", email="anna@example.com", phone="+49 30 1234567", preferred_name="Nanni")
    enrol(api, "Bernd Schmidt")
    enrol(api, "Annabel Lee")

    def found(q):
        r = api.get("/customers", query_string={"q": q})
        assert r.status_code == 200, r.get_json()
        return [c["name"] for c in r.get_json()]

    assert found(anna["card"]) == ["Anna Schmidt"]
    assert found("+49 (30) 123 45 67") == ["Anna Schmidt"]
    assert found("0049 30 1234567") == ["Anna Schmidt"]
    assert found("ANNA@EXAMPLE.COM") == ["Anna Schmidt"]
    assert found("schmidt") == ["Anna Schmidt", "Bernd Schmidt"]
    assert found("ANNA") == ["Anna Schmidt", "Annabel Lee"]
    assert found("anna schm") == ["Anna Schmidt"]
    assert found("nanni") == ["Anna Schmidt"]
    assert found("50%_off") == []
    r = api.get("/customers", query_string={"q": "   "})
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "q"


def test_names_with_accents_are_found_whatever_the_case_and_keep_their_accents(api):
    enrol(api, "Zoë Ülker")
    enrol(api, unicodedata.normalize("NFD", "José Núñez"))  # typed with combining accents

    def found(q):
        return [c["name"] for c in api.get("/customers", query_string={"q": q}).get_json()]

    assert found("ülker") == ["Zoë Ülker"]
    assert found("ZOË") == ["Zoë Ülker"]
    assert found("josé") == ["José Núñez"]
    assert found(unicodedata.normalize("NFD", "NÚÑEZ")) == ["José Núñez"]
    assert found("jose") == []  # the accent is part of the name


def test_an_erased_customer_never_appears(api, shop, clock):
    anna = enrol(api, "Anna Schmidt", email="anna@example.com", phone="030 1234567")
    with shop.uow() as uow:  # what a privacy erasure leaves behind: the row, nothing personal
        row = uow.customers.get(anna["id"])
        row.erased_at = clock.now
        uow.commit()
    for q in (anna["card"], "anna@example.com", "030 1234567", "Anna"):
        assert api.get("/customers", query_string={"q": q}).get_json() == [], q
    assert api.get(f"/cards/{anna['card']}").status_code == 404
    r = api.patch(f"/customers/{anna['id']}", json={"name": "Anna"})
    assert r.status_code == 409


# -- changing a profile ----------------------------------------------------------------------------


def test_a_profile_change_touches_only_what_was_sent_and_is_audited(api, shop):
    anna = enrol(api, "Anna Schmidt", email="anna@example.com",
                 preferences={"allergies": ["peanuts"], "packaging": "paper bag"})
    r = api.patch(f"/customers/{anna['id']}", json={
        "preferred_name": "Anni",
        "preferences": {"packaging": "no bag at all", "dietary": ["vegan"]},
        "staff_notes": "regular on Saturdays",
    })
    assert r.status_code == 200, r.get_json()
    after = r.get_json()
    assert after["greeting_name"] == "Anni"
    assert after["email"] == "anna@example.com"
    assert after["preferences"] == {"allergies": ["peanuts"], "packaging": "no bag at all", "dietary": ["vegan"]}
    assert after["staff_notes"] == "regular on Saturdays"

    cleared = api.patch(f"/customers/{anna['id']}", json={"preferences": {"allergies": []}, "email": None}).get_json()
    assert "allergies" not in cleared["preferences"] and cleared["email"] is None

    with shop.uow(read_only=True) as uow:
        changes = [(a.actor, a.before, a.after) for a in reversed(uow.audit.recent()) if a.action == "customer.update"]
    assert len(changes) == 2
    actor, before, after = changes[0]
    assert actor == "till:till-1"
    assert before["preferences"]["packaging"] == "paper bag" and "preferred_name" in before
    assert after["preferred_name"] == "Anni" and after["preferences"]["packaging"] == "no bag at all"


def test_a_refused_profile_change_changes_nothing(api):
    enrol(api, "Bernd", phone="030 7654321")
    anna = enrol(api, "Anna Schmidt", preferences={"allergies": ["peanuts"]})
    for body, status, field in [
        ({"email": "not-an-email", "preferred_name": "Anni"}, 422, "email"),
        ({"phone": "(030) 765-4321", "preferred_name": "Anni"}, 409, "phone"),
        ({"preferences": {"sizes": {"shoe": 42}}}, 422, "preferences.sizes.shoe"),
        ({"name": ""}, 422, "name"),
    ]:
        r = api.patch(f"/customers/{anna['id']}", json=body)
        assert r.status_code == status, (body, r.get_json())
        assert r.get_json()["errors"][0]["field"].startswith(field.split(".")[0])
    assert api.get(f"/customers/{anna['id']}").get_json() == {k: v for k, v in anna.items() if k != "card"}
    assert api.patch("/customers/999999", json={"name": "Nobody"}).status_code == 404


# -- the scan --------------------------------------------------------------------------------------


def test_the_scan_shows_the_cashier_everything_about_a_regular(api, shop):
    programme(shop, tiers=[{"code": "member", "name": "Member", "min_spend": 0, "multiplier": "1"},
                           {"code": "silver", "name": "Silver", "min_spend": 5000, "multiplier": "1.25"}])
    reward(shop, "Free coffee", points_cost=20)
    reward(shop, "Slice of cake", points_cost=100, sku="CAKE")
    reward(shop, "Silver lounge", points_cost=5, kind="amount_off", amount=100, tiers=["silver"])
    anna = enrol(api, "Anna Schmidt", preferred_name="Anni", birthday="1988-06-17",
                 preferences={"allergies": ["peanuts"], "packaging": "no plastic bag",
                              "service_notes": "hard of hearing, face her when speaking"},
                 staff_notes="asks about oat milk")
    first = sale(line("COF", 400, 2), line("BRD", 300, category="bakery"), card=anna["card"], at=days_ago(10))
    api.post("/transactions", json=first)  # 11 points
    api.post("/transactions", json=sale(line("COF", 400), card=anna["card"], at=days_ago(5)))  # 4
    last = sale(line("COF", 400), line("MILK", 150, category="dairy"), card=anna["card"], at=days_ago(1))
    api.post("/transactions", json=last)  # 5
    r = api.post("/feedback", json={"transaction_id": last["id"], "satisfaction": 1, "comment": "the coffee was cold"})
    assert r.status_code == 201

    scan = api.get(f"/cards/{anna['card']}")
    assert scan.status_code == 200, scan.get_json()
    s = scan.get_json()
    assert s["greeting_name"] == "Anni"
    assert s["customer"]["name"] == "Anna Schmidt"
    assert s["card"]["masked"].endswith(anna["card"][-4:]) and s["card"]["status"] == "active"
    assert s["balance"] == 20
    assert s["tier"]["code"] == "member"
    assert s["tier"]["rolling_spend"] == 2050
    assert s["tier"]["next"] == {"code": "silver", "name": "Silver", "spend_needed": 2950}
    assert [rw["name"] for rw in s["rewards_redeemable"]] == ["Free coffee"]  # not the Silver-only one
    assert s["next_reward"]["name"] == "Slice of cake" and s["next_reward"]["points_needed"] == 80
    first_expiry = expiry_for(days_ago(10), 12, shop.timezone)
    assert s["next_expiry"] == {"points": 11, "date": last_valid_day(first_expiry, shop.timezone).isoformat(),
                                "expires_at": first_expiry.isoformat()}
    assert s["customer"]["preferences"]["allergies"] == ["peanuts"]
    assert s["customer"]["preferences"]["service_notes"] == "hard of hearing, face her when speaking"
    assert s["customer"]["staff_notes"] == "asks about oat milk"
    assert [(f["sku"], f["visits"]) for f in s["favourites"]] == [("COF", 3), ("BRD", 1), ("MILK", 1)]
    assert s["last_visit"] == days_ago(1).isoformat()
    assert s["birthday_week"] is True  # the 17th, two days from now
    assert [f["reason"] for f in s["open_follow_ups"]] == ["satisfaction 1/5: the coffee was cold"]


def test_a_newcomer_scans_with_nothing_to_show_yet(api, shop, clock):
    reward(shop, "Free coffee", points_cost=20)
    tom = enrol(api, "Tom Baker", birthday="1980-12-24")
    s = api.get(f"/cards/{tom['card']}").get_json()
    assert s["balance"] == 0 and s["rewards_redeemable"] == []
    assert s["next_reward"]["points_needed"] == 20
    assert s["next_expiry"] is None and s["last_visit"] is None
    assert s["favourites"] == [] and s["open_follow_ups"] == []
    assert s["birthday_week"] is False
    clock.now = dt.datetime(2026, 12, 22, 12, 0, tzinfo=dt.timezone.utc)
    assert api.get(f"/cards/{tom['card']}").get_json()["birthday_week"] is True


def test_favourites_follow_what_is_bought_and_returned(api):
    anna = enrol(api)
    tea = sale(line("TEA", 300, 2), line("COF", 250), card=anna["card"], at=days_ago(3))
    api.post("/transactions", json=tea)
    api.post("/transactions", json=sale(line("COF", 250), card=anna["card"], at=days_ago(2)))

    def favourites():
        return [(f["sku"], f["visits"]) for f in api.get(f"/cards/{anna['card']}").get_json()["favourites"]]

    assert favourites() == [("COF", 2), ("TEA", 1)]
    assert api.post(f"/transactions/{tea['id']}/returns", json=return_of(("TEA", 1))).status_code == 201
    assert favourites() == [("COF", 2), ("TEA", 1)]  # one tea kept: still bought on that visit
    assert api.post(f"/transactions/{tea['id']}/returns", json=return_of(("TEA", 1))).status_code == 201
    assert favourites() == [("COF", 2)]  # all the tea came back


def test_an_item_scanned_twice_in_one_visit_counts_as_one_visit(api):
    anna = enrol(api)
    twice = sale(line("COF", 250), line("TEA", 300), line("COF", 250), card=anna["card"], at=days_ago(3))
    api.post("/transactions", json=twice)
    api.post("/transactions", json=sale(line("TEA", 300), card=anna["card"], at=days_ago(2)))
    favourites = api.get(f"/cards/{anna['card']}").get_json()["favourites"]
    assert [(f["sku"], f["visits"]) for f in favourites] == [("TEA", 2), ("COF", 1)]
    api.post(f"/transactions/{twice['id']}/returns", json=return_of(("COF", 2)))
    favourites = api.get(f"/cards/{anna['card']}").get_json()["favourites"]
    assert [(f["sku"], f["visits"]) for f in favourites] == [("TEA", 2)]


def test_a_scan_reads_the_same_few_queries_however_long_the_history(api, app, shop):
    reward(shop, "Free coffee", points_cost=20)
    anna = enrol(api)
    engine = app.extensions["pos_loyalty"].db.reader
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    def queries_for_a_scan() -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            assert api.get(f"/cards/{anna['card']}").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len([s for s in statements if s.lstrip().upper().startswith("SELECT")])

    adjust(api, anna["id"], 50)
    api.post("/transactions", json=sale(line("COF", 400), card=anna["card"], at=days_ago(30)))
    short = queries_for_a_scan()
    for n in range(8):
        api.post("/transactions", json=sale(line(f"SKU{n}", 400), line("COF", 400), card=anna["card"], at=days_ago(29 - n)))
    assert queries_for_a_scan() == short
    assert short <= 11  # the till's token, the card, the customer and their cards, the programme,
    # rolling spend, ledger, rewards, last visit, favourites, follow-ups
