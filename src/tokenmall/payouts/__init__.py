"""Money out in practice: payout channels, bank files, the outbox and reconciliation (issue 13)."""
