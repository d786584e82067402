"""The simulator's HTML report: self-contained, plotly.js once, escaped scenario text, the
verdicts coloured by whether the platform loses money, and one chart per section."""

import re
from pathlib import Path
from typing import Any

from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

from tokenmall.sim.report import write_report

DAYS = 30
RUNS = 3
CHART_IDS = (
    "chart-price",
    "chart-platform",
    "chart-flows",
    "chart-sp",
    "chart-roi",
    "chart-cohorts",
)
NAME = "Bad <b>& name"
DESCRIPTION = "Margin 30% <script>alert(1)</script>"


def synthetic_daily(points: list[dict[str, str]], losing: set[int]) -> list[dict[str, Any]]:
    """One row per (point, run, day); the points in `losing` end with a negative result."""
    rows = []
    run = 0
    for index, params in enumerate(points):
        for _ in range(RUNS):
            run += 1
            result = 0.0
            for day in range(1, DAYS + 1):
                flow = (50.0 - 8.0 * day if index in losing else 40.0) + run
                result += flow
                rows.append(
                    {
                        "run": run,
                        "day": day,
                        **params,
                        "price": 1.0 + 0.02 * day + 0.01 * run,
                        "pool": 1000.0 * day,
                        "supply": 900.0 * day,
                        "consumers": 10 * day,
                        "orders": 25 * day,
                        "sales": 500.0 + run,
                        "sp_sales": 20.0,
                        "contributions": 150.0,
                        "dividends": 30.0 + day,
                        "cash_out": 5.0 * day,
                        "goods": 10.0,
                        "sp_outstanding": 40.0 * day,
                        "sp_backing": 35.0 * day,
                        "mint_funding": 0.0,
                        "platform_flow": flow,
                        "platform_result": result,
                        "exits": day % 3,
                    }
                )
    return rows


def cohorts() -> list[dict[str, Any]]:
    return [
        {
            "week": week,
            "consumers": 70,
            "money_in": 7000.0,
            "cash_out": 3000.0 - 600.0 * week,
            "sp": 500.0,
            "goods": 800.0,
            "ep_value": 4000.0 - 900.0 * week,
            "roi": (8300.0 - 1500.0 * week) / 7000.0,
            "in_profit": max(0.0, 0.6 - 0.2 * week),
        }
        for week in range(5)
    ]


def point_summary(
    params: dict[str, str], loss_from_day: int | None, verdict: str
) -> dict[str, Any]:
    return {
        "params": params,
        "runs": RUNS,
        "final_price": {"median": 1.62, "p5": 1.61, "p95": 1.63},
        "platform_result": {
            "median": -1234.5 if loss_from_day else 1500.0,
            "p5": -2000.0,
            "p95": 2500.0,
        },
        "loss_from_day": loss_from_day,
        "share_in_profit": 0.42,
        "gini": 0.37,
        "cohorts": cohorts(),
        "verdict": verdict,
    }


def summary(points: list[dict[str, Any]], sweep_params: list[str]) -> dict[str, Any]:
    return {
        "scenario": NAME,
        "description": DESCRIPTION,
        "days": DAYS,
        "runs": RUNS,
        "seed": 7,
        "sweep_params": sweep_params,
        "points": points,
    }


VERDICT_OK = "The 40% margin covers the promises over all 30 days."
VERDICT_LOSS = "From day 12 the margin no longer covers dividends & exits; late joiners pay."


def verdict_classes(text: str) -> dict[str, str]:
    """Each verdict box's text, mapped to its colour class."""
    boxes = re.findall(r'<div class="verdict (verdict-\w+)">(.*?)</div>', text, re.DOTALL)
    return {body: css for css, body in boxes}


def check_self_contained(text: str) -> None:
    banner = re.search(r"plotly\.js v[0-9.]+", get_plotlyjs())
    assert banner is not None
    assert text.count(banner.group(0)) == 1  # the bundle is embedded exactly once
    assert text.count(get_plotlyjs()[-2000:]) == 1
    head = text[: text.index("</head>")]
    assert banner.group(0) in head
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, re.IGNORECASE)
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?https?://", text, re.IGNORECASE)


def check_charts(text: str) -> None:
    assert text.count('class="plotly-graph-div"') == len(CHART_IDS)
    for chart_id in CHART_IDS:
        assert text.count(f'id="{chart_id}"') == 1
    assert text.count("How to read this.") == len(CHART_IDS)
    positions = [text.index(f'id="{chart_id}"') for chart_id in CHART_IDS]
    assert positions == sorted(positions)


def test_sweep_report(tmp_path: Path) -> None:
    params = [{"margin": "0.3", "rate": "0.2"}, {"margin": "0.4", "rate": "0.2"}]
    points = [
        point_summary(params[0], 12, VERDICT_LOSS),
        point_summary(params[1], None, VERDICT_OK),
    ]
    path = tmp_path / "report.html"
    write_report(path, summary(points, ["margin", "rate"]), synthetic_daily(params, {0}))

    assert path.exists()
    text = path.read_text(encoding="utf-8")
    check_self_contained(text)
    check_charts(text)

    assert "Bad &lt;b&gt;&amp; name" in text
    assert NAME not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script>alert(1)" not in text

    classes = verdict_classes(text)
    assert len(classes) == len(points)
    loss_box = next(body for body in classes if "dividends &amp; exits" in body)
    ok_box = next(body for body in classes if VERDICT_OK in body)
    assert classes[loss_box] == "verdict-loss"
    assert "LOSS from day 12" in loss_box
    assert "margin = 0.3, rate = 0.2" in loss_box
    assert classes[ok_box] == "verdict-ok"

    table = text[text.index('<table class="points">') : text.index("</table>")]
    assert table.count("<tr") == 2 + len(points)  # two header rows
    assert '<th rowspan="2">margin</th>' in table
    assert "-¥1,234</td>" in table and "¥1.6200" in table and "42.0%" in table

    # Aggregated, not one trace per run: the price chart has a band (2 traces) and a median
    # per point, and a menu picks the point in the per-point charts.
    price = text[text.index('id="chart-price"') : text.index('id="chart-platform"')]
    assert price.count('"mode":"lines"') == 3 * len(points)
    flows = text[text.index('id="chart-flows"') : text.index('id="chart-sp"')]
    assert '"updatemenus"' in flows


def test_no_sweep_report(tmp_path: Path) -> None:
    points = [point_summary({}, None, VERDICT_OK)]
    path = tmp_path / "out" / "report.html"
    path.parent.mkdir()
    write_report(path, summary(points, []), synthetic_daily([{}], set()))

    text = path.read_text(encoding="utf-8")
    check_self_contained(text)
    check_charts(text)
    classes = verdict_classes(text)
    assert list(classes.values()) == ["verdict-ok"]
    assert VERDICT_OK in next(iter(classes))
    assert "verdict-loss" not in "".join(classes)
    assert "varied: nothing" in text
    flows = text[text.index('id="chart-flows"') : text.index('id="chart-sp"')]
    assert '"updatemenus"' not in flows


def test_one_run_and_no_rows(tmp_path: Path) -> None:
    """A single run draws no band; a summary without daily rows still writes a page."""
    one = [point_summary({}, 3, VERDICT_LOSS)]
    rows = [row for row in synthetic_daily([{}], set()) if row["run"] == 1]
    path = tmp_path / "one.html"
    write_report(path, summary(one, []), rows)
    text = path.read_text(encoding="utf-8")
    price = text[text.index('id="chart-price"') : text.index('id="chart-platform"')]
    assert price.count('"mode":"lines"') == 1
    assert list(verdict_classes(text).values()) == ["verdict-loss"]

    empty = tmp_path / "empty.html"
    write_report(empty, summary(one, []), [])
    check_charts(empty.read_text(encoding="utf-8"))
