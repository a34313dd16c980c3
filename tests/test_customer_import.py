"""Bringing customers in from the old system's CSV file, and writing them out again."""
from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys

import pytest

from pos_loyalty.app import build_services
from pos_loyalty.config import load_settings
from pos_loyalty.domain.errors import InvalidInput
from pos_loyalty.domain.ledger import expiry_for
from pos_loyalty.services.customers import (
    EXPORT_COLUMNS,
    IMPORT_COLUMNS,
    OPTIONAL_COLUMNS,
    RejectedRow,
    check_import_columns,
    export_customers,
    import_customers,
)
from tests.support.factories import enrol, line, sale

COLUMNS = IMPORT_COLUMNS + OPTIONAL_COLUMNS


def row(**cells: str) -> dict:
    """One CSV row as the reader gives it: every column present, empty unless filled in."""
    return {c: cells.get(c, "") for c in COLUMNS}


def pos_loyalty(database_url: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    """The real command, in its own process, against the test's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POS_LOYALTY_")}
    env.update(POS_LOYALTY_DATABASE_URL=database_url, POS_LOYALTY_DATA_DIR=str(tmp_path / "cli-data"),
               POS_LOYALTY_TIMEZONE="Europe/Berlin")
    return subprocess.run([sys.executable, "-m", "pos_loyalty.cli", *args], env=env, capture_output=True, text=True,
                          encoding="utf-8", timeout=300)


def customers_named(api, name: str) -> list[dict]:
    return api.get("/customers", query_string={"q": name}).get_json()


def everyone(shop) -> list[tuple[str, int]]:
    with shop.uow(read_only=True) as uow:
        return [(c.name, c.balance) for c in uow.customers.all()]


# -- the import as a use case ----------------------------------------------------------------------


def test_imported_customers_arrive_with_their_cards_preferences_and_opening_balances(api, shop, clock):
    summary = import_customers(shop, [
        row(name="Anna Schmidt", email="Anna@Example.com", phone="030 123 4567", birthday="1985-04-12",
            preferred_name="Anni", language="de", marketing_consent="Yes", card_number="4006381333931",
            opening_balance="250", allergies="peanuts; sesame", dietary="vegetarian", staff_notes="prefers paper bags"),
        row(name="Bernd Meier", card_number="ALTKUNDE-0042", opening_balance="0", marketing_consent="no"),
        row(name="Carla Rossi"),
    ])
    assert (summary.accepted, summary.rejected, summary.opening_points) == (3, [], 250)

    anna = api.get("/cards/4006381333931").get_json()
    assert anna["greeting_name"] == "Anni" and anna["balance"] == 250
    assert anna["customer"]["email"] == "anna@example.com" and anna["customer"]["phone"] == "0301234567"
    assert anna["customer"]["marketing_consent"] is True and anna["customer"]["birthday"] == "1985-04-12"
    assert anna["customer"]["preferences"] == {"allergies": ["peanuts", "sesame"], "dietary": ["vegetarian"]}
    assert anna["customer"]["staff_notes"] == "prefers paper bags"
    [opening] = api.get(f"/customers/{anna['customer']['id']}/ledger").get_json()
    expires = expiry_for(clock.now, 12, shop.timezone)
    assert opening == {**opening, "kind": "adjust", "cause": "import", "points": 250, "user": "import",
                       "reason": "opening balance from import", "expires_at": expires.isoformat()}
    assert anna["next_expiry"]["points"] == 250

    bernd = api.get("/cards/ALTKUNDE-0042").get_json()
    assert bernd["balance"] == 0 and api.get(f"/customers/{bernd['customer']['id']}/ledger").get_json() == []
    [carla] = customers_named(api, "Carla")
    assert carla["cards"][0]["number"].startswith("27") and carla["marketing_consent"] is False


def test_rows_that_break_a_rule_are_reported_and_the_rest_imported(api, shop):
    enrol(api, "Bernd Meier", phone="030 7654321")
    summary = import_customers(shop, [
        row(name="Anna Schmidt", email="anna@example.com", card_number="4006381333931", opening_balance="100"),  # 2
        row(name="Anna Again", email="ANNA@example.com"),  # 3
        row(name="Bernd Twin", phone="(030) 765-4321"),  # 4
        row(name="Dora", birthday="15.03.1980"),  # 5
        row(name="Emil", card_number="4006381333932"),  # 6
        row(name="Frida", card_number="4006381333931"),  # 7
        row(name="Gustav", opening_balance="12.5"),  # 8
        row(name="Hanna", marketing_consent="maybe", opening_balance="-5"),  # 9
        row(),  # 10: a blank line in the spreadsheet
        row(email="nobody@example.com"),  # 11
        row(name="Carla Rossi", opening_balance="40"),  # 12
        {**row(name="Ida"), None: ["stray cell"]},  # 13
        row(name="Jonas", language="Deutsch", allergies="nuts;" + "x" * 101),  # 14
    ])
    assert summary.accepted == 2 and summary.opening_points == 140
    assert summary.rejected_rows == 10
    assert summary.rejected == [
        RejectedRow(3, "email", "the same email as row 2"),
        RejectedRow(4, "phone", "another customer already has this phone number"),
        RejectedRow(5, "birthday", "is a date written YYYY-MM-DD"),
        RejectedRow(6, "card_number", "the EAN-13 check digit is wrong"),
        RejectedRow(7, "card_number", "the same card number as row 2"),
        RejectedRow(8, "opening_balance", "is a whole number of points, 0 or more"),
        RejectedRow(9, "marketing_consent", "is true or false (yes/no, 1/0)"),
        RejectedRow(9, "opening_balance", "is a whole number of points, 0 or more"),
        RejectedRow(11, "name", "a customer needs a name"),
        RejectedRow(13, None, "this row has more cells than the file has columns"),
        RejectedRow(14, "language", "use a language code like en or de"),
        RejectedRow(14, "allergies", "must be a list of up to 50 short texts"),
    ]
    assert everyone(shop) == [("Bernd Meier", 0), ("Anna Schmidt", 100), ("Carla Rossi", 40)]


def test_nothing_is_written_when_the_import_fails_part_way(api, shop):
    class Interrupted(Exception):
        pass

    seen = []

    def progress(n):
        seen.append(n)
        if len(seen) == 2:
            raise Interrupted("the manager pressed Ctrl-C")

    with pytest.raises(Interrupted):
        import_customers(shop, [row(name="Anna", opening_balance="10"), row(name="Bernd"), row(name="Carla")], progress=progress)
    assert everyone(shop) == []
    with shop.uow(read_only=True) as uow:
        assert uow.reports.points_outstanding() == 0
        assert [a.action for a in uow.audit.recent() if a.actor == "import"] == []


def test_a_dry_run_reports_the_same_and_writes_nothing(api, shop):
    rows = [row(name="Anna", email="anna@example.com", opening_balance="10"), row(name="Anna 2", email="anna@example.com")]
    checked = import_customers(shop, rows, dry_run=True)
    assert (checked.accepted, checked.rejected) == (1, [RejectedRow(3, "email", "the same email as row 2")])
    assert everyone(shop) == []


def test_a_file_must_name_every_column_we_read_and_no_other():
    check_import_columns(COLUMNS)
    check_import_columns(EXPORT_COLUMNS)  # an exported file says "balance"
    check_import_columns(IMPORT_COLUMNS)  # allergies, dietary and staff notes may be left out
    for columns, field in [
        ([c for c in IMPORT_COLUMNS if c != "phone"], "phone"),
        ([*IMPORT_COLUMNS, "e-mail"], "e-mail"),
        ([*IMPORT_COLUMNS, "balance"], "balance"),
        ([*IMPORT_COLUMNS, "name"], "name"),
        ([], "columns"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            check_import_columns(columns)
        assert refused.value.field == field


def test_a_missing_column_stops_the_import_before_anything_is_written(api, shop):
    no_phone = {k: v for k, v in row(name="Anna").items() if k != "phone"}
    with pytest.raises(InvalidInput) as refused:
        import_customers(shop, [no_phone])
    assert "no 'phone' column" in refused.value.message
    assert customers_named(api, "Anna") == []


# -- the import and export commands ----------------------------------------------------------------


def test_the_import_command_shows_progress_and_reports_each_rejected_row(api, database_url, tmp_path):
    file = tmp_path / "old-system.csv"
    file.write_text(  # as Excel saves "CSV UTF-8": a byte order mark, and quotes where needed
        "\ufeff" + ",".join(COLUMNS) + "\r\n"
        "Zoë Ülker,zoe@example.com,+49 170 1234567,1990-02-28,Zoë,de,true,,120,\"nuts; milk\",,\"knows everyone, chatty\"\r\n"
        "Bad Birthday,,,1990-02-30,,,,,,,,\r\n"
        "Tom Baker,tom@example.com,,,,en,0,KUNDE-7,35,,vegan,\r\n",
        encoding="utf-8",
    )
    done = pos_loyalty(database_url, tmp_path, "customers", "import", str(file))
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        "2 customers imported, with 155 points of opening balances",
        "1 row rejected:",
        "  row 3, birthday: is not a real date",
    ]
    assert "importing customers" in done.stderr
    [zoe] = customers_named(api, "zoe@example.com")
    assert zoe["balance"] == 120 and zoe["preferences"] == {"allergies": ["nuts", "milk"]}
    assert zoe["staff_notes"] == "knows everyone, chatty"
    assert api.get("/cards/KUNDE-7").get_json()["balance"] == 35


def test_the_import_command_refuses_a_file_it_cannot_use_and_says_why(tmp_path):
    database_url = f"sqlite:///{tmp_path / 'never-opened.db'}"
    missing_column = tmp_path / "no-phone.csv"
    missing_column.write_text("name,email\nAnna,anna@example.com\n", encoding="utf-8")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(",".join(COLUMNS).encode() + "\nJürgen\n".encode("latin-1"))
    for args, message in [
        ([str(tmp_path / "nowhere.csv")], "cannot read"),
        ([str(missing_column)], "has no 'phone' column"),
        ([str(latin1)], "is not UTF-8 text"),
        ([str(tmp_path)], "is a directory"),
    ]:
        done = pos_loyalty(database_url, tmp_path, "customers", "import", *args)
        assert done.returncode == 1
        assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "never-opened.db").exists()


def test_the_export_leaves_out_erased_customers_and_round_trips_through_the_import(
    api, shop, clock, database_url, tmp_path, sqlite_template
):
    enrol(api, "Anna Schmidt", email="anna@example.com", phone="+49 30 1234567", birthday="1985-04-12",
          preferred_name="Anni", language="de", marketing_consent=True, staff_notes="likes \"proper\" coffee, black",
          preferences={"allergies": ["peanuts", "sesame"], "dietary": ["vegetarian"]})
    bernd = enrol(api, "Bernd Meier", card_number="KUNDE-0042")
    api.post("/transactions", json=sale(line("COF", 3000), card=bernd["card"]))
    gone = enrol(api, "Erased Person", email="gone@example.com")
    with shop.uow() as uow:
        uow.customers.get(gone["id"]).erased_at = clock.now
        uow.commit()

    first = tmp_path / "export.csv"
    done = pos_loyalty(database_url, tmp_path, "customers", "export", str(first))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"2 customers exported to {first}"
    exported = list(csv.DictReader(io.StringIO(first.read_text(encoding="utf-8"))))
    assert [r["name"] for r in exported] == ["Anna Schmidt", "Bernd Meier"]
    assert exported[0]["allergies"] == "peanuts; sesame" and exported[0]["marketing_consent"] == "true"
    assert exported[1]["card_number"] == "KUNDE-0042" and exported[1]["balance"] == "30"

    elsewhere = tmp_path / "other-shop.db"
    shutil.copyfile(sqlite_template, elsewhere)
    other = f"sqlite:///{elsewhere}"
    done = pos_loyalty(other, tmp_path, "customers", "import", str(first))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[:2] == ["2 customers imported, with 30 points of opening balances", "0 rows rejected"]
    services = build_services(load_settings({"database_url": other, "data_dir": tmp_path / "cli-data"}))
    try:
        assert export_customers(services.shop) == exported
    finally:
        services.db.dispose()
