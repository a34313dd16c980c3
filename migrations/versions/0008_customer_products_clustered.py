"""SQLite keeps each customer's products side by side: ``customer_products`` WITHOUT ROWID.

The cashier screen's favourites read a customer's rows of ``customer_products``. In a rowid table
those rows lie where each was first written: one customer's two dozen products, bought for the
first time over months and years between everyone else's, end up on as many pages, and on a
store's database too large to stay in memory each is a read from disk. A WITHOUT ROWID table is
stored in its primary key's order, (customer_id, sku), so a customer's rows share a page or two,
and the checkout's upsert of each line's product updates one b-tree instead of the key's index and
the table.

PostgreSQL has no such table; nothing changes there.

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_COLUMNS = """(
    customer_id INTEGER NOT NULL,
    sku VARCHAR(64) NOT NULL,
    description VARCHAR(200) NOT NULL,
    visits INTEGER NOT NULL,
    quantity_milli BIGINT NOT NULL,
    last_bought_at DATETIME NOT NULL,
    CONSTRAINT pk_customer_products PRIMARY KEY (customer_id, sku),
    CONSTRAINT fk_customer_products_customer_id_customers FOREIGN KEY(customer_id) REFERENCES customers (id)
)"""
_NAMES = "customer_id, sku, description, visits, quantity_milli, last_bought_at"


def _rebuild(without_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(f"CREATE TABLE _customer_products_new {_COLUMNS}{' WITHOUT ROWID' if without_rowid else ''}")
    op.execute(f"INSERT INTO _customer_products_new ({_NAMES}) SELECT {_NAMES} FROM customer_products ORDER BY customer_id, sku")
    op.execute("DROP TABLE customer_products")
    op.execute("ALTER TABLE _customer_products_new RENAME TO customer_products")


def upgrade() -> None:
    _rebuild(without_rowid=True)


def downgrade() -> None:
    _rebuild(without_rowid=False)
