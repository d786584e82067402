"""One-time login links (issue 14): the signing key, and the links already used.

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
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "login_links_used",
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("used_at", sa.String(32), nullable=False),
        sa.Column("expires_s", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("login_links_used")
    op.drop_table("server_secrets")
