"""An index for the daily expiry run: per customer, each ledger entry's points, expiry and lot.

``Ledger.customers_with_lots_expiring_by`` groups the whole ledger by customer to find who may
still hold points past their date; with this index that is one ordered pass over the index alone.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_ledger_entries_customer_lots",
        "ledger_entries",
        ["customer_id", "id", "points", "expires_at", "lot_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_customer_lots", table_name="ledger_entries")
