"""Each print job names the station whose printer prints it: ``print_jobs.station``.

Tills sharing one PostgreSQL database each run a print queue on the same table. Without an owner
every till requeued every waiting receipt at start-up, printed other tills' receipts, and listed
them on its Devices page. Now a job carries the ``station`` setting of the till that queued it.

Existing rows get NULL, "no station recorded". Nothing in the table says which till queued them
(a sale's ``till_id`` is the sales software's till, not the service instance), and guessing would
be worse than saying so. NULL rows are claimed by the first station to start after the upgrade
(``PrintJobs.claim_unowned``, one UPDATE, so each prints once): on the usual single till, SQLite
or not, that is the right one and nothing queued is lost; on a shared database a receipt still
waiting from before the upgrade may come out at another till, once.

The index serves the station's question "what is still waiting here?" at start-up and on the
Devices page, without reading every receipt ever printed.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("print_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("station", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_print_jobs_station_status", ["station", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("print_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_print_jobs_station_status")
        batch_op.drop_column("station")
