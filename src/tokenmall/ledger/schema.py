"""The ledger's tables (SQLAlchemy Core). Alembic migrations in `migrations/` create them;
this module is what the code reads and writes through. Keep the two in step.

Only `journal` is the record; the other tables are bookkeeping around it:
- `ledger_meta`: one row written at creation (starting parameters, genesis hash); never updated.
- `ledger_head`: one row, the last entry's seq and hash, updated in every commit, so that an
  audit notices entries deleted from the end of the journal.
- `snapshots`: the engine's complete state every N entries; caches, checked by the audit.
- `api_tokens`: the HTTP API's bearer tokens (SHA-256 of each; the token itself is shown once),
  with a public id, an optional expiry and a revocation time.
- `payments`: every payment id an applied cash order named (an index of the journal), so that
  the writer can refuse a second order for the same payment.
- `statement_lines`, `price_days`: read models for the HTTP API (each account's balances after
  every entry that changed them; each settled day's closing price), written in the same
  transaction as the entries they come from; `ledger_head.projected_seq` says how far they go.
  A settlement's dividends are not statement lines: `dividend_blocks` holds what it paid each
  consumer slot, `consumer_slots` each consumer's slot, and the lines are derived on read.
- `ingest_sources`: how far `tokenmall ingest` got in each file (by content digest), updated in
  the same transaction as the entries it applied, so that a killed ingest resumes exactly.
"""

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

ledger_meta = Table(
    "ledger_meta",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("chain_format", String(40), nullable=False),
    Column("params", Text, nullable=False),
    Column("genesis_hash", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
    # The first entry applied under SPEC v2; the ones before it are replayed as SPEC v1
    # checked them (decision 81). 1 for a ledger made under v2.
    Column("spec_v2_from", BigInteger, nullable=False, server_default="1"),
)

ledger_head = Table(
    "ledger_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    # The last entry the read models cover (behind `seq` only in a ledger made before them).
    Column("projected_seq", BigInteger, nullable=False, server_default="0"),
)

journal = Table(
    "journal",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("recorded_at", String(32), nullable=False),
    Column("idem_key", String(255), nullable=True),
    Column("outcome", String(40), nullable=False),
    Column("command", Text, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("actor", String(80), nullable=True),  # last: migration 0004 appended it
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("state", LargeBinary, nullable=False),
    Column("created_at", String(32), nullable=False),
)

ingest_sources = Table(
    "ingest_sources",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("path", Text, nullable=False),
    Column("lines_done", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("updated_at", String(32), nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("account", String(64), nullable=True),
    Column("created_at", String(32), nullable=False),
    Column("token_id", String(16), nullable=False, unique=True),  # public: "tk_" + hash[:12]
    Column("expires_at", String(32), nullable=True),
    Column("revoked_at", String(32), nullable=True),
    Column("note", String(200), nullable=True),
)

payments = Table(
    "payments",
    metadata,
    Column("payment_id", String(64), primary_key=True),
    Column("seq", BigInteger, nullable=False),  # the applied order that took the payment
)

statement_lines = Table(
    "statement_lines",
    metadata,
    Column("account", Text, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("op", String(40), nullable=False),
    Column("balances", Text, nullable=False),
)

price_days = Table(
    "price_days",
    metadata,
    Column("day", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("price", Text, nullable=False),
    Column("pool", Text, nullable=False),
    Column("supply", Text, nullable=False),
    Column("sales", Text, nullable=False),
    Column("dividends", Text, nullable=False),
)

consumer_slots = Table(
    "consumer_slots",
    metadata,
    Column("account", Text, primary_key=True),  # stored_account(id)
    Column("slot", BigInteger, nullable=False),
)

dividend_blocks = Table(
    "dividend_blocks",
    metadata,
    # block first: a statement reads one block of every settlement (projections.BLOCK_SLOTS).
    Column("block", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("payments", LargeBinary, nullable=False),
)

# SPEC v2 read models (migration 0007): each withdrawal as it stands, for the review queue and
# an account's own list; and every move of every collectible (its provenance).
withdrawal_list = Table(
    "withdrawal_list",
    metadata,
    Column("id", Text, primary_key=True),
    Column("account", Text, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reference", Text, nullable=True),
    Column("requested_seq", BigInteger, nullable=False),  # the withdraw entry: the cursor
    Column("requested_at", String(32), nullable=False),  # its recorded_at: the date filter
    Column("updated_seq", BigInteger, nullable=False),  # the entry of its last step
)
Index("withdrawal_list_by_status", withdrawal_list.c.status, withdrawal_list.c.requested_seq)
Index("withdrawal_list_by_account", withdrawal_list.c.account, withdrawal_list.c.requested_seq)

item_moves = Table(
    "item_moves",
    metadata,
    Column("item", Text, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("action", String(8), nullable=False),  # claim, gift or use
    Column("account", Text, nullable=False),  # its holder after the move (the user, for a use)
    Column("giver", Text, nullable=True),  # a gift's giver
)
Index("item_moves_by_account", item_moves.c.account, item_moves.c.seq)
Index("item_moves_by_giver", item_moves.c.giver, item_moves.c.seq)
