"""The screenshots in docs/console.md, made again: a fresh server with a week of history, the
main pages in Chromium (the console at 1440×900, the phone pages at 375×667), Chinese first.

    .venv/bin/python docs/screenshots.py [--out docs/images]

Needs Debian's chromium and a Chinese font (`apt-get install chromium fonts-wqy-microhei`);
without the font the Chinese shows as boxes.
"""

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from playwright.sync_api import sync_playwright  # noqa: E402
from tests.support.web import (  # noqa: E402
    DESKTOP,
    PHONE,
    WebServer,
    chromium_path,
    start_web_server,
    stop_web_server,
)

BANK = {"method": "bank", "name": "张三", "account": "6222020200001234567", "bank": "工商银行"}
CONSOLE = {
    "console-overview": "/console/",
    "console-accounts": "/console/accounts?kind=consumer",
    "console-account": "/console/accounts/u01",
    "console-withdrawals": "/console/withdrawals",
    "console-params": "/console/params",
    "console-collectibles": "/console/collectibles",
    "console-audit": "/console/audit",
    "console-reports": "/console/reports",
}
H5 = {
    "h5-home": "/h5/",
    "h5-market": "/h5/market",
    "h5-trade": "/h5/trade",
    "h5-pay": "/h5/pay",
    "h5-invite": "/h5/invite",
    "h5-risk": "/h5/risk",
}
SHOP = {"shop-cashier": "/shop/", "shop-takings": "/shop/takings", "shop-wallet": "/shop/wallet"}


def seed(server: WebServer) -> None:
    """Twelve consumers in referral chains, a merchant, an agent, a collection, seven days of
    orders, sales and settlements, and a few withdrawals waiting for review."""
    commands: list[dict[str, Any]] = [
        {"op": "set_params", "params": {"withdraw_min": "0.01"}},
        {"op": "register_merchant", "merchant": "m01"},
        {"op": "register_agent", "agent": "gz", "region": "4401"},
        {"op": "issue_collection", "collection": "dragon", "edition": 100, "value": "8.00"},
    ]
    for n in range(1, 13):
        referrer = {"referrer": f"u{(n - 1) // 3:02d}"} if n > 3 else {}
        commands.append({"op": "register", "user": f"u{n:02d}", **referrer})
    for day in range(7):
        for n in range(1, 13):
            amount = f"{100 + 37 * ((n * 7 + day * 3) % 11)}.00"
            commands.append(
                {
                    "op": "order",
                    "id": f"d{day}-{n}",
                    "user": f"u{n:02d}",
                    "amount": amount,
                    "region": "440106",
                }
            )
        commands.append({"op": "sell", "user": f"u{day + 1:02d}", "points": "3"})
        commands.append({"op": "settle_day"})
    commands += [
        {"op": "convert", "user": "u01", "points": "5"},
        {"op": "claim_collectible", "user": "u01", "collection": "dragon"},
    ]
    commands += [
        {"op": "withdraw", "id": f"w{n}", "user": f"u{n:02d}", "amount": "1.50", "payee": BANK}
        for n in range(1, 6)
    ]
    for command in commands:
        server.command(command)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as directory:
        server = start_web_server(Path(directory))
        try:
            seed(server)
            sessions = {
                "console": server.staff_client("boss").cookies["tm_session"],
                "h5": server.account_client("u01").cookies["tm_session"],
                "shop": server.account_client("m01").cookies["tm_session"],
            }
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium_path())
                for area, pages, viewport in (
                    ("console", CONSOLE, DESKTOP),
                    ("h5", H5, PHONE),
                    ("shop", SHOP, PHONE),
                ):
                    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
                    context.add_cookies(
                        [{"name": "tm_session", "value": sessions[area], "url": server.url}]
                    )
                    page = context.new_page()
                    for name, path in pages.items():
                        page.goto(server.url.rstrip("/") + path)
                        page.wait_for_load_state("networkidle")
                        page.wait_for_timeout(600)  # ECharts' entry animation
                        page.screenshot(path=str(args.out / f"{name}.png"))
                        print(f"wrote {args.out / name}.png")
                    context.close()
                browser.close()
        finally:
            stop_web_server(server)


if __name__ == "__main__":
    main()
