"""SPEC v2: the rules move on, the journal stays.

Revision ID: 0006
Revises: 0005

- `ledger_meta.spec_v2_from`: the first entry applied under SPEC v2. A ledger journaled
  under v1 keeps its entries as they are; they are replayed as v1 checked them (its ids, its
  ops), and a sale they record is now money owed as cash (SPEC v2 §3: cash = cash_out).
- The statements hold SPEC v2's balance fields (cash, withdrawing, withdrawn, frozen; agents):
  those of a ledger made before this revision are rebuilt from the journal the next time a
  writer starts (`projected_seq` back to 0), as revision 0005 did.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_meta") as batch:
        batch.add_column(
            sa.Column("spec_v2_from", sa.BigInteger, nullable=False, server_default="1")
        )
    op.execute("UPDATE ledger_meta SET spec_v2_from = (SELECT seq FROM ledger_head) + 1")
    _rebuild_read_models()


def downgrade() -> None:
    with op.batch_alter_table("ledger_meta") as batch:
        batch.drop_column("spec_v2_from")
    _rebuild_read_models()


def _rebuild_read_models() -> None:
    for table in ("statement_lines", "price_days", "dividend_blocks", "consumer_slots"):
        op.execute(f"DELETE FROM {table}")
    op.execute("UPDATE ledger_head SET projected_seq = 0")
