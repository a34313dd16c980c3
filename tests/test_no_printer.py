"""A till without a receipt printer of ours (its own software prints) says so on a reprint."""
from tests.support.factories import line, sale


def test_a_reprint_without_a_printer_is_a_clear_conflict(api):
    api.post("/transactions", json=sale(line(), id="S-np"))
    r = api.post("/transactions/S-np/receipt")
    assert r.status_code == 409
    assert "printer" in r.get_json()["detail"]
    assert api.post("/transactions/nope/receipt").status_code in (404, 409)
