"""Read models for the HTTP API: account statements and the daily price history.

Revision ID: 0003
Revises: 0002

A ledger made before this revision gets `projected_seq` 0; the writer fills the new tables from
its journal the next time it starts.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_head") as batch:
        batch.add_column(
            sa.Column("projected_seq", sa.BigInteger, nullable=False, server_default="0")
        )
    op.create_table(
        "statement_lines",
        sa.Column("account", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("op", sa.String(40), nullable=False),
        sa.Column("balances", sa.Text, nullable=False),
    )
    op.create_table(
        "price_days",
        sa.Column("day", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("price", sa.Text, nullable=False),
        sa.Column("pool", sa.Text, nullable=False),
        sa.Column("supply", sa.Text, nullable=False),
        sa.Column("sales", sa.Text, nullable=False),
        sa.Column("dividends", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("price_days")
    op.drop_table("statement_lines")
    with op.batch_alter_table("ledger_head") as batch:
        batch.drop_column("projected_seq")
