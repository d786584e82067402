"""The hash-chained journal and its bookkeeping tables.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_meta",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("chain_format", sa.String(40), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("genesis_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "journal",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("recorded_at", sa.String(32), nullable=False),
        sa.Column("idem_key", sa.String(255), nullable=True),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    # Partial indexes: only keyed entries and rejected entries are looked up, and most are neither.
    op.create_index(
        "ix_journal_idem_key",
        "journal",
        ["idem_key", "seq"],
        sqlite_where=sa.text("idem_key IS NOT NULL"),
        postgresql_where=sa.text("idem_key IS NOT NULL"),
    )
    op.create_index(
        "ix_journal_rejected",
        "journal",
        ["seq"],
        sqlite_where=sa.text("outcome <> 'ok'"),
        postgresql_where=sa.text("outcome <> 'ok'"),
    )
    op.create_table(
        "snapshots",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("state", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "ingest_sources",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("lines_done", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    for table in ("ingest_sources", "snapshots", "journal", "ledger_head", "ledger_meta"):
        op.drop_table(table)
