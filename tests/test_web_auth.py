"""Staff sign-in, roles, CSRF and the HTML error pages, through Flask's test client."""
from __future__ import annotations


import pytest

from tests.support.factories import enrol
from tests.support.staff import Staff, text_of

@pytest.fixture
def pauses(app) -> list[float]:
    """The slow-down after wrong passwords, recorded instead of slept."""
    held: list[float] = []
    app.extensions["pos_loyalty_web"].pause = held.append
    return held


def test_a_cashier_signs_in_to_the_cashier_screen_with_a_cookie_scripts_cannot_read(app, staff_logins):
    anna = Staff(app.test_client())
    r = anna.sign_in("anna", "anna-password")
    assert r.status_code == 302 and r.location == "/cashier"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    screen = anna.get("/cashier")
    assert screen.status_code == 200
    assert "Scan the card or type its number" in text_of(screen)
    assert screen.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in screen.headers["Content-Security-Policy"]


def test_over_https_the_session_cookie_is_secure(app, staff_logins):
    anna = Staff(app.test_client())
    anna.get("/sign-in", base_url="https://till.local")
    r = anna.post("/sign-in", {"username": "anna", "password": "anna-password"}, base_url="https://till.local",
                  headers={"Referer": "https://till.local/sign-in"})
    assert r.status_code == 302
    assert "Secure" in r.headers["Set-Cookie"]


def test_a_visitor_who_is_not_signed_in_is_sent_to_sign_in_and_back_again(app, staff_logins):
    visitor = Staff(app.test_client())
    r = visitor.get("/cashier?card=2712345678905")
    assert r.status_code == 302
    assert r.location.startswith("/sign-in?next=")
    visitor.get(r.location)
    back = visitor.post("/sign-in", {"username": "anna", "password": "anna-password", "next": "/cashier?card=2712345678905"})
    assert back.location == "/cashier?card=2712345678905"


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "/\t/evil.example"])
def test_signing_in_never_sends_anyone_off_the_till(app, staff_logins, target):
    anna = Staff(app.test_client())
    anna.get("/sign-in")
    r = anna.post("/sign-in", {"username": "anna", "password": "anna-password", "next": target})
    assert r.location == "/cashier"


def test_a_form_without_its_token_is_refused_and_changes_nothing(app, api, cashier):
    anna_customer = enrol(api, "Anna Schmidt")
    r = cashier.post("/cashier/goodwill", {"card": anna_customer["card"], "points": "20", "reason": "late order"}, with_token=False)
    assert r.status_code == 400
    assert "nothing was saved" in text_of(r)
    assert r.content_type.startswith("text/html")
    assert api.get(f"/cards/{anna_customer['card']}").get_json()["balance"] == 0


def test_signing_in_needs_the_form_token_too(app, staff_logins):
    client = app.test_client()
    r = client.post("/sign-in", data={"username": "anna", "password": "anna-password"})
    assert r.status_code == 400
    assert client.get("/cashier").status_code == 302  # still not signed in


def test_the_till_api_uses_its_token_and_needs_no_form_token(api):
    r = api.post("/customers", json={"name": "Bea Berg"})
    assert r.status_code == 201


def test_a_cashier_reaching_for_a_manager_page_gets_a_friendly_403(cashier):
    for path in ("/panel/", "/panel/users", "/panel/audit", "/panel/programme"):
        r = cashier.get(path)
        assert r.status_code == 403, path
        page = text_of(r)
        assert "for managers" in page and "signed in as <strong>anna</strong>" in page
        assert "Back to the cashier screen" in page
    r = cashier.post("/panel/users", {"username": "sneaky", "password": "sneaky-pass", "repeated": "sneaky-pass", "role": "manager"})
    assert r.status_code == 403


def test_a_manager_reaches_the_panel_and_sees_every_section_in_the_navigation(manager):
    r = manager.get("/panel/")
    assert r.status_code == 200
    page = text_of(r)
    for label in ("Programme", "Rewards", "Customers", "Reports", "Devices", "Users", "Audit"):
        assert label in page
    assert manager.get("/panel/users").status_code == 200
    assert manager.get("/panel/audit").status_code == 200


def test_five_wrong_passwords_lock_the_login_for_fifteen_minutes(app, staff_logins, clock, pauses):
    thief = Staff(app.test_client())
    answers = [thief.sign_in("anna", f"guess-{n}") for n in range(5)]
    assert [r.status_code for r in answers] == [401] * 5
    assert "username or password is wrong" in text_of(answers[0])
    assert "3 more tries" in text_of(answers[1])
    assert "locked until 14:15" in text_of(answers[4])  # 12:00 UTC is 14:00 in Berlin, plus 15 minutes
    assert pauses == sorted(pauses) and pauses[0] == 0 and pauses[-1] > 0  # each wrong guess answered more slowly

    still_locked = Staff(app.test_client()).sign_in("anna", "anna-password")
    assert still_locked.status_code == 401 and "locked" in text_of(still_locked)

    clock.advance(minutes=15, seconds=1)
    assert Staff(app.test_client()).sign_in("anna", "anna-password").status_code == 302


def test_an_unknown_username_gets_the_same_answer_as_a_wrong_password(app, staff_logins):
    r = Staff(app.test_client()).sign_in("nobody", "whatever-it-is")
    assert r.status_code == 401
    assert "username or password is wrong" in text_of(r)


def test_a_manager_unlocks_a_locked_login(app, manager, pauses):
    thief = Staff(app.test_client())
    for n in range(5):
        thief.sign_in("anna", f"guess-{n}")
    manager.get("/panel/users")
    r = manager.post("/panel/users/anna/unlock")
    assert r.status_code == 302
    assert Staff(app.test_client()).sign_in("anna", "anna-password").status_code == 302


def test_a_manager_adds_a_cashier_who_can_then_sign_in(app, manager):
    manager.get("/panel/users")
    r = manager.post("/panel/users", {"username": "ben", "role": "cashier", "password": "ben-password", "repeated": "ben-password"})
    assert r.status_code == 302
    assert "ben" in text_of(manager.get("/panel/users"))
    ben = Staff(app.test_client())
    assert ben.sign_in("ben", "ben-password").location == "/cashier"
    audit = text_of(manager.get("/panel/audit"))
    assert "user.add" in audit and "mia" in audit


def test_adding_a_user_with_mistyped_passwords_is_shown_again_and_saves_nothing(app, manager):
    manager.get("/panel/users")
    r = manager.post("/panel/users", {"username": "ben", "role": "cashier", "password": "ben-password", "repeated": "ben-pasword"})
    assert r.status_code == 422
    page = text_of(r)
    assert "The two passwords differ." in page
    assert 'value="ben"' in page  # what was typed is kept
    assert Staff(app.test_client()).sign_in("ben", "ben-password").status_code == 401


def test_disabling_a_login_ends_its_session_at_once(app, cashier, manager):
    manager.get("/panel/users")
    assert manager.post("/panel/users/anna/disable").status_code == 302
    r = cashier.get("/cashier")
    assert r.status_code == 302 and r.location.startswith("/sign-in")
    refused = Staff(app.test_client()).sign_in("anna", "anna-password")
    assert refused.status_code == 401 and "disabled" in text_of(refused)


def test_signing_out_ends_the_session(cashier):
    cashier.get("/cashier")
    assert cashier.post("/sign-out").status_code == 302
    assert cashier.get("/cashier").status_code == 302


def test_pages_outside_the_api_get_html_errors_and_the_api_keeps_problem_json(app, api):
    client = app.test_client()
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.content_type.startswith("text/html")
    assert "There is no page here" in text_of(page)
    problem = api.get("/no-such-thing")
    assert problem.status_code == 404 and problem.content_type == "application/problem+json"


def test_a_fault_on_our_side_shows_a_calm_page_and_changes_nothing(cashier, monkeypatch):
    import web.cashier

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(web.cashier, "card_summary", broken)
    r = cashier.get("/cashier?card=2712345678905")
    assert r.status_code == 500 and r.content_type.startswith("text/html")
    page = text_of(r)
    assert "Something went wrong on our side" in page and "Nothing was changed" in page
    assert "the database went away" not in page
