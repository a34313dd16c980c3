"""Every export of customers' data is in the audit log: a manager's download of a list of
customers to contact, and the whole customer file written by ``pos-loyalty customers export``.
The entry says who, which list or file, its window, and how many rows; never a customer."""
from __future__ import annotations

import re

from pos_loyalty.services.staff import audit_trail
from tests.support.cli import pos_loyalty
from tests.support.factories import enrol
from tests.support.staff import text_of


def audit_rows(manager) -> list[str]:
    """The audit log page's rows as a manager reads them: each row's cells as plain text."""
    page = text_of(manager.get("/panel/audit"))
    body = page[page.index("<tbody>", page.index('id="audit-log"')):]
    rows = re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in rows]


def test_a_managers_download_of_the_birthday_list_is_in_the_audit_log(api, shop, manager):
    enrol(api, "Zoë Müller", birthday="1990-06-18", email="zoe@example.org", marketing_consent=True)
    enrol(api, "Ben Berg", birthday="1985-06-16")
    assert manager.get("/panel/reports/actions").status_code == 200  # looking at the page is not an export
    assert audit_trail(shop, limit=1)[0]["action"] != "action_list.export"

    assert manager.get("/panel/reports/actions/birthdays.csv").status_code == 200

    entry = audit_trail(shop, limit=1)[0]
    assert (entry["actor"], entry["action"], entry["entity"], entry["entity_id"]) == ("mia", "action_list.export", "action_list", "birthdays")
    assert entry["after"] == {"days": 7, "rows": 2}
    newest = audit_rows(manager)[0]
    assert "mia action_list.export action_list birthdays" in newest and "days 7 rows 2" in newest
    assert "Zoë" not in newest and "zoe@example.org" not in newest


def test_each_list_downloaded_is_noted_once_with_its_own_window(api, shop, manager):
    enrol(api, "Zoë Müller", birthday="1990-06-18")
    for name in ("lapsing", "expiring", "birthdays"):
        assert manager.get(f"/panel/reports/actions/{name}.csv").status_code == 200
    exports = [(e["entity_id"], e["after"]) for e in audit_trail(shop, limit=3)]
    assert exports == [("birthdays", {"days": 7, "rows": 1}), ("expiring", {"days": 30, "rows": 0}),
                       ("lapsing", {"days": 60, "rows": 0})]


def test_a_list_that_does_not_exist_is_not_found_and_nothing_is_noted(api, shop, manager):
    before = audit_trail(shop, limit=1)
    assert manager.get("/panel/reports/actions/everyone.csv").status_code == 404
    assert audit_trail(shop, limit=1) == before


def test_the_command_line_export_of_every_customer_is_in_the_audit_log(api, shop, manager, database_url, tmp_path):
    enrol(api, "Anna Schmidt", email="anna@example.com", marketing_consent=True)
    enrol(api, "Bernd Meier")
    file = tmp_path / "customers.csv"

    done = pos_loyalty(database_url, tmp_path, "customers", "export", str(file), "--user", "mia")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"2 customers exported to {file}"

    entry = audit_trail(shop, limit=1)[0]
    assert (entry["actor"], entry["action"], entry["entity"], entry["entity_id"]) == ("mia", "customers.export", "customer", None)
    assert entry["after"] == {"rows": 2, "to": str(file.resolve())}
    newest = audit_rows(manager)[0]
    assert "mia customers.export customer" in newest and "rows 2" in newest and str(file.resolve()) in newest
    assert "Anna" not in newest and "anna@example.com" not in newest


def test_an_export_to_standard_output_is_noted_as_made_by_the_command_line(api, shop, database_url, tmp_path):
    enrol(api, "Anna Schmidt")
    done = pos_loyalty(database_url, tmp_path, "customers", "export", "-")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].startswith("Anna Schmidt,")
    entry = audit_trail(shop, limit=1)[0]
    assert (entry["actor"], entry["action"], entry["after"]) == ("cli", "customers.export", {"rows": 1, "to": "standard output"})
