"""The durable ledger: a hash-chained journal of commands in SQLite or PostgreSQL, one writer
with group commit, snapshots, idempotency keys, ingest, export and audit.

The rules stay in `tokenmall.core`; this package stores what the core decided and proves it.
"""
