"""SPEC v2 read models: withdrawals as they stand, and the provenance of collectibles.

Revision ID: 0007
Revises: 0006

- `withdrawal_list`: each withdrawal's account, amount, status and channel reference, with the
  entries that requested it and last moved it (the review queue's filters and cursor).
- `item_moves`: every claim, gift and use of an item, by journal entry (its provenance).

Both are filled from the journal the next time a writer starts (`projected_seq` back to 0).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "withdrawal_list",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("account", sa.Text, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reference", sa.Text, nullable=True),
        sa.Column("requested_seq", sa.BigInteger, nullable=False),
        sa.Column("requested_at", sa.String(32), nullable=False),
        sa.Column("updated_seq", sa.BigInteger, nullable=False),
    )
    op.create_index("withdrawal_list_by_status", "withdrawal_list", ["status", "requested_seq"])
    op.create_index("withdrawal_list_by_account", "withdrawal_list", ["account", "requested_seq"])
    op.create_table(
        "item_moves",
        sa.Column("item", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("account", sa.Text, nullable=False),
        sa.Column("giver", sa.Text, nullable=True),
    )
    op.create_index("item_moves_by_account", "item_moves", ["account", "seq"])
    op.create_index("item_moves_by_giver", "item_moves", ["giver", "seq"])
    for table in ("statement_lines", "price_days", "dividend_blocks", "consumer_slots"):
        op.execute(f"DELETE FROM {table}")
    op.execute("UPDATE ledger_head SET projected_seq = 0")


def downgrade() -> None:
    op.drop_table("item_moves")
    op.drop_table("withdrawal_list")
