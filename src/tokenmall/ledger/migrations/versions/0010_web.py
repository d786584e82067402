"""The web pages (issue 14): staff accounts with argon2 password hashes and their lockout, and
server-side sessions of staff and of consumers, merchants and agents who came by a login link.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff",
        sa.Column("username", sa.String(32), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("disabled_at", sa.String(32)),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until_s", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "web_sessions",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("session_id", sa.String(20), nullable=False, unique=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("expires_s", sa.BigInteger, nullable=False),
        sa.Column("seen_s", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("web_sessions")
    op.drop_table("staff")
