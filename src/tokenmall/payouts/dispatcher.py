"""The outbox's sender, in the server's process: it queues what is to be sent (approved
withdrawals routed to the payout service, collectible events for the exchange hook) and sends
each message, signed (Standard Webhooks), until it is answered.

A message's id and body are fixed when it is queued, in the same transaction as its claim:
a retry, after a timeout or a restart, sends the same id and the same bytes (only the
signature's timestamp is new), which is what the payout services ask for ("on an unclear
result, query, then resend the same request unchanged"). A withdrawal is failed only when the
service says it failed, never because it did not answer.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa

from tokenmall.ledger.schema import item_moves, journal, ledger_head
from tokenmall.payouts import webhooks
from tokenmall.payouts.channels import (
    EXCHANGE_TOPIC,
    PAYOUT_TOPIC,
    Routes,
    Submit,
    Verdict,
    apply_outcome,
    enqueue_payouts,
    outcome_of_answer,
    outcome_of_callback,
    payout_headers,
    payout_message_id,
)
from tokenmall.payouts.store import DELIVERED, PENDING, WAITING, WEBHOOK, OutboxRow, PayoutStore

log = logging.getLogger("tokenmall.payouts")

EXCHANGE_CURSOR = "exchange"
COLLECTIBLE_OPS = {
    "issue_collection": "collectible.issued",
    "claim_collectible": "collectible.claimed",
    "gift_collectible": "collectible.gifted",
    "use_collectible": "collectible.used",
}
ANSWER_BYTES_MAX = 64 * 1024


@dataclass(frozen=True)
class Hook:
    """Where a kind of message goes, and the secret that signs it."""

    url: str
    secret: str

    def __post_init__(self) -> None:
        webhooks.secret_key(self.secret)  # WebhookConfigError now, not at the first send
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"{self.url!r}: a hook's URL starts with http:// or https://")


@dataclass(frozen=True)
class DispatchSettings:
    payout: Hook | None = None  # the payout service (None: no webhook channel)
    exchange: Hook | None = None  # the exchange hook (off by default)
    routes: Routes = field(default_factory=Routes)
    poll_s: float = 0.5  # how often to look for new work
    timeout_s: float = 10.0  # one request's limit
    backoff_s: float = 1.0  # the first retry's delay; doubled each time
    backoff_max_s: float = 600.0
    query_after_s: float = 300.0  # when a service said "processing": ask again after this
    concurrency: int = 8  # requests in flight
    claim_max: int = 200  # withdrawals claimed per round
    scan_max: int = 5_000  # journal entries the exchange hook reads per round
    send_max: int = 200  # messages sent per round

    @property
    def active(self) -> bool:
        return self.payout is not None or self.exchange is not None


class Dispatcher:
    """Runs `round` every `poll_s` until stopped. Each round: queue new work, then send what
    is due. Tests call `round` directly."""

    def __init__(
        self,
        payouts: PayoutStore,
        settings: DispatchSettings,
        submit: Submit,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.payouts = payouts
        self.settings = settings
        self.submit = submit
        self.clock_ms = clock_ms
        self._head_seen = -1
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def start(self) -> None:
        if self.settings.active and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="dispatcher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while True:
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup: log it, try again next round
                log.exception("payout dispatcher round failed")
            await asyncio.sleep(self.settings.poll_s)

    async def round(self) -> int:
        """Queue new work, send what is due; the number of messages sent."""
        head = await asyncio.to_thread(self._head)
        if head != self._head_seen:  # nothing new in the journal: nothing new to queue
            await asyncio.to_thread(self._queue_work)
            self._head_seen = head
        due = await asyncio.to_thread(self.payouts.due, self.clock_ms(), self.settings.send_max)
        if not due:
            return 0
        limit = asyncio.Semaphore(self.settings.concurrency)

        async def one(row: OutboxRow) -> None:
            async with limit:
                await self._send(row)

        await asyncio.gather(*(one(row) for row in due))
        return len(due)

    def _head(self) -> int:
        with self.payouts.store.reading() as connection:
            seq = connection.execute(sa.select(ledger_head.c.seq)).scalar_one_or_none()
        return int(seq or 0)

    def _queue_work(self) -> None:
        if self.settings.payout is not None:
            enqueue_payouts(self.payouts, self.settings.routes, self.settings.claim_max)
        if self.settings.exchange is not None:
            enqueue_exchange_events(self.payouts, self.settings.scan_max)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.settings.timeout_s, follow_redirects=False
            )
        return self._client

    async def _send(self, row: OutboxRow) -> None:
        hook = self.settings.payout if row.topic == PAYOUT_TOPIC else self.settings.exchange
        if hook is None:  # the hook was switched off: keep the message for when it is back
            return
        body = row.body.encode()
        now_ms = self.clock_ms()
        headers = webhooks.headers(hook.secret, row.id, now_ms // 1000, body)
        if row.topic == PAYOUT_TOPIC:
            headers |= payout_headers(json.loads(row.body)["data"]["withdrawal"])
        else:
            headers["content-type"] = "application/json"
        try:
            response = await self._http().post(hook.url, content=body, headers=headers)
        except httpx.HTTPError as error:  # timeout, refused, reset: unclear, so resend later
            await self._retry(row, None, f"{type(error).__name__}: {error}"[:300])
            return
        answer = _json_or_none(response.content[:ANSWER_BYTES_MAX])
        if not 200 <= response.status_code < 300:
            await self._retry(row, response.status_code, response.text[:300])
            return
        if row.topic != PAYOUT_TOPIC:
            await asyncio.to_thread(
                self.payouts.attempted, row.id, DELIVERED, 0, response.status_code, None
            )
            return
        data = json.loads(row.body)["data"]
        outcome = outcome_of_answer(data["withdrawal"], data["amount_fen"], answer)
        if outcome is None:  # "processing": the callback will say; ask again later if not
            await asyncio.to_thread(
                self.payouts.attempted,
                row.id,
                WAITING,
                now_ms + int(self.settings.query_after_s * 1000),
                response.status_code,
                None,
            )
            return
        verdict = await apply_outcome(
            self.payouts, self.submit, outcome, WEBHOOK, "channel:webhook"
        )
        await self._settled(row, verdict, response.status_code)

    async def _settled(self, row: OutboxRow, verdict: Verdict, status: int) -> None:
        if verdict.final:
            await asyncio.to_thread(self.payouts.attempted, row.id, DELIVERED, 0, status, None)
            return
        # The service's word could not be applied (a conflict, a bad reference): keep asking
        # slowly and show why; finance sees it in the payout list.
        log.warning("payout %s: %s", row.id, verdict.detail)
        await asyncio.to_thread(
            self.payouts.attempted,
            row.id,
            WAITING,
            self.clock_ms() + int(self.settings.backoff_max_s * 1000),
            status,
            f"{verdict.code}: {verdict.detail}",
        )

    async def _retry(self, row: OutboxRow, status: int | None, error: str) -> None:
        delay_s = min(self.settings.backoff_s * 2**row.attempts, self.settings.backoff_max_s)
        state = WAITING if row.state == WAITING else PENDING
        await asyncio.to_thread(
            self.payouts.attempted,
            row.id,
            state,
            self.clock_ms() + int(delay_s * 1000),
            status,
            error,
        )


async def receive_callback(
    payouts: PayoutStore,
    submit: Submit,
    secret: str,
    headers: dict[str, str],
    body: bytes,
    now_ms: int,
    tolerance_s: int = 300,
) -> tuple[int, dict[str, Any]]:
    """A payout service's signed callback: (HTTP status, answer). Refused, changing nothing:
    a bad signature or stale timestamp (401), a message id seen before (409), a malformed
    body (422), an outcome the ledger cannot take (409)."""
    try:
        message_id = webhooks.verify(secret, headers, body, now_ms // 1000, tolerance_s)
    except webhooks.WebhookRefused as refused:
        return 401, {"code": refused.code, "detail": str(refused)}
    outcome = outcome_of_callback(body)
    if isinstance(outcome, str):
        return 422, {"code": "invalid_callback", "detail": outcome}
    # Remember the id first: of two deliveries of one message at once, one goes on.
    keep_ms = 2 * tolerance_s * 1000 + 60_000
    if not await asyncio.to_thread(payouts.remember, message_id, now_ms, keep_ms):
        return 409, {"code": "webhook_replayed", "detail": f"message {message_id} was seen"}
    try:
        verdict = await apply_outcome(payouts, submit, outcome, WEBHOOK, "channel:webhook")
    except Exception:
        await asyncio.to_thread(payouts.forget, message_id)  # let the service send it again
        raise
    if verdict.final:
        await asyncio.to_thread(payouts.delivered, payout_message_id(outcome.withdrawal))
        return 200, {"result": verdict.code, "detail": verdict.detail, "seq": verdict.seq}
    return 409, {"code": verdict.code, "detail": verdict.detail, "seq": verdict.seq}


def enqueue_exchange_events(payouts: PayoutStore, scan_max: int) -> int:
    """Queue the collectible events journaled since the hook's cursor (one transaction with
    the cursor's move: each event is queued once, with the id evt_<journal entry>)."""
    queued = 0
    with payouts.writing() as connection:
        after = payouts.cursor(connection, EXCHANGE_CURSOR)
        rows = connection.execute(
            sa.select(journal.c.seq, journal.c.recorded_at, journal.c.outcome, journal.c.command)
            .where(journal.c.seq > after)
            .order_by(journal.c.seq)
            .limit(scan_max)
        ).all()
        for seq, recorded_at, outcome, text in rows:
            command = json.loads(text)
            kind = COLLECTIBLE_OPS.get(command.get("op"))
            if outcome != "ok" or kind is None:
                continue
            data = _event_data(connection, seq, command)
            body = {"type": kind, "timestamp": recorded_at, "data": data}
            payouts.enqueue(
                connection,
                f"evt_{seq}",
                EXCHANGE_TOPIC,
                json.dumps(
                    body, ensure_ascii=False, separators=(",", ":"), sort_keys=True
                ).encode(),
            )
            queued += 1
        if rows:
            payouts.move_cursor(connection, EXCHANGE_CURSOR, rows[-1][0])
    return queued


def _event_data(connection: sa.Connection, seq: int, command: dict[str, Any]) -> dict[str, Any]:
    """An event's facts: the journal entry, and the item and holders it moved."""
    data: dict[str, Any] = {"seq": seq}
    op = command["op"]
    if op == "issue_collection":
        data |= {k: command[k] for k in ("collection", "edition", "value")}
        return data
    move = connection.execute(
        sa.select(item_moves.c.item, item_moves.c.account, item_moves.c.giver).where(
            item_moves.c.seq == seq
        )
    ).first()
    if move is not None:
        item, holder, giver = move
        data |= {"item": item, "holder": holder}
        if op == "gift_collectible":
            data["from"] = giver
    if "collection" in command:
        data["collection"] = command["collection"]
    return data


def _json_or_none(content: bytes) -> object:
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return None
