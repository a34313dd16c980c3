"""Who may use what: every route of the service against everyone who might ask.

Four callers: nobody signed in, a cashier and a manager signed in through the sign-in form (with
its CSRF token, as a browser does), and a till with its bearer token. Each route belongs to one
area of the table below; a route in no area fails the test until someone says who may use it.
Also: revoked tokens, session cookies, CSRF on every form, sign-in throttling, password hashes.
These are about the web edge, the same on either database: they run on SQLite.
"""
from __future__ import annotations

import re
import sqlite3

import pytest
from argon2 import PasswordHasher

from pos_loyalty.services import access
from pos_loyalty.services.access import add_till, add_user, revoke_till
from pos_loyalty.services.feedback import record_feedback
from tests.support.factories import enrol, line, reward, sale

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
PUBLIC = "anyone"
TILL, CASHIER, MANAGER, NOBODY = "till", "cashier", "manager", "nobody"
CALLERS = (NOBODY, TILL, CASHIER, MANAGER)

WHO_MAY_USE = [
    # (path, or path prefix ending in "/" or "*", who may use it)
    ("/", PUBLIC),
    ("/sign-in", PUBLIC),
    ("/sign-out", PUBLIC),
    ("/static/*", PUBLIC),
    ("/api/v1/health", PUBLIC),
    ("/api/v1/openapi.json", PUBLIC),
    ("/api/v1/docs", PUBLIC),
    ("/api/v1/*", {TILL}),
    ("/panel", {MANAGER}),
    ("/panel/*", {MANAGER}),
    ("/cashier", {CASHIER, MANAGER}),
    ("/cashier/*", {CASHIER, MANAGER}),
]


def who_may_use(rule: str):
    for path, who in WHO_MAY_USE:
        if rule == path or (path.endswith("*") and rule.startswith(path[:-1])):
            return who
    raise AssertionError(f"nobody has said who may use {rule}: add it to WHO_MAY_USE")


class Caller:
    """A browser (cookies, the form's CSRF token) or a till (its bearer token) on the test client."""

    def __init__(self, client, *, token: str | None = None) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.csrf = ""

    def get(self, path, **kw):
        r = self.client.get(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)
        found = CSRF_FIELD.search(r.get_data(as_text=True)) if r.content_type.startswith("text/html") else None
        if found:
            self.csrf = found.group(1)
        return r

    def send(self, method, path, *, with_csrf=True, data=None, **kw):
        headers = {**self.headers, **kw.pop("headers", {})}
        if path.startswith("/api/"):
            return self.client.open(path, method=method, json={}, headers=headers, **kw)
        form = dict(data or {})
        if with_csrf:
            form["csrf_token"] = self.csrf
        return self.client.open(path, method=method, data=form, headers=headers, **kw)

    def sign_in(self, username, password, **kw):
        self.get("/sign-in", **kw)
        return self.send("POST", "/sign-in", data={"username": username, "password": password}, **kw)


@pytest.fixture
def staff(shop):
    add_user(shop, "anna", "anna-password", "cashier")
    add_user(shop, "mia", "mia-password", "manager")
    add_user(shop, "bob", "bob-password", "cashier")  # the login the panel's buttons are tried on


@pytest.fixture
def callers(app, shop, staff, till_token) -> dict[str, Caller]:
    found = {NOBODY: Caller(app.test_client()), TILL: Caller(app.test_client(), token=till_token)}
    for role, (username, password) in {CASHIER: ("anna", "anna-password"), MANAGER: ("mia", "mia-password")}.items():
        found[role] = Caller(app.test_client())
        assert found[role].sign_in(username, password).status_code == 302
    found[NOBODY].get("/sign-in")  # a CSRF token, so what refuses it is the area's guard
    found[TILL].get("/sign-in")
    return found


@pytest.fixture
def samples(api, shop) -> dict[str, str]:
    """A value for every kind of path argument, naming something that exists."""
    customer = enrol(api, "Clara Weiss")
    api.post("/transactions", json=sale(line("COF", 1000), card=customer["card"], id="S-1"))
    voucher = reward(shop, "Free coffee", points_cost=50)
    follow_up = record_feedback(shop, transaction_id="S-1", satisfaction=1, comment="cold coffee", complaint=True)
    return {
        "customer_id": str(customer["id"]), "card_number": customer["card"], "transaction_id": "S-1",
        "reward_id": str(voucher["id"]), "follow_up_id": str(follow_up.get("follow_up_id") or 1), "job_id": "1",
        "username": "bob", "name": "lapsing", "filename": "style.css",
    }


def concrete(rule, samples: dict[str, str]) -> str:
    path = rule.rule
    for argument in rule.arguments:
        path = re.sub(rf"<(?:[^:<>]+:)?{argument}>", samples[argument], path)
    return path


def is_refused(path: str, response) -> bool:
    """How each area says no: 401 problem+json on the API, a 401/403 page or the way to sign-in elsewhere."""
    if path.startswith("/api/"):
        return response.status_code == 401 and response.content_type == "application/problem+json"
    if response.status_code in (401, 403):
        return True
    return response.status_code == 302 and response.location.startswith("/sign-in")


def ask(caller: Caller, method: str, path: str):
    headers = {"Accept": "text/event-stream"} if path.endswith("/events") else {}
    if method == "GET":
        response = caller.get(path, headers=headers)
    else:
        response = caller.send(method, path, headers=headers)
    response.close()  # a scan stream ends here
    return response


def test_every_route_answers_only_those_it_is_for(app, callers, samples):
    wrong = []
    rules = sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint))
    assert len(rules) >= 35
    for caller_name in CALLERS:  # the manager last: the panel's buttons change things
        for rule in rules:
            who = who_may_use(rule.rule)
            if who == PUBLIC:
                continue
            path = concrete(rule, samples)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                response = ask(callers[caller_name], method, path)
                refused = is_refused(path, response)
                if caller_name in who and (refused or response.status_code >= 500):
                    wrong.append(f"{caller_name} may use {method} {path} but got {response.status_code}")
                elif caller_name not in who and not refused:
                    wrong.append(f"{caller_name} must not use {method} {path} but got {response.status_code}")
    assert not wrong, "\n".join(wrong)


def test_a_cashier_is_told_no_on_manager_pages_and_a_stranger_is_sent_to_sign_in(callers):
    assert callers[CASHIER].get("/panel/users").status_code == 403
    r = callers[NOBODY].get("/panel/users")
    assert r.status_code == 302 and r.location.startswith("/sign-in?next=")
    r = callers[TILL].get("/cashier")  # a till's token opens the API, not the screens
    assert r.status_code == 302 and r.location.startswith("/sign-in")
    r = callers[MANAGER].get("/api/v1/rewards")  # nor does a manager's session open the API
    assert r.status_code == 401 and r.content_type == "application/problem+json"


def test_every_form_that_changes_something_is_refused_without_its_csrf_token(app, callers, samples, shop):
    from pos_loyalty.services.staff import audit_trail

    before = audit_trail(shop, limit=1000)
    forms = [
        rule for rule in app.url_map.iter_rules()
        if not rule.rule.startswith("/api/") and rule.methods & {"POST", "PUT", "PATCH", "DELETE"}
    ]
    assert len(forms) >= 10
    for rule in forms:
        for method in sorted(rule.methods & {"POST", "PUT", "PATCH", "DELETE"}):
            r = callers[MANAGER].send(method, concrete(rule, samples), with_csrf=False)
            assert r.status_code in (400, 403), (method, rule.rule, r.status_code)
    assert audit_trail(shop, limit=1000) == before
    assert callers[MANAGER].get("/panel/").status_code == 200  # still signed in: sign-out was refused too


def test_a_revoked_till_token_is_refused_on_its_next_request(app, shop):
    _, token = add_till(shop, "till-9")
    till = Caller(app.test_client(), token=token)
    assert till.get("/api/v1/rewards").status_code == 200
    revoke_till(shop, "till-9")
    r = till.get("/api/v1/rewards")
    assert r.status_code == 401 and "revoked" in r.get_json()["detail"]
    _, new_token = add_till(shop, "till-9")  # re-issued: only the new token works
    assert Caller(app.test_client(), token=new_token).get("/api/v1/rewards").status_code == 200
    assert till.get("/api/v1/rewards").status_code == 401


def test_the_session_cookie_is_httponly_and_samesite_and_secure_over_https(app, staff):
    for base_url, secure in (("http://till.local", False), ("https://till.local", True)):
        browser = Caller(app.test_client())
        browser.get("/sign-in", base_url=base_url)
        r = browser.send("POST", "/sign-in", data={"username": "anna", "password": "anna-password"}, base_url=base_url,
                         headers={"Referer": f"{base_url}/sign-in"})
        assert r.status_code == 302
        cookies = r.headers.getlist("Set-Cookie")
        assert cookies
        for cookie in cookies:
            flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
            assert {"httponly", "samesite"} <= flags, cookie
            assert ("secure" in flags) == secure, cookie


def test_five_wrong_passwords_from_five_browsers_lock_the_login_even_for_the_right_password(app, staff, clock):
    held: list[float] = []
    app.extensions["pos_loyalty_web"].pause = held.append  # the slow-down, recorded instead of slept
    answers = [Caller(app.test_client()).sign_in("anna", f"guess-{n}") for n in range(5)]
    assert [r.status_code for r in answers] == [401] * 5
    assert held == sorted(held) and held[-1] > held[0]  # each wrong guess answered more slowly
    right = Caller(app.test_client()).sign_in("anna", "anna-password")
    assert right.status_code == 401 and "locked" in right.get_data(as_text=True)
    assert Caller(app.test_client()).sign_in("mia", "mia-password").status_code == 302  # only that login
    clock.advance(minutes=15, seconds=1)
    assert Caller(app.test_client()).sign_in("anna", "anna-password").status_code == 302


def test_staff_passwords_are_kept_as_memory_hard_argon2id_hashes_and_till_tokens_only_as_hashes(shop, monkeypatch, database_url):
    monkeypatch.setattr(access, "_hasher", PasswordHasher())  # the service's own hasher and cost
    add_user(shop, "nora", "a long passphrase", "manager")
    _, token = add_till(shop, "till-7")
    conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
    try:
        (stored,) = conn.execute("SELECT password_hash FROM users WHERE username = 'nora'").fetchone()
        (token_hash,) = conn.execute("SELECT token_hash FROM tills WHERE name = 'till-7'").fetchone()
        everything = "\n".join(line for line in conn.iterdump())
    finally:
        conn.close()
    assert stored.startswith("$argon2id$")
    cost = dict(part.split("=") for part in stored.split("$")[3].split(","))
    assert int(cost["m"]) >= 19_456 and int(cost["t"]) >= 2  # at least OWASP's minimum for argon2id
    assert "a long passphrase" not in everything
    assert token not in everything and token_hash == access.hash_token(token)
