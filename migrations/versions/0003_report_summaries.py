"""Summaries for the manager's reports, and the queues that feed them.

Triggers append every new ledger entry, and every card sale (or a sale that changes hands, as a
claim does), to a queue in the writing transaction itself; the reports fold the queues into the
summaries (``services.reports.refresh_summaries``). The summaries start empty, with no state: the
first report builds them from the whole ledger and every sale.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

import pos_loyalty.persistence.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UTC = pos_loyalty.persistence.models.UTCDateTime(timezone=True)

SQLITE_TRIGGERS = (
    "CREATE TRIGGER report_ledger_queue_insert AFTER INSERT ON ledger_entries "
    "BEGIN INSERT INTO report_ledger_queue (entry_id) VALUES (NEW.id); END",
    "CREATE TRIGGER report_sale_queue_insert AFTER INSERT ON transactions "
    "WHEN NEW.kind = 'sale' AND NEW.customer_id IS NOT NULL "
    "BEGIN INSERT INTO report_sale_queue (customer_id, occurred_at) VALUES (NEW.customer_id, NEW.occurred_at); END",
    "CREATE TRIGGER report_sale_queue_update AFTER UPDATE OF customer_id, occurred_at, kind ON transactions "
    "WHEN OLD.customer_id IS NOT NEW.customer_id OR OLD.occurred_at IS NOT NEW.occurred_at OR OLD.kind IS NOT NEW.kind "
    "BEGIN "
    "INSERT INTO report_sale_queue (customer_id, occurred_at) SELECT OLD.customer_id, NULL WHERE OLD.customer_id IS NOT NULL; "
    "INSERT INTO report_sale_queue (customer_id, occurred_at) SELECT NEW.customer_id, NULL WHERE NEW.customer_id IS NOT NULL; "
    "END",
    "CREATE TRIGGER report_sale_queue_delete AFTER DELETE ON transactions WHEN OLD.customer_id IS NOT NULL "
    "BEGIN INSERT INTO report_sale_queue (customer_id, occurred_at) VALUES (OLD.customer_id, NULL); END",
)

POSTGRES_TRIGGERS = (
    "CREATE FUNCTION report_queue_ledger_entry() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN INSERT INTO report_ledger_queue (entry_id) VALUES (NEW.id); RETURN NULL; END $$",
    "CREATE TRIGGER report_ledger_queue_insert AFTER INSERT ON ledger_entries "
    "FOR EACH ROW EXECUTE FUNCTION report_queue_ledger_entry()",
    "CREATE FUNCTION report_queue_sale() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF TG_OP = 'INSERT' THEN "
    "  IF NEW.kind = 'sale' AND NEW.customer_id IS NOT NULL THEN "
    "    INSERT INTO report_sale_queue (customer_id, occurred_at) VALUES (NEW.customer_id, NEW.occurred_at); "
    "  END IF; "
    "  RETURN NULL; "
    "END IF; "
    "IF OLD.customer_id IS NOT NULL THEN INSERT INTO report_sale_queue (customer_id, occurred_at) VALUES (OLD.customer_id, NULL); END IF; "
    "IF TG_OP = 'UPDATE' AND NEW.customer_id IS NOT NULL THEN "
    "  INSERT INTO report_sale_queue (customer_id, occurred_at) VALUES (NEW.customer_id, NULL); "
    "END IF; "
    "RETURN NULL; END $$",
    "CREATE TRIGGER report_sale_queue_insert AFTER INSERT ON transactions FOR EACH ROW EXECUTE FUNCTION report_queue_sale()",
    "CREATE TRIGGER report_sale_queue_update AFTER UPDATE OF customer_id, occurred_at, kind ON transactions FOR EACH ROW "
    "WHEN (OLD.customer_id IS DISTINCT FROM NEW.customer_id OR OLD.occurred_at IS DISTINCT FROM NEW.occurred_at "
    "OR OLD.kind IS DISTINCT FROM NEW.kind) EXECUTE FUNCTION report_queue_sale()",
    "CREATE TRIGGER report_sale_queue_delete AFTER DELETE ON transactions FOR EACH ROW EXECUTE FUNCTION report_queue_sale()",
)


def upgrade() -> None:
    op.create_table(
        "report_state",
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_report_state")),
    )
    op.create_table(
        "report_ledger_queue",
        sa.Column("entry_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_report_ledger_queue")),
    )
    op.create_table(
        "report_sale_queue",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_sale_queue")),
    )
    op.create_table(
        "report_customers",
        sa.Column("customer_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("first_sale_at", UTC, nullable=True),
        sa.Column("last_sale_at", UTC, nullable=True),
        sa.Column("months", sa.Text(), nullable=False),
        sa.Column("deficit", sa.BigInteger(), nullable=False),
        sa.Column("last_entry_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_report_customers")),
    )
    op.create_index("ix_report_customers_last_sale_at", "report_customers", ["last_sale_at", "customer_id"], unique=False)
    op.create_index("ix_report_customers_first_sale_at", "report_customers", ["first_sale_at"], unique=False)
    op.create_table(
        "report_open_lots",
        sa.Column("entry_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", UTC, nullable=True),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_report_open_lots")),
    )
    op.create_index("ix_report_open_lots_customer_id", "report_open_lots", ["customer_id"], unique=False)
    op.create_index("ix_report_open_lots_expires_at", "report_open_lots", ["expires_at", "customer_id", "remaining"], unique=False)
    op.create_table(
        "report_ledger_days",
        sa.Column("day_start", UTC, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("positive", sa.Boolean(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day_start", "kind", "positive", name=op.f("pk_report_ledger_days")),
    )
    op.create_table(
        "report_retention",
        sa.Column("cohort", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("month", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("cohort", "month", name=op.f("pk_report_retention")),
    )
    for statement in SQLITE_TRIGGERS if op.get_bind().dialect.name == "sqlite" else POSTGRES_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("report_ledger_queue_insert", "report_sale_queue_insert", "report_sale_queue_update", "report_sale_queue_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        op.execute("DROP TRIGGER IF EXISTS report_ledger_queue_insert ON ledger_entries")
        for name in ("report_sale_queue_insert", "report_sale_queue_update", "report_sale_queue_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON transactions")
        op.execute("DROP FUNCTION IF EXISTS report_queue_ledger_entry()")
        op.execute("DROP FUNCTION IF EXISTS report_queue_sale()")
    op.drop_table("report_retention")
    op.drop_table("report_ledger_days")
    op.drop_index("ix_report_open_lots_expires_at", table_name="report_open_lots")
    op.drop_index("ix_report_open_lots_customer_id", table_name="report_open_lots")
    op.drop_table("report_open_lots")
    op.drop_index("ix_report_customers_first_sale_at", table_name="report_customers")
    op.drop_index("ix_report_customers_last_sale_at", table_name="report_customers")
    op.drop_table("report_customers")
    op.drop_table("report_sale_queue")
    op.drop_table("report_ledger_queue")
    op.drop_table("report_state")
