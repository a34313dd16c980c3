"""Whatever a broken or hostile till sends, the answer is a clear 4xx and nothing is written.

``tests/test_api_errors.py`` covers a form body, malformed JSON, nested arrays, a 600 KB string,
invalid UTF-8 in a body, negative or fractional prices and quantities, and unknown fields on a
sale. Here: the rest of the edge — other resources, other encodings, numbers too big for the
database, NUL characters, bodies that arrive in chunks and headers that never end (through the
real server), on SQLite and PostgreSQL.
"""
from __future__ import annotations

import errno
import socket

import pytest

from tests.support.factories import enrol, line, return_of, sale

PROBLEM = "application/problem+json"


def refused(r, *statuses: int) -> dict:
    """A 4xx problem+json answer (one of ``statuses`` when given)."""
    assert 400 <= r.status_code < 500, (r.status_code, r.get_data(as_text=True)[:300])
    if statuses:
        assert r.status_code in statuses, (r.status_code, r.get_json())
    assert r.content_type == PROBLEM, r.content_type
    return r.get_json()


def nothing_written(api, customer) -> None:
    assert api.get(f"/cards/{customer['card']}").get_json()["balance"] == 0
    assert api.get(f"/customers/{customer['id']}/transactions").get_json() == []
    assert api.get(f"/customers/{customer['id']}/ledger").get_json() == []


# -- numbers ----------------------------------------------------------------------------------------


NONSENSE_NUMBERS = {
    "a price of 2^63": {"lines": [line(price=2**63)]},
    "a price of -2^63": {"lines": [line(price=-(2**63))]},
    "a quantity of 10^400": {"lines": [line(qty=10**400)]},
    "a quantity of 1e400": {"lines": [line(qty="1e400")]},
    "a quantity of NaN": {"lines": [line(qty="NaN")]},
    "a quantity of -Infinity": {"lines": [line(qty="-Infinity")]},
    "a discount of -1": {"lines": [line(discount=-1)]},
    "a discount of 2^64": {"lines": [line(discount=2**64)]},
    "reward 2^63": {"rewards": [2**63]},
    "reward -1": {"rewards": [-1]},
}


def test_numbers_no_till_could_mean_are_refused_and_write_nothing(api):
    anna = enrol(api)
    for what, change in NONSENSE_NUMBERS.items():
        r = api.post("/transactions", json={**sale(line(), card=anna["card"]), **change})
        assert r.status_code == 422, what
        refused(r, 422)
    nothing_written(api, anna)


def test_json_nan_and_infinity_literals_are_not_numbers(api):
    anna = enrol(api)
    for literal in (b"NaN", b"Infinity", b"-Infinity", b"1e999"):
        raw = (
            b'{"id": "S-NAN", "occurred_at": "2026-06-15T12:00:00+00:00", "currency": "EUR", "card_number": "'
            + anna["card"].encode() + b'", "lines": [{"sku": "COF", "description": "Coffee", "quantity": 1, "unit_price": '
            + literal + b"}]}"
        )
        refused(api.post("/transactions", data=raw, headers={"Content-Type": "application/json"}), 400, 422)
    nothing_written(api, anna)


def test_goodwill_points_beyond_any_limit_or_negative_from_a_till_are_refused(api):
    anna = enrol(api)
    for points in (10**20, -(10**20), 2**63, -5, 0):
        r = api.post(f"/customers/{anna['id']}/adjustments", json={"points": points, "reason": "goodwill", "user": "anna"})
        refused(r, 403, 422)
    nothing_written(api, anna)


def test_a_returned_quantity_that_is_negative_zero_or_more_than_was_sold_is_refused(api):
    anna = enrol(api)
    api.post("/transactions", json=sale(line("COF", 1000, 2), card=anna["card"], id="S-RET"))
    for quantity in (-1, 0, 3, 2**63, "1e400"):
        refused(api.post("/transactions/S-RET/returns", json=return_of(("COF", quantity))), 409, 422)
    assert api.get(f"/cards/{anna['card']}").get_json()["balance"] == 20
    assert api.get("/transactions/S-RET").get_json()["returns"] == []


def test_a_page_size_that_is_no_page_size_is_refused(api):
    anna = enrol(api)
    for query in ("limit=0", "limit=-1", "limit=100000000000000000000000", "limit=ten", "limit=1e3"):
        refused(api.get(f"/customers/{anna['id']}/ledger?{query}"), 422)
        refused(api.get(f"/customers/{anna['id']}/transactions?{query}"), 422)


def test_an_id_too_big_for_the_database_is_simply_not_found(api):
    for path in ("/customers/99999999999999999999", "/customers/99999999999999999999/ledger"):
        refused(api.get(path), 404)
    refused(api.post("/follow-ups/99999999999999999999/resolve", json={"user": "anna", "resolution": "called back"}), 404)


# -- text -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "Anna\x00Schmidt"},
        {"name": "Anna", "staff_notes": "likes\x00tea"},
        {"name": "Anna", "preferred_name": "\x00"},
    ],
    ids=["NUL in the name", "NUL in the notes", "NUL alone"],
)
def test_a_nul_character_in_a_customer_is_refused_on_either_database(api, fields):
    refused(api.post("/customers", json=fields), 422)
    assert api.get("/customers?q=Anna").get_json() == []


def test_a_nul_character_in_a_sale_is_refused_on_either_database(api):
    anna = enrol(api)
    for bad in (line("CO\x00F"), line(description="Coffee\x00"), line(category="drinks\x00")):
        refused(api.post("/transactions", json=sale(bad, card=anna["card"])), 422)
    refused(api.post("/transactions", json=sale(line(), card=anna["card"], id="S\x00")), 422)
    refused(api.post("/transactions", json={**sale(line(), card=anna["card"]), "cashier": "an\x00na"}), 422)
    nothing_written(api, anna)


def test_nul_and_broken_utf8_in_the_path_and_query_are_refused_or_not_found(api):
    for path in ("/cards/27%00", "/cards/%FF%FE", "/transactions/S%00X", "/customers?q=%FF", "/customers?q=%00"):
        r = api.get(path)
        assert r.status_code in (200, 404, 422), (path, r.status_code)
        assert r.content_type == "application/json" if r.status_code == 200 else r.content_type == PROBLEM
        if r.status_code == 200:
            assert r.get_json() == []


def test_unknown_fields_on_every_kind_of_request_are_named_and_refused(api):
    anna = enrol(api)
    api.post("/transactions", json=sale(line("COF", 1000, 2), card=anna["card"], id="S-UNK"))
    attempts = [
        ("/customers", {"name": "Bea", "is_admin": True}, "is_admin"),
        (f"/customers/{anna['id']}/adjustments", {"points": 5, "reason": "x", "user": "anna", "role": "manager"}, "role"),
        ("/transactions/S-UNK/returns", {**return_of(("COF", 1)), "refund_to": "cash"}, "refund_to"),
        ("/transactions/S-UNK/returns", {**return_of(("COF", 1)), "lines": [{"sku": "COF", "quantity": 1, "points": 99}]},
         "lines.0.points"),
        ("/transactions/S-UNK/claim", {"card_number": anna["card"], "points": 1000}, "points"),
    ]
    for path, body, field in attempts:
        problem = refused(api.post(path, json=body), 422)
        assert field in {e["field"] for e in problem["errors"]}, problem
    r = api.patch(f"/customers/{anna['id']}", json={"balance": 10**6})
    assert "balance" in {e["field"] for e in refused(r, 422)["errors"]}
    assert api.get(f"/cards/{anna['card']}").get_json()["balance"] == 20


def test_deeply_nested_objects_inside_a_field_get_a_clear_4xx(api):
    anna = enrol(api)
    deep = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    raw = b'{"name": "Bea", "preferences": ' + deep + b"}"
    refused(api.post("/customers", data=raw, headers={"Content-Type": "application/json"}), 400, 413, 422)
    refused(api.patch(f"/customers/{anna['id']}", data=b'{"preferences": ' + deep + b"}",
                      headers={"Content-Type": "application/json"}), 400, 413, 422)


def test_a_body_that_is_not_declared_as_json_is_refused(api):
    anna = enrol(api)
    for content_type in ("text/plain", "application/xml", "multipart/form-data; boundary=x", ""):
        r = api.client.post("/api/v1/customers", data=b'{"name": "Bea Berg"}',
                            headers={"Authorization": f"Bearer {api.token}", "Content-Type": content_type})
        refused(r, 400, 415, 422)
    not_utf8 = api.post("/transactions", data=b"\xff\xfe\x00{", headers={"Content-Type": "application/json; charset=utf-8"})
    refused(not_utf8, 400, 422)
    assert api.get("/customers?q=Bea").get_json() == []
    nothing_written(api, anna)


def test_a_body_of_the_wrong_json_shape_is_refused(api):
    for raw in (b"[]", b'"a sale"', b"null", b"42", b"true", b"{}"):
        refused(api.post("/transactions", data=raw, headers={"Content-Type": "application/json"}), 400, 422)


# -- through the real server: what only arrives over a socket ------------------------------------------


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes and read the answer; b"" when the server hung up without one (it may close
    the connection on a request it will not read to the end, before or while we send)."""
    hung_up = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN)
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            if e.errno not in hung_up:
                raise
        try:  # whatever it answered before hanging up is still what we judge
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError as e:
            if e.errno not in hung_up:
                raise
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def refused_too_large(answer: bytes) -> bool:
    """waitress refuses an oversized body while reading it: a 413, or it hangs up mid-upload."""
    return answer == b"" or status_of(answer) == 413


ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""What only the HTTP server sees is the same on either database: these run on SQLite."""


@pytest.fixture
def served(prepared_shop, serve):
    return serve(prepared_shop.env()), prepared_shop


@ON_SQLITE
def test_what_only_arrives_over_a_socket_is_refused_and_the_server_carries_on(served):
    server, shop = served
    authorised = b"Host: till\r\nAuthorization: Bearer " + shop.token.encode() + b"\r\nContent-Type: application/json\r\n"

    chunk = b"x" * 65536
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(16)) + b"0\r\n\r\n"
    request = b"POST /api/v1/transactions HTTP/1.1\r\n" + authorised + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    assert refused_too_large(raw_exchange(server.port, request + chunked))  # a megabyte, in chunks

    ten_megabytes = b"x" * (10 * 1024 * 1024)
    too_big = (
        b"POST /api/v1/transactions HTTP/1.1\r\n" + authorised
        + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(ten_megabytes)
    )
    assert refused_too_large(raw_exchange(server.port, too_big + ten_megabytes))
    never_came = raw_exchange(server.port, too_big + b"{}")  # the body promised never comes
    assert never_came == b"" or 400 <= status_of(never_came) < 500

    huge_header = b"GET /api/v1/rewards HTTP/1.1\r\nHost: till\r\nX-Padding: " + b"a" * 300_000 + b"\r\n\r\n"
    assert status_of(raw_exchange(server.port, huge_header)) == 431

    assert server.call("GET", f"/api/v1/cards/{shop.card}", token=shop.token)[0] == 200
    assert server.call("GET", f"/api/v1/customers/{shop.customer_id}/transactions", token=shop.token)[1] == []
    assert "Traceback" not in server.log_text()
