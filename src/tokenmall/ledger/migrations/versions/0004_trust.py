"""Who submitted each entry, token ids, expiry and revocation, and payments taken once.

Revision ID: 0004
Revises: 0003

- `journal.actor`: the role and token id (or "cli:user") that submitted the entry, hashed into
  the chain. Entries journaled before it have none, and keep their hashes.
- `api_tokens`: a public id (`tk_` and the first 12 hex digits of the token's hash, so existing
  tokens get theirs from the hash they already have), an optional expiry, a revocation time and
  a note.
- `payments`: each payment id (the provider's transaction number) that an applied cash order
  named, so that one payment cannot be credited twice.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("journal") as batch:
        batch.add_column(sa.Column("actor", sa.String(80), nullable=True))
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("token_id", sa.String(16), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.String(32), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.String(32), nullable=True))
        batch.add_column(sa.Column("note", sa.String(200), nullable=True))
    op.execute("UPDATE api_tokens SET token_id = 'tk_' || substr(token_hash, 1, 12)")
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column("token_id", existing_type=sa.String(16), nullable=False)
        batch.create_unique_constraint("uq_api_tokens_token_id", ["token_id"])
    op.create_table(
        "payments",
        sa.Column("payment_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("payments")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint("uq_api_tokens_token_id", type_="unique")
        for name in ("note", "revoked_at", "expires_at", "token_id"):
            batch.drop_column(name)
    with op.batch_alter_table("journal") as batch:
        batch.drop_column("actor")
