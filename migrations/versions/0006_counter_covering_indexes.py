"""Covering indexes for the counter: a customer's sales and ledger read from the index alone.

A checkout and a card lookup read the customer's spend over the rolling year and last visit (from
their sales) and their ledger entries (to find the next points to expire, and the welcome and
birthday bonuses they hold). The sales' rows are large (each keeps the answer the till got) and a
customer's entries are spread over the ledger in time order, so on a store's database too large
to stay in memory each of those rows was a page read from disk. The indexes now carry what those
reads need, one customer's entries side by side:

- ``ix_transactions_customer_occurred``: (customer_id, occurred_at) -> + kind, eligible_spend;
- ``ix_ledger_entries_customer_lots``: (customer_id, id, points, expires_at, lot_id) -> + kind,
  cause, created_at (the daily expiry run's pass over it is unchanged);
- ``ix_ledger_entries_customer_id_id`` (customer_id, id) is the new index's prefix, and goes.

Revision ID: 0006
Revises: 0005
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

LEDGER_LOTS = ["customer_id", "id", "points", "kind", "cause", "created_at", "expires_at", "lot_id"]


def upgrade() -> None:
    op.drop_index("ix_transactions_customer_occurred", table_name="transactions")
    op.create_index("ix_transactions_customer_occurred", "transactions", ["customer_id", "occurred_at", "kind", "eligible_spend"])
    op.drop_index("ix_ledger_entries_customer_lots", table_name="ledger_entries")
    op.create_index("ix_ledger_entries_customer_lots", "ledger_entries", LEDGER_LOTS)
    op.drop_index("ix_ledger_entries_customer_id_id", table_name="ledger_entries")


def downgrade() -> None:
    op.create_index("ix_ledger_entries_customer_id_id", "ledger_entries", ["customer_id", "id"])
    op.drop_index("ix_ledger_entries_customer_lots", table_name="ledger_entries")
    op.create_index("ix_ledger_entries_customer_lots", "ledger_entries", ["customer_id", "id", "points", "expires_at", "lot_id"])
    op.drop_index("ix_transactions_customer_occurred", table_name="transactions")
    op.create_index("ix_transactions_customer_occurred", "transactions", ["customer_id", "occurred_at"])
