"""The manager panel's sections (programme, rewards, customers, reports, devices) through Flask's
test client: each page's everyday use, a form that is refused and saves nothing, and that a
cashier is kept out."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import queue
import re
from html.parser import HTMLParser

import pytest
from werkzeug.datastructures import MultiDict

from pos_loyalty.services.customers import get_customer, search_customers
from pos_loyalty.services.feedback import record_feedback
from pos_loyalty.services.programme import get_programme, list_rewards
from pos_loyalty.services.receipts import waiting_print_jobs
from pos_loyalty.services.staff import audit_trail
from tests.support.escpos_capture import CapturePrinter, closed_port, decode_escpos
from tests.support.factories import enrol, line, programme, reward, sale
from tests.support.staff import Staff, text_of
from web.charts import Series, axis_range, bar_chart, line_chart

MANAGER_PAGES = (
    "/panel/programme", "/panel/rewards", "/panel/customers", "/panel/reports", "/panel/reports/actions",
    "/panel/reports/actions/lapsing.csv", "/panel/devices",
)


class _FormReader(HTMLParser):
    """What a browser would send for one form of a page: its fields as they are filled in."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action, self.inside, self.fields = action, False, []
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = self.inside or a.get("action") == self.action
        if not self.inside:
            return
        if tag == "input" and "name" in a and a.get("type", "text") not in ("submit", "button", "reset", "image"):
            if a.get("type") in ("checkbox", "radio"):
                if "checked" in a:
                    self.fields.append((a["name"], a.get("value", "on")))
            else:
                self.fields.append((a["name"], a.get("value") or ""))
        elif tag == "select":
            self._select, self._options = a.get("name"), []
        elif tag == "option" and self._select:
            self._options.append((a.get("value", ""), "selected" in a))
        elif tag == "textarea":
            self._textarea, self._text = a.get("name"), ""

    def handle_data(self, data):
        if self._textarea:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select" and self._select and self.inside:
            chosen = [v for v, selected in self._options if selected] or [v for v, _ in self._options[:1]]
            self.fields += [(self._select, v) for v in chosen]
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.fields.append((self._textarea, self._text))
            self._textarea = None


class Form:
    """A form as a page shows it, filled in by the test and sent with the button pressed."""

    def __init__(self, staff: Staff, action: str, html: str) -> None:
        reader = _FormReader(action)
        reader.feed(html)
        assert reader.fields, f"no form posting to {action}"
        self.staff, self.action, self.fields = staff, action, MultiDict(reader.fields)

    @classmethod
    def on(cls, staff: Staff, page_path: str, action: str | None = None) -> "Form":
        page = staff.get(page_path)
        assert page.status_code == 200, page_path
        return cls(staff, action or page_path, text_of(page))

    def fill(self, **values) -> "Form":
        """Field names with ``__`` for ``-``: ``tiers__1__min_spend`` is the field ``tiers-1-min_spend``."""
        for name, value in values.items():
            name = name.replace("__", "-")
            if isinstance(value, list):
                self.fields.setlist(name, value)
            else:
                self.fields[name] = value
        return self

    def send(self, button: str | None = None):
        data = self.fields.copy()
        if button:
            data["action"] = button
        return self.staff.client.post(self.action, data=data)

    def press(self, button: str) -> "Form":
        """A button that shows the form again (add a row, remove one): the form as it comes back."""
        r = self.send(button)
        assert r.status_code == 200, text_of(r)
        return Form(self.staff, self.action, text_of(r))


def programme_form(manager) -> Form:
    return Form.on(manager, "/panel/programme")


# -- everyone else is kept out ---------------------------------------------------------------------


def test_a_cashier_is_kept_out_of_every_manager_page(app, api, cashier):
    customer = enrol(api, "Anna Schmidt")
    for path in (*MANAGER_PAGES, f"/panel/customers/{customer['id']}", f"/panel/customers/{customer['id']}/erase"):
        r = cashier.get(path)
        assert r.status_code == 403, path
        assert "for managers" in text_of(r)
    for path, data in (
        ("/panel/programme", {"points_per_unit": "100", "action": "save"}),
        ("/panel/rewards", {"name": "Free car", "kind": "free_item", "sku": "CAR", "points_cost": "1"}),
        (f"/panel/customers/{customer['id']}/adjust", {"points": "500", "reason": "friend"}),
        (f"/panel/customers/{customer['id']}/export", {}),
        (f"/panel/customers/{customer['id']}/erase", {"reason": "because", "confirm": "yes"}),
        ("/panel/devices/test-print", {}),
    ):
        assert cashier.post(path, data).status_code == 403, path
    assert get_programme(app.extensions["pos_loyalty"].shop).version_id is None
    assert get_customer(app.extensions["pos_loyalty"].shop, customer["id"])["name"] == "Anna Schmidt"
    assert api.get(f"/customers/{customer['id']}").get_json()["balance"] == 0


def test_every_section_is_in_the_panel_navigation(manager):
    page = text_of(manager.get("/panel/"))
    for path in ("/panel/programme", "/panel/rewards", "/panel/customers", "/panel/reports", "/panel/devices"):
        assert f'href="{path}"' in page
    assert "coming soon" not in page


# -- the programme ---------------------------------------------------------------------------------


def test_a_promotion_saved_in_the_panel_applies_to_the_next_sale(api, shop, manager):
    anna = enrol(api, "Anna Schmidt")
    form = programme_form(manager).press("add:promotions")
    assert form.fields["promotions-0-name"] == ""  # an empty promotion to fill in
    assert get_programme(shop).version_id is None  # adding a row saves nothing

    r = form.fill(promotions__0__name="Double points June", promotions__0__starts_on="2026-06-01",
                  promotions__0__ends_on="2026-06-30", promotions__0__multiplier="2").send("save")
    assert r.status_code == 302
    page = text_of(manager.get(r.location))
    assert "Saved as version" in page and "Double points June" in page
    assert "promotions" in page  # the history says what changed

    saved = get_programme(shop)
    assert [(p.name, str(p.multiplier)) for p in saved.promotions] == [("Double points June", "2")]
    answer = api.post("/transactions", json=sale(line("COF", 1000), card=anna["card"])).get_json()
    assert answer["points"]["earned"] == 20  # 10 € at one point a euro, doubled: no restart needed
    assert answer["programme_version"] == saved.version_id
    assert "programme.save" in [e["action"] for e in audit_trail(shop, limit=5)]


def test_a_bad_multiplier_is_shown_beside_its_field_and_saves_nothing(shop, manager):
    r = programme_form(manager).press("add:categories").fill(categories__0__name="drinks", categories__0__multiplier="lots").send("save")
    assert r.status_code == 422
    page = text_of(r)
    assert 'id="f-categories-0-multiplier-error">&#39;lots&#39; is not a number.</p>' in page
    assert 'value="lots"' in page and 'value="drinks"' in page  # what was typed is kept
    assert "Nothing was saved" in page
    assert get_programme(shop).version_id is None


def test_rules_the_domain_refuses_are_explained_beside_the_right_row(shop, manager):
    programme(shop, tiers=[{"code": "member", "name": "Member", "min_spend": 0},
                           {"code": "gold", "name": "Gold", "min_spend": 50000, "multiplier": "1.5"}])
    before = get_programme(shop).version_id
    r = programme_form(manager).fill(tiers__1__min_spend="0.00", points_per_unit="many").send("save")
    assert r.status_code == 422
    assert 'id="programme-points-per-unit-error">Give a whole number, 0 or more, like 20.' in text_of(r)
    r = programme_form(manager).fill(tiers__1__min_spend="0.00").send("save")
    assert r.status_code == 422
    assert 'id="f-tiers-1-min-spend-error">Tiers are listed by rising spend.' in text_of(r)
    assert get_programme(shop).version_id == before


def test_the_preview_works_out_a_basket_under_the_unsaved_rules_and_writes_nothing(shop, manager):
    programme(shop, welcome_bonus=50, tiers=[{"code": "member", "name": "Member", "min_spend": 0},
                                               {"code": "gold", "name": "Gold", "min_spend": 50000, "multiplier": "1.5"}])
    version = get_programme(shop).version_id
    form = programme_form(manager).press("add:skus")
    form.fill(skus__0__name="COFFEE", skus__0__multiplier="3", tiers__1__multiplier="1,5",  # as many shops write it
              preview_tier="gold", preview_welcome="yes", preview_day="2026-06-15")
    r = form.send("preview")
    assert r.status_code == 200
    page = text_of(r)
    # Basket: 2 coffees at 2.50 (×3), bread 3.20, cigarettes 8.00 (tobacco earns nothing).
    # Base 5.00×3 + 3.20 = 18.20 → 18; gold ×1.5 → 27.3 → 27 (9 tier); welcome 50: 77.
    assert 'id="preview-total">77</span>' in page
    for label, points in (("Base points", 18), ("Promotion", 0), ("Tier bonus", 9), ("Welcome bonus", 50)):
        assert f"<dt>{label}</dt><dd>{points}</dd>" in page
    assert "earns nothing" in page
    assert get_programme(shop).version_id == version  # the preview saved nothing
    assert get_programme(shop).sku_multipliers == {}


def test_removing_a_row_keeps_the_others_as_typed(manager):
    form = programme_form(manager).press("add:categories").fill(categories__0__name="fruit", categories__0__multiplier="2")
    form = form.press("add:categories").fill(categories__1__name="wine", categories__1__multiplier="0")
    form = form.press("remove:categories:0")
    assert (form.fields["categories-0-name"], form.fields["categories-0-multiplier"]) == ("wine", "0")
    assert "categories-1-name" not in form.fields


# -- rewards ---------------------------------------------------------------------------------------


def test_a_manager_adds_edits_and_deactivates_a_reward(shop, manager):
    programme(shop, tiers=[{"code": "member", "name": "Member", "min_spend": 0}, {"code": "gold", "name": "Gold", "min_spend": 50000}])
    manager.get("/panel/rewards")
    r = manager.post("/panel/rewards", {"name": "10% off", "kind": "percent_off", "percent": "10", "cap": "5,00",
                                        "points_cost": "300", "valid_from": "2026-06-01", "valid_to": "2026-12-31", "tiers": "gold"})
    assert r.status_code == 302
    [added] = list_rewards(shop)
    assert (added["kind"], added["percent"], added["cap"], added["tiers"]) == ("percent_off", 10, 500, ["gold"])
    assert added["valid_to"] == dt.date(2026, 12, 31)
    page = text_of(manager.get("/panel/rewards"))
    assert "10% off, at most 5,00" in page and "300" in page

    edit = Form.on(manager, f"/panel/rewards/{added['id']}")
    assert edit.fields["cap"] == "5.00" and edit.fields.getlist("tiers") == ["gold"]
    assert edit.fill(kind="amount_off", amount="2.50", points_cost="250").send().status_code == 302
    [changed] = list_rewards(shop)
    assert (changed["kind"], changed["amount"], changed["percent"], changed["cap"]) == ("amount_off", 250, None, None)
    assert changed["points_cost"] == 250

    assert manager.post(f"/panel/rewards/{added['id']}/active", {"active": "no"}).status_code == 302
    assert list_rewards(shop)[0]["active"] is False
    assert "deactivated" in text_of(manager.get("/panel/rewards"))
    assert [e["action"] for e in audit_trail(shop, limit=3)] == ["reward.update", "reward.update", "reward.add"]


REFUSED_REWARDS = (
    ({"name": "", "kind": "amount_off", "amount": "2", "points_cost": "100"}, "name", "Give the reward a name"),
    ({"name": "Money off", "kind": "amount_off", "amount": "2.505", "points_cost": "100"}, "amount", "Give at most 2 decimals."),
    ({"name": "Half off", "kind": "percent_off", "percent": "150", "points_cost": "100"}, "percent",
     "A percent-off reward needs a percent from 1 to 100."),
    ({"name": "Coffee", "kind": "free_item", "sku": "COF", "points_cost": "100", "valid_from": "2026-07-01", "valid_to": "2026-06-01"},
     "valid-to", "The reward stops being valid before it starts."),
)


def test_a_reward_that_breaks_a_rule_is_explained_and_nothing_is_added(shop, manager):
    manager.get("/panel/rewards")
    for fields, field, message in REFUSED_REWARDS:
        r = manager.post("/panel/rewards", fields)
        assert r.status_code == 422, fields
        page = text_of(r)
        assert f'<p class="field-error" id="reward-{field}-error">{message}' in page
        assert f'value="{fields["name"]}"' in page  # what was typed is kept
    assert list_rewards(shop) == []


# -- customers -------------------------------------------------------------------------------------


def test_the_customer_list_and_the_search(api, manager):
    enrol(api, "Zoë Müller", phone="+49 30 1234567")
    ben = enrol(api, "Ben Berg", email="ben@example.org")
    everyone = text_of(manager.get("/panel/customers"))
    assert everyone.index("Ben Berg") < everyone.index("Zoë Müller")  # A to Z
    found = text_of(manager.get("/panel/customers?q=%2B49 (30) 123 4567"))  # the phone, however it is written
    assert "Zoë Müller" in found and "Ben Berg" not in found
    by_card = text_of(manager.get(f"/panel/customers?q={ben['card']}"))
    assert f'href="/panel/customers/{ben["id"]}"' in by_card
    assert "Nobody matches" in text_of(manager.get("/panel/customers?q=nobody-like-this"))


def test_a_manager_changes_the_profile_and_preferences_and_it_is_audited(api, shop, manager):
    zoe = enrol(api, "Zoë Müller", preferences={"allergies": ["peanuts"]})
    path = f"/panel/customers/{zoe['id']}"
    form = Form.on(manager, path, f"{path}/profile")
    assert form.fields["allergies"] == "peanuts"
    r = form.fill(preferred_name="Zoë", dietary="vegetarian, halal", packaging="no plastic bag", contact_channel="email",
                  sizes="shoe: 38", service_notes="hard of hearing, face her when speaking", marketing_consent="yes").send()
    assert r.status_code == 302
    saved = get_customer(shop, zoe["id"])
    assert saved["preferred_name"] == "Zoë" and saved["marketing_consent"] is True
    assert saved["preferences"] == {"allergies": ["peanuts"], "dietary": ["vegetarian", "halal"], "packaging": "no plastic bag",
                                    "contact_channel": "email", "sizes": {"shoe": "38"},
                                    "service_notes": "hard of hearing, face her when speaking"}
    assert audit_trail(shop, limit=1)[0]["action"] == "customer.update"

    r = Form.on(manager, path, f"{path}/profile").fill(allergies="").send()  # clearing a field removes it
    assert "allergies" not in get_customer(shop, zoe["id"])["preferences"]


def test_a_bad_email_is_shown_beside_the_field_and_saves_nothing(api, shop, manager):
    zoe = enrol(api, "Zoë Müller")
    path = f"/panel/customers/{zoe['id']}"
    r = Form.on(manager, path, f"{path}/profile").fill(email="zoe at example", name="Zoe Mueller").send()
    assert r.status_code == 422
    page = text_of(r)
    assert '<p class="field-error" id="customer-email-error">This is not an email address.</p>' in page
    assert 'value="zoe at example"' in page
    assert get_customer(shop, zoe["id"])["name"] == "Zoë Müller"


def test_a_lost_card_is_blocked_and_a_new_one_issued(api, shop, manager):
    zoe = enrol(api, "Zoë Müller")
    path = f"/panel/customers/{zoe['id']}"
    manager.get(path)
    r = manager.post(f"{path}/cards/block", {"card_number": zoe["card"], "reason": "lost"})
    assert r.status_code == 302
    assert api.get(f"/cards/{zoe['card']}").status_code == 409  # the old card no longer works
    r = manager.post(f"{path}/cards", {"card_number": "2712345678900"})
    assert r.status_code == 422
    assert '<p class="field-error" id="issue-card-number-error">The EAN-13 check digit is wrong.</p>' in text_of(r)
    r = manager.post(f"{path}/cards", {"card_number": ""})
    assert r.status_code == 302
    cards = get_customer(shop, zoe["id"])["cards"]
    assert [c["status"] for c in cards] == ["blocked", "active"]
    assert api.get(f"/cards/{cards[1]['number']}").status_code == 200
    other = enrol(api, "Ben Berg")
    assert manager.post(f"{path}/cards/block", {"card_number": other["card"]}).status_code == 404  # not this customer's card


def test_history_ledger_and_a_goodwill_adjustment_with_its_reason(api, shop, manager):
    zoe = enrol(api, "Zoë Müller")
    api.post("/transactions", json=sale(line("COF", 1250, description="Flat white"), card=zoe["card"], id="S-1"))
    path = f"/panel/customers/{zoe['id']}"
    manager.get(path)
    r = manager.post(f"{path}/adjust", {"points": "200000", "reason": "birthday cake was late"})
    assert r.status_code == 422
    assert "A manager can adjust at most 100000 points at a time." in text_of(r)
    r = manager.post(f"{path}/adjust", {"points": "40", "reason": ""})
    assert r.status_code == 422 and 'id="adjust-reason-error"' in text_of(r)
    assert api.get(f"/customers/{zoe['id']}").get_json()["balance"] == 12

    assert manager.post(f"{path}/adjust", {"points": "40", "reason": "birthday cake was late"}).status_code == 302
    page = text_of(manager.get(path))
    assert "1 × Flat white" in page and "S-1" in page
    assert "Earned · a purchase" in page
    assert "Adjusted · an adjustment" in page and "birthday cake was late" in page and "mia" in page
    assert '<span class="balance-num">52</span>' in page


def test_a_follow_up_is_resolved_with_a_note(api, shop, manager):
    zoe = enrol(api, "Zoë Müller")
    api.post("/transactions", json=sale(line(), card=zoe["card"], id="S-bad"))
    opened = record_feedback(shop, transaction_id="S-bad", satisfaction=1, comment="cold coffee")
    path = f"/panel/customers/{zoe['id']}"
    assert "cold coffee" in text_of(manager.get(path))
    resolve = f"{path}/follow-ups/{opened['follow_up_id']}/resolve"
    r = manager.post(resolve, {"resolution": " "})
    assert r.status_code == 422 and "Say how it was resolved." in text_of(r)
    assert manager.post(resolve, {"resolution": "called her, gave a voucher"}).status_code == 302
    page = text_of(manager.get(path))
    assert "Resolved" in page and "called her, gave a voucher" in page
    assert api.get(f"/cards/{zoe['card']}").get_json()["open_follow_ups"] == []


def test_the_export_is_a_json_file_of_everything_held(api, shop, manager):
    zoe = enrol(api, "Zoë Müller", email="zoe@example.org")
    api.post("/transactions", json=sale(line(), card=zoe["card"], id="S-1"))
    manager.get(f"/panel/customers/{zoe['id']}")
    r = manager.post(f"/panel/customers/{zoe['id']}/export")
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.headers["Content-Disposition"] == f'attachment; filename="customer-{zoe["id"]}-2026-06-15.json"'
    document = json.loads(r.get_data(as_text=True))
    assert document["customer"]["name"] == "Zoë Müller" and document["customer"]["email"] == "zoe@example.org"
    assert [t["id"] for t in document["transactions"]] == ["S-1"]
    assert document["exported_by"] == "mia"
    assert audit_trail(shop, limit=1)[0]["action"] == "customer.export"


def test_erasing_asks_for_confirmation_then_the_name_is_gone_and_the_points_stay(api, shop, manager):
    zoe = enrol(api, "Zoë Müller", email="zoe@example.org")
    api.post("/transactions", json=sale(line("COF", 1000), card=zoe["card"], id="S-1"))
    path = f"/panel/customers/{zoe['id']}"
    assert "cannot be undone" in text_of(manager.get(f"{path}/erase"))
    r = manager.post(f"{path}/erase", {"reason": "asked in store"})
    assert r.status_code == 422 and "Tick the box to confirm" in text_of(r)
    r = manager.post(f"{path}/erase", {"reason": "", "confirm": "yes"})
    assert r.status_code == 422 and 'id="erase-reason-error"' in text_of(r)
    assert get_customer(shop, zoe["id"])["name"] == "Zoë Müller"

    r = manager.post(f"{path}/erase", {"reason": "asked in store", "confirm": "yes"})
    assert r.status_code == 302 and r.location == "/panel/customers"
    for page in ("/panel/customers", path, "/panel/reports", "/panel/reports/actions", "/panel/audit"):
        shown = text_of(manager.get(page))
        assert "Zoë" not in shown and "zoe@example.org" not in shown, page
    assert "Nobody matches" in text_of(manager.get("/panel/customers?q=Müller"))
    assert f"Erased customer #{zoe['id']}" in text_of(manager.get(path))
    assert search_customers(shop, "Zoë") == []
    assert get_customer(shop, zoe["id"])["balance"] == 10


# -- reports ---------------------------------------------------------------------------------------


def test_reports_show_a_chart_and_a_table_for_the_last_twelve_months(api, shop, manager, clock):
    zoe = enrol(api, "Zoë Müller")
    reward(shop, "Free coffee", points_cost=5)
    api.post("/transactions", json=sale(line("COF", 1000), card=zoe["card"], id="S-1", at=clock.now - dt.timedelta(days=40)))
    api.post("/transactions", json=sale(line("COF", 250), card=zoe["card"], rewards=[1], id="S-2"))
    r = manager.get("/panel/reports")
    assert r.status_code == 200
    page = text_of(r)
    assert 'name="start" type="date" value="2025-07-01"' in page and 'name="end" type="date" value="2026-06-16"' in page
    assert page.count("<svg") == 7
    for report in ("outstanding", "redemption", "earn", "activity", "ratings", "retention", "rewards"):
        assert f'id="table-{report}"' in page
    assert "Free coffee" in page and "May 26" in page and "Jun 26" in page
    assert 'aria-label="Points earned and spent by month"' in page
    # Zoë's first visit was in May and she came back in June: May's newcomers, all still buying.
    retention = page[page.index('id="report-retention"'):page.index('id="table-retention"')]
    assert retention.count("<svg") == 1 and "Share of each month&#39;s new customers buying again" in retention
    assert "May 26, First: 100.0 %" in retention and "May 26, +1: 100.0 %" in retention
    assert retention.count("<polyline") == 1  # June's newcomers (none) have nothing to show yet


def test_the_retention_chart_draws_a_line_for_each_of_the_latest_months_of_newcomers(api, manager):
    """Newcomers every month since November, each buying on the 10th; one in two of March's came
    back in April, one in three of April's in May. The chart keeps to the six latest months that
    have a month after to show (June's newcomers have only their first), oldest first."""
    newcomers = {(2025, 11): ["Ada"], (2025, 12): ["Ben"], (2026, 1): ["Cem"], (2026, 2): ["Dan"], (2026, 3): ["Eva", "Fay"],
                 (2026, 4): ["Gus", "Hal", "Ida"], (2026, 5): ["Jo"], (2026, 6): ["Kim"]}
    for (year, month), names in newcomers.items():
        for name in names:
            card = enrol(api, name)["card"]
            first = dt.datetime(year, month, 10, 12, tzinfo=dt.timezone.utc)
            api.post("/transactions", json=sale(line(), card=card, at=first))
            if name in ("Eva", "Gus"):
                api.post("/transactions", json=sale(line(), card=card, at=first + dt.timedelta(days=31)))
    page = text_of(manager.get("/panel/reports"))
    retention = page[page.index('id="report-retention"'):page.index('id="table-retention"')]
    assert retention.count("<polyline") == 6
    drawn = re.findall(r"<title>(\w{3} \d\d), First: 100.0 %</title>", retention)
    assert drawn == ["Dec 25", "Jan 26", "Feb 26", "Mar 26", "Apr 26", "May 26"]
    assert "Mar 26, +1: 50.0 %" in retention and "Apr 26, +1: 33.3 %" in retention and "May 26, +1: 0.0 %" in retention
    assert "Nov 25" not in retention and "Jun 26" not in retention


def test_a_report_range_that_ends_before_it_starts_is_explained(manager):
    r = manager.get("/panel/reports?start=2026-06-01&end=2026-05-01")
    assert r.status_code == 422
    page = text_of(r)
    assert 'id="range-end-error">The end comes after the start' in page
    assert "<svg" not in page
    r = manager.get("/panel/reports?start=yesterday&end=2026-05-01")
    assert r.status_code == 422 and 'id="range-start-error">This is a date written YYYY-MM-DD.' in text_of(r)


def test_the_lists_of_customers_to_contact_download_as_csv(api, manager):
    enrol(api, "Zoë Müller", birthday="1990-06-18", email="zoe@example.org", marketing_consent=True)
    enrol(api, "Ben Berg", birthday="1985-06-16")
    page = text_of(manager.get("/panel/reports/actions"))
    assert "Zoë Müller" in page and "zoe@example.org" in page
    r = manager.get("/panel/reports/actions/birthdays.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.headers["Content-Disposition"] == 'attachment; filename="birthdays-2026-06-15.csv"'
    rows = r.get_data(as_text=True).splitlines()
    assert rows[0].startswith("customer_id,name,preferred_name,card_number,birthday_on,turns")
    assert [row.split(",")[1] for row in rows[1:]] == ["Ben Berg", "Zoë Müller"]
    assert rows[2].endswith("zoe@example.org,")  # consent given: the email is there
    assert manager.get("/panel/reports/actions/everyone.csv").status_code == 404


def test_the_points_expiring_list_downloads_those_whose_points_end_within_30_days(api, manager, clock):
    zoe = enrol(api, "Zoë Müller", email="zoe@example.org", marketing_consent=True)
    ben = enrol(api, "Ben Berg")
    # Points are good for twelve months: Zoë's from 30 June last year end on 30 June, Ben's in August.
    api.post("/transactions", json=sale(line("COF", 1500), card=zoe["card"], at=clock.now - dt.timedelta(days=350)))
    api.post("/transactions", json=sale(line("COF", 900), card=ben["card"], at=clock.now - dt.timedelta(days=300)))
    r = manager.get("/panel/reports/actions/expiring.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.headers["Content-Disposition"] == 'attachment; filename="expiring-2026-06-15.csv"'
    rows = r.get_data(as_text=True).splitlines()
    assert rows[0] == "customer_id,name,card_number,points_expiring,expires_after,balance,marketing_consent,email,phone"
    assert rows[1:] == [f"{zoe['id']},Zoë Müller,{zoe['card']},15,2026-06-30,15,true,zoe@example.org,"]


def test_a_long_list_shows_its_first_rows_and_the_csv_has_them_all(api, manager, monkeypatch):
    """A chain's lapsing list runs to the hundred thousands: the page shows the first rows and says
    so; the download has every one."""
    import web.manager.reports as pages

    monkeypatch.setattr(pages, "ACTION_ROWS_SHOWN", 2)
    for name in ("Ada Alt", "Ben Berg", "Cem Cay"):
        enrol(api, name, birthday="1990-06-18")
    page = text_of(manager.get("/panel/reports/actions"))
    assert "Ada Alt" in page and "Ben Berg" in page and "Cem Cay" not in page
    assert "Showing the first 2 of 3; the CSV file has them all." in page
    rows = manager.get("/panel/reports/actions/birthdays.csv").get_data(as_text=True).splitlines()
    assert [row.split(",")[1] for row in rows[1:]] == ["Ada Alt", "Ben Berg", "Cem Cay"]



def test_the_lapsing_list_on_the_page_is_its_first_rows_and_its_count(api, manager, clock, monkeypatch):
    import web.manager.reports as pages

    monkeypatch.setattr(pages, "ACTION_ROWS_SHOWN", 2)
    for n, name in enumerate(("Ada Alt", "Ben Berg", "Cem Cay")):  # last seen 100, 90 and 80 days ago
        card = enrol(api, name)["card"]
        api.post("/transactions", json=sale(line(), card=card, at=clock.now - dt.timedelta(days=100 - 10 * n)))
    page = text_of(manager.get("/panel/reports/actions"))
    lapsing = page[page.index('id="list-lapsing"'):page.index('id="list-expiring"')]
    assert "Ada Alt" in lapsing and "Ben Berg" in lapsing and "Cem Cay" not in lapsing  # longest away first
    assert "Showing the first 2 of 3; the CSV file has them all." in lapsing
    rows = manager.get("/panel/reports/actions/lapsing.csv").get_data(as_text=True).splitlines()
    assert [row.split(",")[1] for row in rows[1:]] == ["Ada Alt", "Ben Berg", "Cem Cay"]


def test_charts_are_drawn_on_whole_steps_and_show_names_as_text():
    assert axis_range([0, 1193]) == (0, 1500, 500)
    assert axis_range([-175, 374]) == (-200, 400, 200)
    assert axis_range([0, 0]) == (0, 1, 1)
    bars = bar_chart(["<b>Free</b> coffee", "Cake"], [Series("Times redeemed", [5, None])], title="Top rewards")
    assert bars.startswith('<svg class="chart chart-bars"') and 'aria-label="Top rewards"' in bars
    assert "&lt;b&gt;Free&lt;/b&gt; coffee" in bars and "<b>" not in bars
    assert bars.count("<rect") == 1  # nothing drawn where there is no value
    rate = bar_chart(["Points"], [Series("Redeemed", [418])], title="Rate", decimals=1, suffix=" %")
    assert "Redeemed, Points: 41.8 %" in rate and ">60.0 %<" in rate
    lines = line_chart(["Jan", "Feb", "Mar"], [Series("Earned", [10, 30, 20]), Series("Spent", [0, 5, 0])], title="Earn")
    assert lines.count("<polyline") == 2 and lines.count("<circle") == 6
    assert "style=" not in bars + rate + lines  # the pages' Content Security Policy allows no inline styles


# -- devices ---------------------------------------------------------------------------------------


class TestWithAPrinterThatIsOff:
    @pytest.fixture
    def settings_overrides(self):
        return {"printer_url": f"tcp://127.0.0.1:{closed_port()}", "printer_profile": "TM-T88V", "scanner_url": ""}

    @pytest.fixture
    def results(self, app):
        queue_ = app.extensions["pos_loyalty"].printer
        results: queue.Queue = queue.Queue()
        queue_.on_result, queue_.retry_delays = results.put, ()
        return results

    def test_the_devices_page_shows_the_settings_the_fault_and_the_receipt_waiting(self, api, shop, manager, results):
        api.post("/transactions", json=sale(line(), id="S-off"))
        assert results.get(timeout=10)["status"] == "failed"
        page = text_of(manager.get("/panel/devices"))
        assert "TM-T88V" in page and "42 characters" in page
        assert "Not reachable" in page and "refused the connection" in page
        assert "S-off" in page and 'aria-label="Reprint the receipt for S-off"' in page

        r = manager.post("/panel/devices/test-print")
        assert r.status_code == 302
        assert "The test page did not print" in text_of(manager.get("/panel/devices"))

    def test_a_waiting_receipt_is_reprinted_when_the_printer_is_back(self, app, api, shop, manager, results):
        api.post("/transactions", json=sale(line(), id="S-off"))
        assert results.get(timeout=10)["status"] == "failed"
        [job] = waiting_print_jobs(shop)
        services = app.extensions["pos_loyalty"]
        with CapturePrinter() as shop_printer:
            services.printer.printer_url = shop_printer.url
            services.settings = dataclasses.replace(services.settings, printer_url=shop_printer.url)
            manager.get("/panel/devices")
            assert manager.post(f"/panel/devices/print-jobs/{job['id']}/reprint").status_code == 302
            assert results.get(timeout=10)["status"] == "printed"
            page = text_of(manager.get("/panel/devices"))
            assert "Online · Paper OK" in page and "Nothing waiting" in page
            assert manager.post("/panel/devices/test-print").status_code == 302
            assert "The test page is printing" in text_of(manager.get("/panel/devices"))
            assert shop_printer.next_job()  # the reprint
            assert shop_printer.next_job()  # the test page


    def test_a_customer_asking_for_a_copy_gets_one_from_the_receipts_printed_here(self, app, api, shop, manager, results):
        services = app.extensions["pos_loyalty"]
        with CapturePrinter() as shop_printer:
            services.printer.printer_url = shop_printer.url
            services.settings = dataclasses.replace(services.settings, printer_url=shop_printer.url)
            for n in range(12):
                api.post("/transactions", json=sale(line(), id=f"S-{n:02}"))
                assert results.get(timeout=10)["status"] == "printed"
                assert "KOPIE" not in decode_escpos(shop_printer.next_job()).text  # (the shop speaks German)
            page = manager.get("/panel/devices").get_data(as_text=True)
            offered = re.findall(r'aria-label="Print a copy of the receipt for (S-\d+)"', page)
            assert offered == [f"S-{n:02}" for n in range(11, 1, -1)]  # the last ten, the latest first
            job_id = re.search(r'id="printed-job-(\d+)"', page).group(1)
            assert manager.post(f"/panel/devices/print-jobs/{job_id}/reprint").status_code == 302
            assert results.get(timeout=10)["status"] == "printed"
            printouts = [decode_escpos(shop_printer.next_job()) for _ in range(2)]  # the page's status question, the copy
            assert [p.lines != [] for p in printouts] == [False, True] and printouts[1].cuts == 1
            assert "*** KOPIE ***" in printouts[1].text and "S-11" in printouts[1].text  # says it is one
            page = manager.get("/panel/devices").get_data(as_text=True)
            assert "The receipt for S-11 is sent to the printer again." in page
            assert re.findall(r'aria-label="Print a copy of the receipt for (S-\d+)"', page) == offered  # the copy is not a second row
            assert 'id="print-job-' not in page  # nothing waits
            manager.get("/panel/devices")  # the oldest, S-00, is no longer among the last ten
            assert manager.post(f"/panel/devices/print-jobs/{_job_of(shop, 'S-00')}/reprint").status_code == 302
            assert "not offered here any more" in text_of(manager.get("/panel/devices"))
            assert results.empty()


def _job_of(shop, transaction_id: str) -> int:
    from sqlalchemy import select

    from pos_loyalty.persistence import models as m

    with shop.uow(read_only=True) as uow:
        return uow.session.scalars(select(m.PrintJob.id).where(m.PrintJob.transaction_id == transaction_id)).one()


def test_without_a_printer_the_devices_page_says_so(manager):
    page = text_of(manager.get("/panel/devices"))
    assert "No receipt printer is set up on this till." in page
    assert "No serial scanner" in page
    manager.get("/panel/devices")
    assert manager.post("/panel/devices/test-print").status_code == 302
    assert "No receipt printer is set up" in text_of(manager.get("/panel/devices"))


def test_odd_requests_get_a_plain_answer_never_a_server_error(api, manager):
    zoe = enrol(api, "Zoë Müller")
    manager.get("/panel/programme")
    for path in ("/panel/customers/99999999999999999999", "/panel/customers/4242", "/panel/rewards/4242",
                 f"/panel/customers/{zoe['id']}/erase?x=1", "/panel/reports?start=2026-02-30&end=2026-03-01"):
        r = manager.get(path)
        assert r.status_code in (200, 404, 422), (path, r.status_code)
    for path, data, status in (
        ("/panel/programme", {}, 422),
        ("/panel/programme", {"action": "remove:tiers:999"}, 200),
        ("/panel/programme", {"action": "preview", "tiers-0-code": "", "points_per_unit": "1"}, 422),
        ("/panel/programme", {"action": "fly:away"}, 422),
        ("/panel/rewards", {"name": "Odd", "kind": "bogus", "points_cost": "1"}, 422),
        ("/panel/rewards", {"name": "Dear", "kind": "free_item", "sku": "X" * 65, "points_cost": "1"}, 422),
        ("/panel/rewards", {"name": "Dear", "kind": "free_item", "sku": "COF", "points_cost": "99999999999"}, 422),
        ("/panel/rewards/4242/active", {"active": "no"}, 404),
        ("/panel/customers/4242/adjust", {"points": "5", "reason": "x"}, 404),
        (f"/panel/customers/{zoe['id']}/follow-ups/4242/resolve", {"resolution": "done"}, 404),
        (f"/panel/customers/{zoe['id']}/adjust", {"points": "99999999999999", "reason": "x"}, 422),
        ("/panel/devices/print-jobs/4242/reprint", {}, 302),
    ):
        r = manager.post(path, data)
        assert r.status_code == status, (path, data, r.status_code)
