"""The cashier screen in a real browser: who is at the counter, and serving them."""
from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import expect

from pos_loyalty.services.access import add_user
from pos_loyalty.services.customers import enrol_customer, search_customers
from pos_loyalty.services.feedback import record_feedback
from pos_loyalty.services.points import adjust_points
from tests.browser.screens import screenshot, sign_in
from tests.conftest import NOW
from tests.support.factories import line, programme, reward, sale

pytestmark = pytest.mark.browser

ALLERGY_RED = "rgb(179, 38, 30)"


@pytest.fixture
def anna_at_the_till(shop):
    add_user(shop, "anna", "anna-password", "cashier")


@pytest.fixture
def annie(shop, api) -> dict:
    """A regular: allergic to peanuts, birthday this week, and a complaint from last time still open."""
    reward(shop, "Free coffee", points_cost=50)
    reward(shop, "5 euro off", kind="amount_off", amount=500, points_cost=500)
    customer = enrol_customer(shop, {
        "name": "Anna Schmidt",
        "preferred_name": "Annie",
        "birthday": "1990-06-17",
        "preferences": {
            "allergies": ["peanuts"],
            "packaging": "no plastic bag",
            "service_notes": "hard of hearing, face them when speaking",
        },
        "staff_notes": "Brings her own cup",
    })
    card = customer["cards"][0]["number"]
    visits = []
    for days_ago in (9, 2):
        body = sale(line("LAT", 350, description="Oat latte"), line("CRO", 250, category="bakery", description="Butter croissant"),
                    card=card, at=NOW - dt.timedelta(days=days_ago))
        visits.append(api.post("/transactions", json=body).get_json()["id"])
    adjust_points(shop, customer["id"], 60, reason="welcome back", user="mia", role="manager")
    record_feedback(shop, transaction_id=visits[-1], satisfaction=1, comment="waited twenty minutes")
    return {**customer, "card": card}


@pytest.fixture
def bob(shop) -> dict:
    customer = enrol_customer(shop, {"name": "Bob Berg"})
    return {**customer, "card": customer["cards"][0]["number"]}


def test_a_wedge_scan_shows_who_is_at_the_counter_with_allergies_standing_out(page, shop, anna_at_the_till, annie, bob):
    # Regulars are those who spent 10 euro in the year: Annie's two visits came to 12, so she is one.
    programme(shop, tiers=[{"code": "member", "name": "Member", "min_spend": 0, "multiplier": "1"},
                           {"code": "regular", "name": "Regular", "min_spend": 1000, "multiplier": "1.5"}])
    page.goto("/sign-in")
    screenshot(page, "sign-in")
    sign_in(page, "anna", "anna-password")
    expect(page.get_by_label("Card", exact=True)).to_be_focused()

    page.keyboard.type(annie["card"], delay=5)  # a keyboard-wedge scanner: the digits in a burst, then Enter
    page.keyboard.press("Enter")

    expect(page.locator("#greeting")).to_have_text("Annie")
    allergy = page.locator("#allergies")
    expect(allergy).to_contain_text("peanuts")
    expect(allergy).to_have_css("background-color", ALLERGY_RED)
    expect(page.locator("#balance")).to_contain_text("72")  # 2 × 6 points for the visits, 60 welcome back
    expect(page.locator("#tier .tier-name")).to_have_text("Regular")
    expect(page.locator("#tier")).to_contain_text("×1.5 points")
    expect(page.locator("#rewards")).to_contain_text("Free coffee")
    expect(page.locator("#rewards")).to_contain_text("428 more points for 5 euro off")
    expect(page.locator("#favourites")).to_contain_text("Oat latte")
    expect(page.locator("#keep-in-mind")).to_contain_text("hard of hearing, face them when speaking")
    expect(page.locator("#keep-in-mind")).to_contain_text("no plastic bag")
    expect(page.locator("#keep-in-mind .staff-notes")).to_have_text("Brings her own cup")
    expect(page.locator("#birthday")).to_contain_text("Birthday this week")
    expect(page.locator(".alert-followup")).to_contain_text("waited twenty minutes")
    expect(page.locator("#visits")).to_contain_text("13 Jun 2026")
    expect(page.locator("#visits")).to_contain_text("points after")
    screenshot(page, "cashier-screen")

    # The next customer's card is scanned while the cashier is typing a reason: the scan still
    # finds them, and what the scanner typed into the reason field is taken out again.
    reason = page.get_by_label("Reason")
    reason.click()
    page.keyboard.type(bob["card"], delay=5)
    page.keyboard.press("Enter")
    expect(page.locator("#greeting")).to_have_text("Bob")
    expect(page.locator("#allergies")).to_have_count(0)
    expect(page.locator("#tier .tier-name")).to_have_text("Member")  # no purchases yet
    expect(page.locator(".staff-notes")).to_have_count(0)


def test_a_card_typed_by_hand_works_without_a_burst_and_an_unknown_card_says_so(page, anna_at_the_till, bob):
    sign_in(page, "anna", "anna-password")
    card = page.get_by_label("Card", exact=True)
    card.press_sequentially("2712345678905", delay=80)  # a person typing, slower than any scanner
    card.press("Enter")
    expect(page.locator("#card-problem")).to_contain_text("Unknown card")
    expect(page.locator("#card-problem")).to_contain_text("No customer has the card 2712345678905")
    page.goto(f"/cashier?card={bob['card']}")  # the plain form, as with JavaScript off
    expect(page.locator("#greeting")).to_have_text("Bob")


def test_goodwill_beyond_the_cashiers_limit_is_refused_and_saves_nothing(page, anna_at_the_till, annie, api):
    sign_in(page, "anna", "anna-password")
    page.goto(f"/cashier?card={annie['card']}")
    expect(page.locator("#balance")).to_contain_text("72")

    page.get_by_label("Points").fill("500")
    page.get_by_label("Reason").fill("the coffee machine was broken")
    page.get_by_role("button", name="Give points").click()

    expect(page.locator("#goodwill-points-error")).to_contain_text("A cashier can adjust at most 100 points at a time")
    expect(page.get_by_label("Points")).to_have_value("500")  # what was typed is kept to correct
    expect(page.get_by_label("Reason")).to_have_value("the coffee machine was broken")
    expect(page.locator("#balance")).to_contain_text("72")
    screenshot(page, "cashier-form-error")
    assert api.get(f"/cards/{annie['card']}").get_json()["balance"] == 72

    page.get_by_label("Points").fill("20")
    page.get_by_role("button", name="Give points").click()
    expect(page.locator(".flash-success")).to_contain_text("20 goodwill points given; the balance is now 92")
    expect(page.locator("#balance")).to_contain_text("92")


def test_a_cashier_enrols_a_new_customer_and_hands_over_a_card(page, anna_at_the_till, shop):
    sign_in(page, "anna", "anna-password")
    page.get_by_label("Full name").fill("Carla Diaz")
    page.get_by_label("Email").fill("carla@")  # a typo: refused, and nobody is enrolled
    page.get_by_label("Allergies").fill("gluten")
    page.get_by_role("button", name="Enrol and issue card").click()
    expect(page.locator("#enrol-email-error")).to_contain_text("This is not an email address")
    expect(page.get_by_label("Full name")).to_have_value("Carla Diaz")
    assert search_customers(shop, "Carla") == []

    page.get_by_label("Email").fill("carla@example.org")
    page.get_by_role("button", name="Enrol and issue card").click()
    expect(page.locator(".flash-success")).to_contain_text("Welcome, Carla! Hand over card 27")
    expect(page.locator("#greeting")).to_have_text("Carla")
    expect(page.locator("#allergies")).to_contain_text("gluten")


def test_a_poor_rating_opens_a_follow_up_the_cashier_sees_next_time(page, anna_at_the_till, bob, api):
    api.post("/transactions", json=sale(line("COF", 300), card=bob["card"], at=NOW))
    sign_in(page, "anna", "anna-password")
    page.goto(f"/cashier?card={bob['card']}")
    page.get_by_role("button", name="Record rating").click()  # no score given: refused
    expect(page.locator("#rating-satisfaction-error")).to_contain_text("Give a satisfaction score")

    page.locator("label[for=rating-satisfaction-2]").click()
    page.get_by_label("Comment").fill("the card reader failed twice")
    page.get_by_role("button", name="Record rating").click()
    expect(page.locator(".flash-warning")).to_contain_text("A follow-up is open")
    expect(page.locator(".alert-followup")).to_contain_text("the card reader failed twice")
