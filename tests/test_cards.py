"""Loyalty cards: the numbers we issue and accept, several cards on one account, and a lost card."""
from __future__ import annotations

import pytest

from pos_loyalty.domain.cards import check_card_number, ean13_check_digit, is_valid_ean13, new_card_number
from tests.support.factories import adjust, enrol, line, sale


def test_the_ean13_check_digit_is_the_one_on_real_barcodes():
    assert ean13_check_digit("400638133393") == "1"  # a published EAN-13: 4006381333931
    assert is_valid_ean13("4006381333931")
    assert not is_valid_ean13("4006381333932")


def test_issued_numbers_are_in_store_ean13s_with_the_shops_prefix():
    for prefix in [str(p) for p in range(20, 30)]:
        for _ in range(50):
            number = new_card_number(prefix)
            assert len(number) == 13 and number.isdigit() and number.startswith(prefix)
            assert is_valid_ean13(number)


def test_which_card_numbers_are_accepted_from_elsewhere():
    assert check_card_number("4006381333931").kind == "ean13"
    assert check_card_number("OLD-CARD/00017").kind == "code128"
    assert check_card_number("X" * 32).ok
    assert not check_card_number("X" * 33).ok
    assert check_card_number("4006381333932").problem == "the EAN-13 check digit is wrong"
    assert not check_card_number("with space").ok
    assert not check_card_number("Café").ok  # Code 128 prints only ASCII


@pytest.fixture
def settings_overrides():
    return {"card_prefix": "23"}


def test_a_new_customer_gets_a_card_in_the_configured_range(api):
    anna = enrol(api)
    assert anna["card"].startswith("23") and is_valid_ean13(anna["card"])
    assert api.get(f"/cards/{anna['card']}").get_json()["customer"]["id"] == anna["id"]


def test_a_card_the_customer_already_has_is_kept_and_a_wrong_check_digit_refused(api):
    old_card = enrol(api, "Anna", card_number="4006381333931")
    assert old_card["card"] == "4006381333931"
    code128 = enrol(api, "Bernd", card_number="KUNDE-00017")
    assert api.get("/cards/KUNDE-00017").get_json()["customer"]["id"] == code128["id"]

    r = api.post("/customers", json={"name": "Carla", "card_number": "4006381333932"})
    assert r.status_code == 422
    assert r.get_json()["errors"] == [{"field": "card_number", "message": "the EAN-13 check digit is wrong"}]
    assert api.get("/customers?q=Carla").get_json() == []


def test_one_account_can_hold_several_cards_and_each_finds_it(api):
    anna = enrol(api)
    adjust(api, anna["id"], 30)
    r = api.post(f"/customers/{anna['id']}/cards", json={})
    assert r.status_code == 201, r.get_json()
    second = r.get_json()["number"]
    r = api.post(f"/customers/{anna['id']}/cards", json={"card_number": "KEYRING-4711"})
    assert r.status_code == 201
    for card in (anna["card"], second, "KEYRING-4711"):
        scan = api.get(f"/cards/{card}").get_json()
        assert scan["customer"]["id"] == anna["id"] and scan["balance"] == 30
    assert len(api.get(f"/customers/{anna['id']}").get_json()["cards"]) == 3

    r = api.post(f"/customers/{anna['id']}/cards", json={"card_number": second})
    assert r.status_code == 409 and r.get_json()["errors"][0]["field"] == "card_number"
    r = api.post(f"/customers/{anna['id']}/cards", json={"card_number": "2712345678900"})
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "card_number"
    assert api.post("/customers/999999/cards", json={}).status_code == 404


def test_a_lost_card_is_blocked_and_the_new_card_keeps_the_account_and_its_points(api, shop):
    anna = enrol(api)
    api.post("/transactions", json=sale(line("COF", 4000), card=anna["card"]))  # 40 points
    lost = anna["card"]

    r = api.post(f"/cards/{lost}/block", json={"user": "maria", "reason": "lost at the bus stop"})
    assert r.status_code == 200 and r.get_json()["status"] == "blocked"

    scan = api.get(f"/cards/{lost}")
    assert scan.status_code == 409
    assert "blocked" in scan.get_json()["detail"] and "new card" in scan.get_json()["detail"]
    assert scan.get_json()["customer_id"] == anna["id"]
    refused = api.post("/transactions", json=sale(line("COF", 1000), card=lost))
    assert refused.status_code == 409 and "blocked" in refused.get_json()["detail"]

    new = api.post(f"/customers/{anna['id']}/cards", json={}).get_json()["number"]
    assert api.get(f"/cards/{lost}").get_json()["detail"].endswith("ask for the customer's new card")
    scan = api.get(f"/cards/{new}").get_json()
    assert scan["customer"]["id"] == anna["id"] and scan["balance"] == 40
    assert {c["number"]: c["status"] for c in scan["customer"]["cards"]} == {lost: "blocked", new: "active"}
    assert api.post("/transactions", json=sale(line("COF", 1000), card=new)).get_json()["points"]["balance_after"] == 50

    again = api.post(f"/cards/{lost}/block", json={"user": "maria"})
    assert again.status_code == 409 and "already blocked" in again.get_json()["detail"]
    assert api.post("/cards/2799999999997/block", json={"user": "maria"}).status_code == 404
    with shop.uow(read_only=True) as uow:
        blocks = [(a.actor, a.after) for a in uow.audit.recent() if a.action == "card.block"]
    assert blocks == [("maria", {"status": "blocked", "reason": "lost at the bus stop"})]


def test_an_unknown_card_is_not_found(api):
    r = api.get("/cards/2700000000007")
    assert r.status_code == 404
    assert r.get_json()["errors"][0]["field"] == "card_number"
