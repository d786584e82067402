"""Settlement dividends as one row per block of consumers, not one statement line per holder.

Revision ID: 0005
Revises: 0004

- `consumer_slots`: each consumer's slot (its position among consumers, in the order they
  registered), which says where its payment sits in a settlement's rows.
- `dividend_blocks`: what each settlement paid, per block of BLOCK_SLOTS consumers: one
  unsigned 64-bit little-endian integer of fen per slot (ledger/projections.py). A statement
  line for a dividend is derived from these on read.

The statements of a ledger made before this revision held a line per holder and settlement;
they are rebuilt from the journal the next time a writer starts (`projected_seq` back to 0),
so that every ledger holds them one way.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consumer_slots",
        sa.Column("account", sa.Text, primary_key=True),
        sa.Column("slot", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "dividend_blocks",
        sa.Column("block", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("payments", sa.LargeBinary, nullable=False),
    )
    op.execute("DELETE FROM statement_lines")
    op.execute("DELETE FROM price_days")
    op.execute("UPDATE ledger_head SET projected_seq = 0")


def downgrade() -> None:
    op.drop_table("dividend_blocks")
    op.drop_table("consumer_slots")
    op.execute("DELETE FROM statement_lines")
    op.execute("DELETE FROM price_days")
    op.execute("UPDATE ledger_head SET projected_seq = 0")
