"""The migrations build exactly the schema the models describe, on SQLite and on PostgreSQL."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from pos_loyalty.persistence.db import normalise_url
from pos_loyalty.persistence.migrate import alembic_config, current_revision, head_revision
from pos_loyalty.persistence.models import Base


def differences(url: str) -> list:
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            # The same options migrations/env.py uses, so autogenerate would write nothing.
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_a_migrated_database_matches_the_models_exactly(database_url):
    # Nothing is ignored: Alembic reports no spurious difference for this schema on either
    # database (the ledger's append-only triggers are not part of the metadata, so they are not
    # compared; tests of the ledger check that they refuse changes).
    assert differences(database_url) == []


def test_a_migrated_database_is_at_the_newest_revision(database_url):
    engine = create_engine(normalise_url(database_url))
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_the_sqlite_ledger_guard_keeps_every_column_but_the_reason(sqlite_template):
    """The trigger that lets an erasure blank a ledger reason (migration 0010) must name every
    other column of ``ledger_entries``, or a new column could be changed unchecked."""
    import sqlite3

    from pos_loyalty.persistence.models import LedgerEntry

    conn = sqlite3.connect(sqlite_template)
    try:
        guard = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'ledger_entries_no_update'").fetchone()[0]
    finally:
        conn.close()
    kept = set(LedgerEntry.__table__.columns.keys()) - {"reason"}
    assert kept and all(f'NEW."{column}" IS OLD."{column}"' in guard for column in kept), guard


def test_the_migrations_form_one_line_of_history():
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1
    assert len(script.get_bases()) == 1


def test_a_model_change_without_a_migration_would_be_noticed(sqlite_template):
    """The comparison above has teeth: a column added to a model but not migrated shows up."""
    from sqlalchemy import Column, MetaData, String

    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["customers"].append_column(Column("nickname", String(50)))
    engine = create_engine(f"sqlite:///{sqlite_template}")
    try:
        with engine.connect() as conn:
            found = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), changed)
    finally:
        engine.dispose()
    assert [(d[0], d[2], d[3].name) for d in found] == [("add_column", "customers", "nickname")]


def _stored_without_rowid(engine) -> bool:
    from sqlalchemy import text

    with engine.connect() as conn:
        sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'customer_products'")).scalar_one()
    return sql.rstrip().upper().endswith("WITHOUT ROWID")


def test_customers_favourites_survive_the_upgrade_that_stores_them_side_by_side(app, api, database_url):
    """Migration 0008 rebuilds SQLite's ``customer_products`` in key order (WITHOUT ROWID, as the
    model says), so a customer's favourites are read from a page or two. A shop upgrading keeps
    every customer's favourites as they were; downgrading gives them back too."""
    from alembic import command

    from tests.support.factories import enrol, line, sale

    anna, ben = enrol(api), enrol(api, "Ben Okafor")
    for sku, times in (("BRD", 3), ("COF", 2), ("MLK", 1)):  # two customers' products, written in turns
        for _ in range(times):
            assert api.post("/transactions", json=sale(line(sku, 199), card=anna["card"])).status_code == 201
            assert api.post("/transactions", json=sale(line(sku + "2", 99), card=ben["card"])).status_code == 201

    def favourites() -> list:
        return [api.get(f"/cards/{c['card']}").get_json()["favourites"] for c in (anna, ben)]

    before = favourites()
    assert [f["sku"] for f in before[0]] == ["BRD", "COF", "MLK"]
    db = app.extensions["pos_loyalty"].db
    db.dispose()
    engine = create_engine(normalise_url(database_url))
    cfg = alembic_config(engine)
    try:
        sqlite = engine.dialect.name == "sqlite"
        assert Base.metadata.tables["customer_products"].dialect_options["sqlite"]["with_rowid"] is False  # the model
        assert not sqlite or _stored_without_rowid(engine)  # what the migrations built
        command.downgrade(cfg, "0007")
        assert not sqlite or not _stored_without_rowid(engine)
        assert favourites() == before
        db.dispose()
        command.upgrade(cfg, "head")
        assert not sqlite or _stored_without_rowid(engine)
        assert favourites() == before
        assert api.post("/transactions", json=sale(line("MLK", 99), line("TEA", 99), card=anna["card"])).status_code == 201
        assert [(f["sku"], f["visits"]) for f in favourites()[0]] == [("BRD", 3), ("COF", 2), ("MLK", 2), ("TEA", 1)]
    finally:
        engine.dispose()
