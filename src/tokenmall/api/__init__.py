"""The HTTP API (`tokenmall serve`): Litestar on uvicorn, in front of the durable ledger."""
