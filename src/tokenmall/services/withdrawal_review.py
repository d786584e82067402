"""提现审核 (withdrawal review): the queue's summary figures, for the console.

The rows themselves are queries.withdrawal_list (the same read as GET /v1/withdrawal-list);
this adds what the page shows above them: for the filter, how many withdrawals stand in each
status and their total, counted by SQL over the withdrawal_list read model (integers of fen).
"""

from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa

from tokenmall.ledger.schema import withdrawal_list
from tokenmall.ledger.store import Store

STATUSES: Final = ("requested", "approved", "paid", "rejected", "failed")


@dataclass(frozen=True)
class StatusFigures:
    status: str
    count: int
    amount_fen: int


def summary(
    store: Store, *, status: str | None, account: str | None, day: str | None
) -> list[StatusFigures]:
    """Each status's count and total amount (fen) among the withdrawals the filter selects
    (the UTC day they were requested, as the list's filter), every status listed."""
    table = withdrawal_list
    query = sa.select(table.c.status, sa.func.count(), sa.func.sum(table.c.amount_fen))
    if status is not None:
        query = query.where(table.c.status == status)
    if account is not None:
        query = query.where(table.c.account == account)
    if day is not None:  # requested_at is fixed-width UTC text: a day is a prefix range
        query = query.where(table.c.requested_at >= day, table.c.requested_at < day + "U")
    with store.reading() as connection:
        rows = connection.execute(query.group_by(table.c.status)).all()
    found = {row[0]: (int(row[1]), int(row[2] or 0)) for row in rows}
    return [StatusFigures(name, *found.get(name, (0, 0))) for name in STATUSES]
