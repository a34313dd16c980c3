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
