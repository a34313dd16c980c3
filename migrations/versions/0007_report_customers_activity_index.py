"""The report summaries' last-sale index carries each customer's first sale and months too.

The activity report counts customers whose last visit is in a span, whose first visit is before
the range and who bought in the year before it (the months they bought in): at chain scale that
span holds hundreds of thousands of customers, and reading each one's first sale and months from
the table took over a second. With both in the index the count reads the index alone.

(``months`` is a short text, ~6 bytes a month bought in: PostgreSQL's limit on an index entry,
about 2,700 bytes, would be reached by a customer who shopped in every one of 450 months.)

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
    op.create_index(
        "ix_report_customers_last_sale_at", "report_customers", ["last_sale_at", "customer_id", "first_sale_at", "months"]
    )


def downgrade() -> None:
    op.drop_index("ix_report_customers_last_sale_at", table_name="report_customers")
    op.create_index("ix_report_customers_last_sale_at", "report_customers", ["last_sale_at", "customer_id"])
