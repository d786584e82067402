"""Per-day totals, and what was owed at each settlement (the console, issue 14).

Revision ID: 0011
Revises: 0010

- `day_totals`: what each UTC day's entries did, as sums (orders, sales, refunds,
  contributions, dividends, withdrawals, referral grants, agent commissions, exits), a row a
  day that every batch adds to: the daily report (报表) in one read.
- `price_days` gains `cash_owed`, `sp_outstanding` and `exits` (so far) at each settlement:
  the overview's chart of the pool against what is owed, day by day.

The read models are filled again from the journal the next time a writer starts
(`projected_seq` back to 0), as migration 0007 did.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# As projections.DAY_SUMS was when this migration was written (a migration does not change).
SUMS = (
    "cash_orders",
    "sales_fen",
    "refunds",
    "refunds_fen",
    "contributions_fen",
    "settlements",
    "dividends_fen",
    "withdrawals_requested",
    "withdrawals_requested_fen",
    "withdrawals_paid",
    "withdrawals_paid_fen",
    "withdrawals_returned",
    "withdrawals_returned_fen",
    "referral_units",
    "agent_commissions_fen",
    "exits",
)
READ_MODELS = (
    "statement_lines",
    "dividend_blocks",
    "consumer_slots",
    "withdrawal_list",
    "item_moves",
)


def _price_days(*owed: sa.Column[Any]) -> None:
    op.create_table(
        "price_days",
        sa.Column("day", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("price", sa.Text, nullable=False),
        sa.Column("pool", sa.Text, nullable=False),
        sa.Column("supply", sa.Text, nullable=False),
        sa.Column("sales", sa.Text, nullable=False),
        sa.Column("dividends", sa.Text, nullable=False),
        *owed,
    )


def upgrade() -> None:
    op.create_table(
        "day_totals",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in SUMS),
    )
    op.drop_table("price_days")  # emptied anyway: filled again with the new columns
    _price_days(
        sa.Column("cash_owed", sa.Text, nullable=False),
        sa.Column("sp_outstanding", sa.Text, nullable=False),
        sa.Column("exits", sa.BigInteger, nullable=False),
    )
    for table in READ_MODELS:
        op.execute(f"DELETE FROM {table}")
    op.execute("UPDATE ledger_head SET projected_seq = 0")


def downgrade() -> None:
    op.drop_table("day_totals")
    op.drop_table("price_days")
    _price_days()
    for table in READ_MODELS:
        op.execute(f"DELETE FROM {table}")
    op.execute("UPDATE ledger_head SET projected_seq = 0")
