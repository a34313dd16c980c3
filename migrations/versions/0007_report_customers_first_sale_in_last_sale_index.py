"""The report summaries' last-sale index carries each customer's first sale too.

The activity report counts customers whose last visit is in a span and whose first visit is
before the range: at chain scale that span holds hundreds of thousands of customers, and reading
each one's first sale from the table took over a second. With the first sale in the index the
count reads the index alone, and the table only for the customers it counts.

Revision ID: 0007
Revises: 0006
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_report_customers_last_sale_at", table_name="report_customers")
    op.create_index("ix_report_customers_last_sale_at", "report_customers", ["last_sale_at", "customer_id", "first_sale_at"])


def downgrade() -> None:
    op.drop_index("ix_report_customers_last_sale_at", table_name="report_customers")
    op.create_index("ix_report_customers_last_sale_at", "report_customers", ["last_sale_at", "customer_id"])
