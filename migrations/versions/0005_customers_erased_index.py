"""An index on when a customer's account was erased.

The manager's lapsing list counts hundreds of thousands of customers at chain scale and leaves
out erased accounts; counting the few erased ones by this index, and subtracting, spares joining
every lapsing customer to its row.

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_customers_erased_at", "customers", ["erased_at"])


def downgrade() -> None:
    op.drop_index("ix_customers_erased_at", table_name="customers")
