"""Staff at the web pages through Flask's test client: sign in through the form, send each form's
CSRF token, as a browser would."""
from __future__ import annotations

import re

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


class Staff:
    """A browser-less member of staff: signs in through the form and sends each form's CSRF token."""

    def __init__(self, client) -> None:
        self.client = client
        self.token = ""

    def get(self, path, **kw):
        r = self.client.get(path, **kw)
        found = CSRF_FIELD.search(r.get_data(as_text=True))
        if found:
            self.token = found.group(1)
        return r

    def post(self, path, data=None, *, with_token=True, **kw):
        if not self.token:
            self.get("/sign-in")
        data = dict(data or {})
        if with_token:
            data["csrf_token"] = self.token
        return self.client.post(path, data=data, **kw)

    def sign_in(self, username, password, **kw):
        self.get("/sign-in")
        return self.post("/sign-in", {"username": username, "password": password}, **kw)


def text_of(response) -> str:
    return response.get_data(as_text=True)
