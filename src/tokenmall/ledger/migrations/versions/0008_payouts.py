"""Money out in practice (issue 13): payout claims, bank batches and imports, the outbox of
signed webhooks, the callbacks seen, and the hooks' journal cursors (ledger/schema.py says
what each holds).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payouts",
        sa.Column("withdrawal", sa.Text, primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("account", sa.Text, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("payee", sa.Text, nullable=True),
        sa.Column("batch", sa.String(40), nullable=True),
        sa.Column("outcome", sa.String(8), nullable=True),
        sa.Column("reference", sa.Text, nullable=True),
        sa.Column("claimed_by", sa.String(80), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_index("payouts_by_state", "payouts", ["state", "channel"])
    op.create_index("payouts_by_batch", "payouts", ["batch"])
    op.create_table(
        "payout_batches",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("lines", sa.Integer, nullable=False),
        sa.Column("total_fen", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "payout_imports",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("imported_at", sa.String(32), nullable=False),
        sa.Column("imported_by", sa.String(80), nullable=False),
        sa.Column("report", sa.Text, nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("topic", sa.String(16), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("outbox_due", "outbox", ["state", "next_attempt_ms"])
    op.create_table(
        "webhooks_seen",
        sa.Column("id", sa.String(256), primary_key=True),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "hook_cursors",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "hook_cursors",
        "webhooks_seen",
        "outbox",
        "payout_imports",
        "payout_batches",
        "payouts",
    ):
        op.drop_table(table)
