"""The store manager's panel in a real browser: running the programme, the rewards, a privacy
request, the reports and the till's devices."""
from __future__ import annotations

import queue
import re

import pytest
from playwright.sync_api import expect

from pos_loyalty.demo import build_demo_shop, programme_settings, reward_catalogue
from pos_loyalty.services.access import add_user
from pos_loyalty.services.programme import add_reward, get_programme, list_rewards, save_programme
from pos_loyalty.services.reports import visit_ratings
from tests.browser.screens import screenshot, sign_in
from tests.support.escpos_capture import closed_port
from tests.support.factories import line, sale

pytestmark = pytest.mark.browser


@pytest.fixture
def mia(shop):
    """The store manager."""
    add_user(shop, "mia", "mia-password", "manager")


@pytest.fixture
def delicatessen(shop):
    """The shop's programme as the manager set it up: multipliers, three tiers, bonuses, rewards."""
    today = shop.local_date()
    save_programme(shop, programme_settings(today, with_promotions=False), actor="mia")
    for fields in reward_catalogue(shop, today)[:4]:
        add_reward(shop, fields, actor="mia")


def panel_section(page, name: str) -> None:
    page.get_by_label("Manager panel").get_by_role("link", name=name, exact=True).click()


def test_a_manager_creates_a_promotion_and_a_reward(page, shop, mia, delicatessen):
    version_before = get_programme(shop).version_id
    sign_in(page, "mia", "mia-password")
    panel_section(page, "Programme")
    expect(page.locator("#current-version")).to_contain_text(f"version {version_before}")

    page.get_by_role("button", name="Add a promotion").click()
    promotion = page.locator("#promotion-0")
    promotion.get_by_label("Name").fill("Summer double points")
    promotion.get_by_label("Starts on").fill("2026-06-15")
    promotion.get_by_label("Ends on").fill("2026-08-31")
    promotion.get_by_label("Points multiplier").fill("2")
    promotion.get_by_label("Only these categories").fill("bakery")

    basket = page.locator("#sample-basket")
    basket.get_by_label("Item 2 unit price").fill("4.20")  # the bread, at the sourdough's price
    basket.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview")
    # Coffee 2 × 2.50 earns 5; bread 4.20 earns 4, doubled by the promotion: 8; tobacco earns nothing.
    expect(preview.locator("#preview-total")).to_have_text("13")
    expect(preview).to_contain_text("Running that day: Summer double points")
    expect(preview.locator("#preview-breakdown")).to_contain_text(re.compile(r"Promotion\s*4"))
    assert get_programme(shop).version_id == version_before  # the preview saved nothing
    screenshot(page, "manager-programme")

    page.get_by_role("button", name="Save as a new version").click()
    expect(page.locator(".flash-success")).to_contain_text(f"Saved as version {version_before + 1}")
    expect(page.locator("#versions tbody tr").first).to_contain_text("promotions")
    saved = get_programme(shop)
    assert [(p.name, str(p.multiplier), sorted(p.categories)) for p in saved.promotions] == [("Summer double points", "2", ["bakery"])]

    panel_section(page, "Rewards")
    add = page.locator("form.reward-form")
    add.get_by_label("Name").fill("Summer tote bag")
    add.get_by_text("A free item", exact=True).click()
    expect(add.locator("#reward-amount")).to_be_hidden()  # only the fields this kind uses
    add.get_by_label("Free product (SKU)").fill("BAG-TOTE")
    add.get_by_label("Costs (points)").fill("400")
    add.get_by_label("Valid until").fill("2026-08-31")
    add.get_by_text("Gold", exact=True).click()
    add.get_by_role("button", name="Add the reward").click()
    expect(page.locator(".flash-success")).to_contain_text("Summer tote bag is in the catalogue for 400 points")
    expect(page.locator("#rewards")).to_contain_text("a free BAG-TOTE · gold only")
    screenshot(page, "manager-rewards")
    [tote] = [r for r in list_rewards(shop) if r["name"] == "Summer tote bag"]
    assert (tote["kind"], tote["sku"], tote["points_cost"], tote["tiers"], tote["active"]) == ("free_item", "BAG-TOTE", 400, ["gold"], True)
    assert tote["valid_to"].isoformat() == "2026-08-31"


def test_a_bad_multiplier_is_shown_beside_its_field_and_nothing_is_saved(page, shop, mia, delicatessen):
    version_before = get_programme(shop).version_id
    sign_in(page, "mia", "mia-password")
    panel_section(page, "Programme")
    page.get_by_role("button", name="Add a category multiplier").click()
    page.get_by_label("Category 3", exact=True).fill("wine")
    page.get_by_label("Category 3 multiplier").fill("double")
    page.get_by_label("Welcome bonus (points)").fill("75")
    page.get_by_role("button", name="Save as a new version").click()

    field = page.get_by_label("Category 3 multiplier")
    expect(page.locator("#f-categories-2-multiplier-error")).to_have_text("'double' is not a number.")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_value("double")  # what was typed is kept, to correct
    expect(page.get_by_label("Welcome bonus (points)")).to_have_value("75")
    expect(page.locator(".form-error")).to_contain_text("Nothing was saved")
    assert get_programme(shop).version_id == version_before
    assert get_programme(shop).welcome_bonus == 50

    field.fill("1,5")
    page.get_by_role("button", name="Save as a new version").click()
    expect(page.locator(".flash-success")).to_contain_text("Saved as version")
    assert str(get_programme(shop).category_multipliers["wine"]) == "3/2"


def test_an_erased_customer_appears_nowhere_in_the_panel(page, shop):
    made = build_demo_shop(shop, customers=12, days=396)
    unhappy = next(f for f in visit_ratings(shop, "2026-01-01", "2026-06-16")["open_follow_ups"]["rows"] if f["customer_id"])
    name, customer_id = unhappy["customer_name"], unhappy["customer_id"]
    sign_in(page, "manager", made.logins["manager"])

    panel_section(page, "Reports")
    expect(page.locator("#report-earn svg")).to_be_visible()
    expect(page.locator("#table-follow-ups")).to_contain_text(name)
    screenshot(page, "manager-reports")

    page.get_by_label("Reports", exact=True).get_by_role("link", name="Customers to contact").click()
    lapsing = page.locator("#list-lapsing")
    expect(lapsing.locator("tbody tr").first).to_be_visible()
    screenshot(page, "manager-actions")
    with page.expect_download() as downloading:
        lapsing.get_by_role("link", name="Download CSV").click()
    csv_file = downloading.value
    assert csv_file.suggested_filename == "lapsing-2026-06-15.csv"
    rows = open(csv_file.path(), encoding="utf-8").read().splitlines()
    assert rows[0].startswith("customer_id,name,card_number,last_visit")
    page.goto("/panel/audit")
    newest = page.locator("#audit-log tbody tr").first
    expect(newest).to_contain_text("action_list.export")
    expect(newest.locator("dd").last).to_have_text(str(len(rows) - 1))  # how many rows: every customer in the file

    panel_section(page, "Customers")
    page.get_by_label("Find a customer").fill(name)
    page.get_by_role("button", name="Search").click()
    page.locator("#customer-list").get_by_role("link", name=name).click()
    expect(page.locator("#customer-heading")).to_have_text(name)
    expect(page.locator("#follow-ups")).to_contain_text("Open")
    expect(page.locator("#ledger")).to_contain_text("Earned · a purchase")
    screenshot(page, "manager-customer")

    page.get_by_role("link", name="Erase their data…").click()
    page.get_by_label("Why").fill("the customer asked in store")
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Erase {name}")
    screenshot(page, "manager-erase")
    page.get_by_role("button", name="Erase the personal data").click()
    expect(page.locator("#erase-confirm-error")).to_contain_text("Tick the box to confirm")
    page.get_by_label("I have checked this is the right customer").check()
    page.get_by_role("button", name="Erase the personal data").click()
    expect(page.locator(".flash-success")).to_contain_text(f"Customer #{customer_id}'s personal data is erased")

    main = page.locator("main")
    expect(page.locator("#customer-list")).to_be_visible()
    expect(main).not_to_contain_text(name)
    page.get_by_label("Find a customer").fill(name)
    page.get_by_role("button", name="Search").click()
    expect(main).to_contain_text("Nobody matches")
    for path in (f"/panel/customers/{customer_id}", "/panel/reports", "/panel/reports/actions", "/panel/audit?show=1000"):
        page.goto(path)
        expect(main).to_be_visible()
        expect(main).not_to_contain_text(name)
    page.goto(f"/panel/customers/{customer_id}")
    expect(page.locator("#customer-heading")).to_have_text(f"Erased customer #{customer_id}")


class TestTheDevices:
    @pytest.fixture
    def settings_overrides(self):
        return {"printer_url": f"tcp://127.0.0.1:{closed_port()}", "printer_profile": "TM-T88V", "printer_columns": 42}

    def test_the_printer_that_is_off_and_the_receipt_waiting_for_it(self, page, app, api, mia):
        results: queue.Queue = queue.Queue()
        printer = app.extensions["pos_loyalty"].printer
        printer.on_result, printer.retry_delays = results.put, ()
        api.post("/transactions", json=sale(line("COF", 250, description="Flat white"), id="S-1042"))
        assert results.get(timeout=10)["status"] == "failed"

        sign_in(page, "mia", "mia-password")
        panel_section(page, "Devices")
        expect(page.locator("#printer-status")).to_contain_text("Not reachable")
        expect(page.locator("#printer-error")).to_contain_text("refused the connection")
        expect(page.locator("#printer-settings")).to_contain_text("TM-T88V")
        expect(page.locator("#print-jobs")).to_contain_text("S-1042")
        page.get_by_role("button", name="Print a test page").click()
        expect(page.locator(".flash-error")).to_contain_text("The test page did not print")
        screenshot(page, "manager-devices")

        page.get_by_role("button", name="Reprint the receipt for S-1042").click()
        expect(page.locator(".flash-success")).to_contain_text("sent to the printer again")
        assert results.get(timeout=10)["transaction_id"] == "S-1042"
