"""Everything a ledger shows, as JSON lines, for comparing what two builds wrote.

    .venv/bin/python bench/dump_ledger.py LEDGER.db OUT.jsonl

Every account's whole statement, read page by page (50 lines) through this build's own statement
read, then the price history. The recording times are left out (two ingests of the same file
differ only there). Put an older build's `src/` first on PYTHONPATH to dump with it, and compare
the two files byte for byte (`cmp`); `tokenmall state` gives the canonical state to compare.
"""

import json
import sys

import sqlalchemy as sa

from tokenmall.ledger.store import resolve_url
from tokenmall.ledger.views import open_reader

try:
    from tokenmall.services import queries
except ImportError:  # builds before issue 11 kept the reads in the API package
    from tokenmall.api import reads as queries  # type: ignore[attr-defined,no-redef]

PAGE = 50


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1].strip())
    store = open_reader(resolve_url(f"sqlite:///{sys.argv[1]}"))
    with store.reading() as connection:
        rows = connection.execute(
            sa.text("SELECT DISTINCT account FROM statement_lines ORDER BY account")
        ).scalars()
        accounts = [str(account) for account in rows]
        days = connection.execute(sa.text("SELECT * FROM price_days ORDER BY day")).all()
    lines = 0
    with open(sys.argv[2], "w") as out:
        for account in accounts:
            after = 0
            while True:
                page = queries.statement(store, account, after, PAGE)
                if page is None:
                    break
                for line in page["lines"]:
                    line.pop("recorded_at", None)
                    out.write(json.dumps([account, line], sort_keys=True) + "\n")
                    lines += 1
                if page["next_after"] is None:
                    break
                after = page["next_after"]
        for day in days:
            out.write(json.dumps([str(value) for value in day]) + "\n")
    print(f"{len(accounts):,} accounts, {lines:,} statement lines, {len(days):,} days")


if __name__ == "__main__":
    main()
