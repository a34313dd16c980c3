"""The ledger stays append-only, with one exception: erasure may blank an entry's reason.

A goodwill adjustment's reason is free text a member of staff typed about the customer ("Mrs
Schmidt's order was late"), and it stayed behind when the customer's data was erased on their
request, because 0002's triggers refuse every UPDATE of the ledger. The triggers now let through
one change only: ``reason`` set to ``'[erased]'`` (``services.privacy.ERASED``) with every other
column as it was. The points, their kind, dates, lots and who made them can still never change,
and no row can be deleted.

On SQLite the trigger names each column it keeps: a migration that adds a column to
``ledger_entries`` must create this trigger again with the column in its list
(tests/test_migrations.py fails until it does). PostgreSQL compares the whole row but its reason.

Revision ID: 0010
Revises: 0009
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

MESSAGE = "ledger entries are append-only; write a new entry instead"
ERASED = "[erased]"
KEPT = ("id", "customer_id", "kind", "cause", "points", "created_at", "expires_at", "transaction_id", "lot_id", "user")


def _sqlite_kept() -> str:
    return " AND ".join(f'NEW."{c}" IS OLD."{c}"' for c in KEPT)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_update")
        op.execute(
            "CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries "
            f"WHEN NOT (NEW.reason IS '{ERASED}' AND {_sqlite_kept()}) "
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        )
    else:
        op.execute(
            "CREATE OR REPLACE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF TG_OP = 'UPDATE' AND NEW.reason IS NOT DISTINCT FROM '{ERASED}' "
            "AND to_jsonb(NEW) - 'reason' = to_jsonb(OLD) - 'reason' THEN RETURN NEW; END IF; "
            f"RAISE EXCEPTION '{MESSAGE}'; END $$"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_update")
        op.execute(
            "CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries "
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        )
    else:
        op.execute(
            "CREATE OR REPLACE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{MESSAGE}'; END $$"
        )
