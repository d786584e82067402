"""How fast the pages render on a big ledger: every console, H5 and cashier page's server-side
render time (p50/p95 over --requests each), against GET /healthz and GET /v1/market measured in
the same run, and the dashboard's first paint in Chromium.

    .venv/bin/python bench/console.py [--consumers 100000] [--entries 1000000] [--requests 40]

Builds (once per --cache directory) a SQLite ledger of --entries journal entries from the
benchmarks' command mix (tests/support/workload.py: --consumers consumers with referral chains,
cash and SP orders, sells, converts, redeems, refunds, a settlement every 30,000 commands) and
a few thousand withdrawals, then starts `tokenmall serve` on it and asks each page that takes
no parameter, plus the account, statement and journal pages of a busy consumer, over one
keep-alive connection, one request at a time (server time, not queueing). The issue's bar:
p95 < 150 ms for every page, first paint < 1 s.
"""

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

# The repository's root instead of bench/ (whose http.py would shadow the standard library's).
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import httpx  # noqa: E402
from tests.support.web import STAFF_PASSWORD, chromium_path, filled, page_routes  # noqa: E402
from tests.support.workload import MixGenerator  # noqa: E402
from tests.test_api import free_port  # noqa: E402

from tokenmall.core.params import Params  # noqa: E402
from tokenmall.ledger.ledger import Ledger, Settings, Submission  # noqa: E402

PARAMS = Params().with_overrides({"referral_rates": ["0.10", "0.05"]})
BATCH = 4_096
WITHDRAWALS = 3_000
SETTLE_EVERY = 30_000


def build(path: Path, consumers: int, entries: int) -> None:
    """The ledger: the mix, then withdrawals of consumers who sold (some refused: real
    traffic). Its entries are recorded over as many days as it has settlements, the last of
    them today (a clock that moves a day at each settlement), as a live platform's would be:
    a day's report and the price history then cover one business day's entries each."""
    mix = MixGenerator(consumers, seed=7, settle_every=SETTLE_EVERY)
    commands = mix.commands(entries - WITHDRAWALS)
    sellers = sorted({c["user"] for c in commands if c["op"] == "sell"})[:WITHDRAWALS]
    commands += [
        {"op": "withdraw", "id": f"w{i}", "user": user, "amount": "1.00"}
        for i, user in enumerate(sellers)
    ]
    days = sum(1 for c in commands if c["op"] == "settle_day")
    first_day = datetime.now(UTC).replace(hour=0, minute=0, second=0) - timedelta(days=days)
    settled = [0]  # settlements sent to the ledger so far

    def clock() -> datetime:
        return first_day + timedelta(days=settled[0], seconds=1)

    def batches() -> Iterator[tuple[list[Submission], None]]:
        for first in range(0, len(commands), BATCH):
            chunk = commands[first : first + BATCH]
            yield [Submission.decoded(c) for c in chunk], None
            settled[0] += sum(1 for c in chunk if c["op"] == "settle_day")

    started = time.perf_counter()
    settings = Settings(batch_max=BATCH, clock=clock)
    with Ledger.open(f"sqlite:///{path}", settings, PARAMS) as ledger:
        done = 0
        for results in ledger.execute_all(batches()):
            done += len(results)
            if done % (BATCH * 25) < BATCH:
                print(f"  built {done:,} of {len(commands):,} entries", file=sys.stderr)
    print(
        f"built {len(commands):,} entries over {days + 1} days "
        f"in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )


def tokenmall(directory: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tokenmall.cli", *args],
        cwd=directory,
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def timed(client: httpx.Client, path: str, requests: int) -> tuple[float, float, float, int]:
    """The first request's time, then p50 and p95 in ms of GET path, and its status (each
    request in full, body read). The first is shown apart: it compiles the page's template
    and brings its rows into SQLite's cache."""
    times = []
    status = 0
    for _ in range(requests):
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        status = answer.status_code
    return times[0], statistics.median(times), percentile(times, 0.95), status


def logged_in(base: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60)
    form = client.get("/console/login").text
    csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    client.post(
        "/console/login",
        data={"csrf": csrf, "next": "/console/", "username": username, "password": STAFF_PASSWORD},
    )
    return client


def first_paint_ms(base: str, cookie: str, runs: int) -> list[float]:
    """First contentful paint of /console/ in a fresh Chromium context each run, and when its
    charts have drawn (canvas present)."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    paints = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        for _ in range(runs):
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            context.add_cookies([{"name": "tm_session", "value": cookie, "url": base}])
            page = context.new_page()
            page.goto(base + "/console/")
            page.wait_for_function(
                "performance.getEntriesByName('first-contentful-paint').length > 0"
            )
            paint = page.evaluate(
                "performance.getEntriesByName('first-contentful-paint')[0].startTime"
            )
            paints.append(float(paint))
            context.close()
        browser.close()
    return paints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--consumers", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--paints", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/tokenmall-bench-console"))
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    directory = args.cache / f"{args.consumers}-{args.entries}-days"
    ledger = directory / "tokenmall.db"
    if not ledger.exists():
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        build(directory / "building.db", args.consumers, args.entries)
        (directory / "building.db").rename(ledger)
        tokenmall(
            directory,
            "staff",
            "create",
            "boss",
            "--role",
            "admin",
            "--password-stdin",
            stdin=STAFF_PASSWORD + "\n",
        )
    admin = tokenmall(directory, "token", "create", "--role", "admin")
    port = free_port()
    # The server's own messages go to a file (a pipe nobody reads would fill and stop it).
    server_log = (directory / "serve.log").open("w")
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tokenmall.cli",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=directory,
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=server_log,
    )
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start: see {directory / 'serve.log'}")
            time.sleep(0.5)
        report(base, admin, args)
    finally:
        server.terminate()
        server.wait(60)


def report(base: str, admin: str, args: argparse.Namespace) -> None:
    api = httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {admin}"})
    busy = "u00001"  # registered first: the longest statement and the most referrals
    link = api.post("/v1/login-links", json={"account": busy}).json()["path"]
    consumer = httpx.Client(base_url=base, timeout=60)
    consumer.get(link)
    merchant = httpx.Client(base_url=base, timeout=60)
    merchant.get(api.post("/v1/login-links", json={"account": "m00"}).json()["path"])
    staff = logged_in(base, "boss")
    samples = {
        "id": busy,
        "account_id": busy,
        "seq": "500000",
        "day": "2026-12-01",
        "item": "x",
        "collection": "x",
        "batch": "x",
    }
    rows: list[tuple[str, float, float, float, int]] = []
    rows.append(("GET /healthz (baseline)", *timed(api, "/healthz", args.requests)))
    rows.append(("GET /v1/market (API baseline)", *timed(api, "/v1/market", args.requests)))
    for route in page_routes():
        if route.method != "GET" or "anyone" in route.callers or route.path.endswith(".xlsx"):
            continue
        client = (
            staff
            if route.path.startswith("/console")
            else (merchant if route.path.startswith("/shop") else consumer)
        )
        path = filled(route.path, samples)
        rows.append((f"GET {path}", *timed(client, path, args.requests)))
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    for path in (  # filters and searches people use, beside each page's plain form
        f"/console/reports?day={yesterday}",
        "/console/withdrawals?status=requested",
        "/console/accounts?kind=consumer&q=u99",
        "/console/audit/journal?op=sell",
    ):
        rows.append((f"GET {path}", *timed(staff, path, args.requests)))
    # Today's report on a live platform: the day's totals move between visits (an order each).
    moving = []
    for n in range(args.requests):
        api.post(
            "/v1/commands",
            json={
                "op": "order",
                "id": f"bench-{n}-{time.time_ns()}",
                "user": busy,
                "amount": "10.00",
            },
        )
        started = time.perf_counter()
        status = staff.get("/console/reports").status_code
        moving.append((time.perf_counter() - started) * 1000)
    rows.append(
        (
            "GET /console/reports (an order before each)",
            moving[0],
            statistics.median(moving),
            percentile(moving, 0.95),
            status,
        )
    )
    print(f"{'page':48} {'first ms':>9} {'p50 ms':>8} {'p95 ms':>8}  status")
    for name, first, p50, p95, status in rows:
        flag = "" if p95 < 150 else "  over 150 ms"
        print(f"{name:48} {first:9.1f} {p50:8.1f} {p95:8.1f}  {status}{flag}")
    if chromium_path() is not None:
        cookie = staff.cookies.get("tm_session") or ""
        paints = first_paint_ms(base, cookie, args.paints)
        print(
            f"dashboard first paint in Chromium: median {statistics.median(paints):.0f} ms "
            f"(runs: {', '.join(f'{p:.0f}' for p in paints)})"
        )
    print(
        json.dumps(
            {"consumers": args.consumers, "entries": args.entries, "requests": args.requests}
        )
    )


if __name__ == "__main__":
    main()
