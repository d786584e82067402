"""Services shared by the entry points (HTTP API, command line): who may act (tokens), consent to
SP payments (payment codes), and request limits. They hold no rules of the economy; those are in
`tokenmall.core`, and the record is `tokenmall.ledger`."""
