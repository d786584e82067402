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

from tokenmall.ledger.projections import DAY_SUMS

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
    Column("cash_owed", Text, nullable=False),
    Column("sp_outstanding", Text, nullable=False),
    Column("exits", BigInteger, nullable=False),
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

# What each UTC day's entries did, as sums (projections.DayTotals; migration 0011): the daily
# report (报表) in one primary-key read.
day_totals = Table(
    "day_totals",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    *(Column(name, BigInteger, nullable=False) for name in DAY_SUMS),
)

# Money out in practice (migration 0008, issue 13). Not read models: they hold what happened
# outside the ledger (a withdrawal handed to a payout channel, a message sent), so a rebuild of
# the read models leaves them alone. The journal stays the record of every balance.
payouts = Table(
    "payouts",
    metadata,
    # One row per withdrawal handed to a channel, inserted once (the primary key is the claim:
    # of two processes handing the same withdrawal over, one inserts and the other sees it).
    Column("withdrawal", Text, primary_key=True),
    Column("channel", String(16), nullable=False),  # manual, webhook, or by_hand
    # manual: exported (in a bank batch); webhook: sending (in the outbox); by_hand: a person
    # reports the outcome, or rejects it. `done` once the ledger holds its outcome.
    Column("state", String(16), nullable=False),
    Column("account", Text, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("payee", Text, nullable=True),  # JSON, from the withdraw command
    Column("batch", String(40), nullable=True),  # manual: the bank batch it went out in
    Column("outcome", String(8), nullable=True),  # paid or failed, once known
    Column("reference", Text, nullable=True),  # the channel's transfer number
    Column("claimed_by", String(80), nullable=False),  # who handed it over (an actor)
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
)
Index("payouts_by_state", payouts.c.state, payouts.c.channel)
Index("payouts_by_batch", payouts.c.batch)

payout_batches = Table(
    "payout_batches",
    metadata,
    Column("id", String(40), primary_key=True),  # "B" + UTC date + number, e.g. B20261201-003
    Column("created_at", String(32), nullable=False),
    Column("created_by", String(80), nullable=False),
    Column("lines", Integer, nullable=False),
    Column("total_fen", BigInteger, nullable=False),
)

payout_imports = Table(
    "payout_imports",
    metadata,
    # A bank result file imported, by the SHA-256 of its bytes, and what came of each line:
    # importing the same file again shows this report and applies nothing.
    Column("sha256", String(64), primary_key=True),
    Column("filename", Text, nullable=False),
    Column("imported_at", String(32), nullable=False),
    Column("imported_by", String(80), nullable=False),
    Column("report", Text, nullable=False),  # JSON
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", String(100), primary_key=True),  # webhook-id: the same on every retry
    Column("topic", String(16), nullable=False),  # payout or exchange
    Column("body", Text, nullable=False),  # the exact bytes sent each time (UTF-8 JSON)
    Column("created_at", String(32), nullable=False),
    Column("state", String(16), nullable=False),  # pending, waiting, delivered
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_ms", BigInteger, nullable=False),  # POSIX ms
    Column("last_status", Integer, nullable=True),  # the HTTP status of the last answer
    Column("last_error", Text, nullable=True),
)
Index("outbox_due", outbox.c.state, outbox.c.next_attempt_ms)

webhooks_seen = Table(
    "webhooks_seen",
    metadata,
    # Callbacks processed, by webhook-id: a replay of one is refused.
    Column("id", String(256), primary_key=True),
    Column("received_ms", BigInteger, nullable=False),
)

hook_cursors = Table(
    "hook_cursors",
    metadata,
    # How far a hook has read the journal (the exchange hook: collectible events).
    Column("name", String(40), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

# Login for consumers, merchants and agents (migration 0009, issue 14): they come from the mall,
# which asks for a one-time signed link (as Shopify Multipass does). The signing key is made
# once and kept here, so that the server and the command line sign alike; a link's nonce is
# noted when it is used, so that it works once.
server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", String(128), nullable=False),
    Column("created_at", String(32), nullable=False),
)

login_links_used = Table(
    "login_links_used",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("used_at", String(32), nullable=False),
    Column("expires_s", BigInteger, nullable=False),  # a used nonce is kept until it expires
)

staff = Table(
    "staff",
    metadata,
    Column("username", String(32), primary_key=True),
    Column("role", String(16), nullable=False),  # admin, finance or support
    Column("password_hash", String(200), nullable=False),  # argon2id, with its own salt
    Column("created_at", String(32), nullable=False),
    Column("disabled_at", String(32)),
    Column("failures", Integer, nullable=False, server_default="0"),  # wrong passwords in a row
    Column("locked_until_s", BigInteger, nullable=False, server_default="0"),  # POSIX seconds
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("hash", String(64), primary_key=True),  # SHA-256 of the cookie; never the cookie
    Column("session_id", String(20), nullable=False, unique=True),  # ws_…: names it in the journal
    Column("kind", String(8), nullable=False),  # staff or account
    Column("name", String(64), nullable=False),  # the staff username or the account id
    Column("role", String(16), nullable=False),
    Column("csrf", String(64), nullable=False),  # every form and HTMX request carries it
    Column("created_at", String(32), nullable=False),
    Column("expires_s", BigInteger, nullable=False),
    Column("seen_s", BigInteger, nullable=False),  # for the idle timeout
)
