"""Signing in, what each role may see, and the manager's users and audit pages, in a real browser."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from pos_loyalty.services.access import add_user
from pos_loyalty.services.customers import enrol_customer
from pos_loyalty.services.points import adjust_points
from tests.browser.screens import screenshot, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def staff(shop):
    add_user(shop, "anna", "anna-password", "cashier")
    add_user(shop, "mia", "mia-password", "manager")


def test_a_cashier_cannot_reach_the_manager_pages(page, staff):
    sign_in(page, "anna", "anna-password")
    expect(page.get_by_role("link", name="Manager panel")).to_have_count(0)
    for path in ("/panel/", "/panel/audit", "/panel/users"):
        response = page.goto(path)
        assert response.status == 403
        expect(page.get_by_role("heading", level=1)).to_have_text("Not for this login")
        expect(page.locator("main")).to_contain_text("You are signed in as anna (cashier)")
    screenshot(page, "forbidden")
    page.get_by_role("link", name="Back to the cashier screen").click()
    expect(page.get_by_label("Card", exact=True)).to_be_visible()


def test_five_wrong_passwords_lock_the_login_and_say_until_when(page, staff):
    for attempt in range(4):
        sign_in(page, "anna", f"wrong-guess-{attempt}")
        expect(page.locator("#sign-in-error")).to_contain_text("The username or password is wrong")
    expect(page.locator("#sign-in-error")).to_contain_text("1 more try before this login is locked")
    sign_in(page, "anna", "wrong-guess-4")
    expect(page.locator("#sign-in-error")).to_contain_text("Login locked")
    expect(page.locator("#sign-in-error")).to_contain_text("locked until 14:15 (15 minutes); a manager can unlock it sooner")
    screenshot(page, "sign-in-locked")

    sign_in(page, "anna", "anna-password")  # even the right password waits until the lock ends
    expect(page.locator("#sign-in-error")).to_contain_text("Login locked")
    expect(page).to_have_url(re.compile(r"/sign-in$"))


def test_a_manager_adds_a_cashier_and_reads_who_changed_what_in_the_audit_log(page, staff, shop):
    customer = enrol_customer(shop, {"name": "Anna Schmidt"}, actor="anna")
    adjust_points(shop, customer["id"], 25, reason="waited too long", user="anna", role="cashier")
    sign_in(page, "mia", "mia-password")
    expect(page.get_by_role("heading", name="Manager panel")).to_be_visible()
    for section in ("Programme", "Rewards", "Customers", "Reports", "Devices", "Users", "Audit"):
        expect(page.get_by_label("Manager panel").get_by_text(section, exact=True)).to_be_visible()
    screenshot(page, "manager-panel")

    page.get_by_label("Manager panel").get_by_role("link", name="Users").click()
    page.get_by_label("Username").fill("ben")
    page.get_by_label("Password", exact=True).fill("ben-password")
    page.get_by_label("Password again").fill("ben-pasword")
    page.get_by_role("button", name="Add user").click()
    expect(page.locator("#user-repeated-error")).to_contain_text("The two passwords differ")
    expect(page.locator("#users")).not_to_contain_text("ben")

    page.get_by_label("Password", exact=True).fill("ben-password")
    page.get_by_label("Password again").fill("ben-password")
    page.get_by_role("button", name="Add user").click()
    expect(page.locator(".flash-success")).to_contain_text("ben can now sign in as cashier")
    expect(page.locator("#users")).to_contain_text("ben")
    screenshot(page, "users")

    page.get_by_label("Manager panel").get_by_role("link", name="Audit").click()
    log = page.locator("#audit-log")
    newest = log.locator("tbody tr").first
    expect(newest).to_contain_text("mia")
    expect(newest).to_contain_text("user.add")
    expect(newest).to_contain_text("ben")
    adjustment = log.locator("tbody tr", has_text="points.adjust")
    expect(adjustment).to_contain_text("anna")
    expect(adjustment).to_contain_text("waited too long")
    expect(adjustment.locator("td").nth(4)).to_contain_text(re.compile(r"balance\s*0"))  # before
    expect(adjustment.locator("td").nth(5)).to_contain_text(re.compile(r"balance\s*25"))  # after
    screenshot(page, "audit-log")
