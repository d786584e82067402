"""The simulator's HTML report: self-contained, plotly.js once, escaped scenario text, the
verdicts coloured by whether the platform loses money, and one chart per section, written
without plotly's Python package (sim/charts.py builds the figures). What the report looks like
once drawn (axes, legends, the clip control) is checked in a real browser by
test_sim_report_browser.py; these tests read the file."""

import glob
import json
import math
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

from tokenmall.sim import report
from tokenmall.sim.charts import Chart, bar, plain, scatter
from tokenmall.sim.report import write_report

ROOT = Path(__file__).resolve().parent.parent

DAYS = 30
RUNS = 3
CHART_IDS = (
    "chart-price",
    "chart-platform",
    "chart-parts",
    "chart-flows",
    "chart-sp",
    "chart-roi",
    "chart-cohorts",
)
NAME = "Bad <b>& name"
DESCRIPTION = "Margin 30% <script>alert(1)</script>"


def synthetic_daily(
    points: list[dict[str, str]], losing: set[int], runs: int = RUNS
) -> list[dict[str, Any]]:
    """One row per (point, run, day), days from 0 as the simulator numbers them; the points in
    `losing` end with a negative result."""
    rows = []
    run = 0
    for index, params in enumerate(points):
        for _ in range(runs):
            run += 1
            result = 0.0
            for day in range(DAYS):
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
    boxes = re.findall(r'<div class="verdict (verdict-\w+)"[^>]*>(.*?)</div>', text, re.DOTALL)
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


def check_charts(text: str, tornado: bool = False) -> None:
    """The charts in their order, numbered from 1; a sensitivity's tornado chart first."""
    charts = ("chart-tornado", *CHART_IDS) if tornado else CHART_IDS
    assert text.count('class="plotly-graph-div"') == len(charts)
    for chart_id in charts:
        assert text.count(f'id="{chart_id}"') == 1
    assert text.count("How to read this.") == len(charts)
    positions = [text.index(f'id="{chart_id}"') for chart_id in charts]
    assert positions == sorted(positions)
    titles = re.findall(r'<section class="chart">\n<h2>(\d+)\. ', text)
    assert titles == [str(n) for n in range(1, len(charts) + 1)]
    assert ('id="chart-tornado"' in text) == tornado


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
    assert '"type":"dropdown"' not in flows  # no menu of sweep points (the clip buttons stay)


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


def figure(text: str, chart_id: str) -> dict[str, Any]:
    """The data and layout plotly draws chart `chart_id` from, as the report embeds them."""
    start = text.index(f'id="{chart_id}"')
    call = text.index("Plotly.newPlot(", start)
    decoder = json.JSONDecoder()
    at = text.index("[", call)  # newPlot(id, data, layout, config)
    data, end = decoder.raw_decode(text, at)
    layout, _ = decoder.raw_decode(text, text.index("{", end))
    return {"data": data, "layout": layout}


def values(array: Any) -> list[float]:
    """A trace's x or y as numbers: the report writes numpy arrays as plain JSON lists, with
    null for NaN."""
    assert isinstance(array, list), array
    return [math.nan if v is None else float(v) for v in array]


def test_templates_ship_in_the_package() -> None:
    """The page is rendered from files next to report.py: pyproject's package-data must take
    every one of them into a wheel, or an installed tokenmall cannot write a report."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["tokenmall"]
    package = ROOT / "src" / "tokenmall"
    shipped = {
        Path(found)
        for pattern in patterns
        for found in glob.glob(pattern, root_dir=package, recursive=True)
    }
    templates = {p.relative_to(package) for p in report.TEMPLATES.iterdir() if p.is_file()}
    assert {
        Path("sim/templates/report.html"),
        Path("sim/templates/report.css"),
        Path("sim/templates/compare.html"),
    } <= templates
    assert templates <= shipped
    source = (ROOT / "src" / "tokenmall" / "sim" / "report.py").read_text(encoding="utf-8")
    assert "<html" not in source and "<table" not in source  # the page is in the templates


def test_days_count_from_zero_and_the_report_says_so(tmp_path: Path) -> None:
    points = [point_summary({}, 12, VERDICT_LOSS)]
    path = tmp_path / "report.html"
    write_report(path, summary(points, []), synthetic_daily([{}], {0}))
    text = path.read_text(encoding="utf-8")
    page = text[text.index("</head>") :]
    assert page.count("day 0 is the first simulated day") == 1
    assert f"{DAYS} days simulated, day 0 to day {DAYS - 1}" in page
    assert f"Platform position at the end, day {DAYS - 1} (CNY)" in page
    assert "LOSS from day 12" in page  # summary.json's loss_from_day as it is
    for one_based in ("since day 1", "since\nday 1"):
        assert one_based not in page
    assert "week 0" in page
    price = figure(text, "chart-price")
    assert values(price["data"][-1]["x"])[0] == 0
    for chart_id in ("chart-price", "chart-platform", "chart-flows", "chart-sp"):
        assert figure(text, chart_id)["layout"]["xaxis"]["range"] == [0, DAYS - 1]
    loss = figure(text, "chart-platform")["layout"]["shapes"]
    assert [(s["x0"], s["name"]) for s in loss if s.get("name")] == [(12, "loss from day 12")]


def test_bands_follow_the_number_of_runs(tmp_path: Path) -> None:
    """Fewer than 20 runs: the band is the range of the runs, and the page says how few there
    are beside the charts; 20 or more: the 5-95 % band, without that note."""
    few = tmp_path / "few.html"
    write_report(
        few, summary([point_summary({}, None, VERDICT_OK)], []), synthetic_daily([{}], set())
    )
    text = few.read_text(encoding="utf-8")
    assert text.count('<p class="caveat">Only 3 runs per setting') == 2  # price, platform
    price = figure(text, "chart-price")["data"]
    assert [t.get("name") for t in price] == [None, "range of 3 runs", "median"]
    # The synthetic price grows by 0.01 a run: the band's edges are runs 1 and 3, exactly.
    assert values(price[1]["y"])[0] == 1.01 and values(price[0]["y"])[0] == 1.03
    assert "5–95%" not in text[text.index("</head>") :].replace("A 5–95% band takes", "")

    many = tmp_path / "many.html"
    one = point_summary({}, None, VERDICT_OK) | {"runs": 20}
    write_report(many, summary([one], []), synthetic_daily([{}], set(), runs=20))
    text = many.read_text(encoding="utf-8")
    assert 'class="caveat"' not in text
    price = figure(text, "chart-price")["data"]
    assert [t.get("name") for t in price] == [None, "5–95% of runs", "median"]
    # 20 runs 0.01 apart: the 5th percentile is 0.95 of a step above the lowest run.
    assert abs(values(price[1]["y"])[0] - (1.01 + 0.0095)) < 1e-9
    assert "middle 90% of runs" in text


def test_warnings_and_explanations_only_when_given(tmp_path: Path) -> None:
    plain = tmp_path / "plain.html"
    write_report(plain, summary([point_summary({}, 12, VERDICT_LOSS)], []), [])
    text = plain.read_text(encoding="utf-8")
    assert 'class="warnings"' not in text and 'class="explanations"' not in text

    explained = point_summary({"margin": "0.3"}, 12, VERDICT_LOSS) | {
        "explanations": ["Dividends <b>outgrow</b> the margin.", "Week 3 pays for week 0."]
    }
    quiet = point_summary({"margin": "0.4"}, None, VERDICT_OK) | {"explanations": []}
    told = summary([explained, quiet], ["margin"]) | {"warnings": ["Only 3 runs & 30 days."]}
    path = tmp_path / "told.html"
    write_report(path, told, [])
    text = path.read_text(encoding="utf-8")
    warnings = text.index('class="warnings"')
    assert warnings < text.index('class="verdicts"')
    assert "<li>Only 3 runs &amp; 30 days.</li>" in text
    boxes = verdict_classes(text)
    loss_box = next(body for body, css in boxes.items() if css == "verdict-loss")
    assert "<li>Dividends &lt;b&gt;outgrow&lt;/b&gt; the margin.</li>" in loss_box
    assert "<li>Week 3 pays for week 0.</li>" in loss_box
    assert loss_box.index(VERDICT_LOSS.replace("&", "&amp;")) < loss_box.index("<ul")
    assert text.count('class="explanations"') == 1  # an empty list shows nothing


def test_chinese_fonts_fall_back_on_linux(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    write_report(path, summary([point_summary({}, None, VERDICT_OK)], []), [])
    text = path.read_text(encoding="utf-8")
    fallback = '"Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", sans-serif'
    assert report.FONT_FAMILY.endswith(fallback)
    css = text[text.index("<style>") : text.index("</style>")]
    assert f"font-family: {report.FONT_FAMILY};" in css
    layout = figure(text, "chart-price")["layout"]
    assert layout["font"]["family"] == report.FONT_FAMILY


def test_sweep_values_are_text_on_the_page_and_in_the_charts(tmp_path: Path) -> None:
    """A sweep value is text: escaped by the templates, and escaped for Plotly, which would
    otherwise read tags in legend and hover text as its own markup."""
    params = [{"margin": "<i>0.3</i>"}, {"margin": "0.4"}]
    points = [point_summary(params[0], 12, VERDICT_LOSS), point_summary(params[1], None, "ok")]
    path = tmp_path / "report.html"
    write_report(path, summary(points, ["margin"]), synthetic_daily(params, {0}))
    text = path.read_text(encoding="utf-8")
    assert "<i>0.3</i>" not in text
    assert '<p class="point">margin = &lt;i&gt;0.3&lt;/i&gt;</p>' in text
    assert "<td>&lt;i&gt;0.3&lt;/i&gt;</td>" in text
    names = [trace.get("name") for trace in figure(text, "chart-price")["data"]]
    assert "margin = &lt;i&gt;0.3&lt;/i&gt;" in names


def spread(median: float, ci: float | None = 100.0) -> dict[str, Any]:
    """A figure over runs as summary.json gives it; `ci`: the half width of the 95 % interval
    of its mean (None: one run, no interval)."""
    return {
        "median": median,
        "p5": median - 500.0,
        "p95": median + 500.0,
        "mean": median + 10.0,
        "ci95_low": None if ci is None else median + 10.0 - ci,
        "ci95_high": None if ci is None else median + 10.0 + ci,
    }


def positioned(
    params: dict[str, str],
    level: str,
    cash: float,
    sp_owed: float,
    treasury: float,
    ci: float | None = 100.0,
) -> dict[str, Any]:
    """A point of the current summary: the position in parts, its level, the shares."""
    position = cash - sp_owed + treasury
    loss = 5 if level == "loss" else None
    return point_summary(params, loss, f"Verdict {level}.") | {
        "verdict_level": level,
        "platform_result": spread(position, ci),
        "operator_cash": spread(cash, ci),
        "sp_owed": spread(sp_owed, ci),
        "treasury_value": spread(treasury, ci),
        "cash_owed": spread(321.0, ci),
        "ep_held": spread(4567.0, ci),
        "share_losing": 1.0 if level == "consumers lose" else 0.25,
        "value_at_risk_95": max(0.0, -(position - 500.0)),
    }


def test_the_verdict_colour_follows_its_level(tmp_path: Path) -> None:
    """Green only when the platform holds and most paying consumers do not lose: the
    order-only scenario's point (the platform gains, every consumer loses) is amber."""
    params = [{"margin": "0.1"}, {"margin": "0.3"}, {"margin": "0.5"}]
    points = [
        positioned(params[0], "loss", -900.0, 300.0, 100.0),
        positioned(params[1], "consumers lose", 500.0, 0.0, 0.0),
        positioned(params[2], "holds", 2000.0, 200.0, 50.0),
    ]
    path = tmp_path / "report.html"
    write_report(path, summary(points, ["margin"]), synthetic_daily(params, {0}))
    text = path.read_text(encoding="utf-8")
    boxes = verdict_classes(text)
    by_level = {
        next(level for level in LEVELS if f"Verdict {level}." in body): css
        for body, css in boxes.items()
    }
    assert by_level == {
        "loss": "verdict-loss",
        "consumers lose": "verdict-warn",
        "holds": "verdict-ok",
    }
    amber = next(body for body, css in boxes.items() if css == "verdict-warn")
    assert "The platform holds, most paying consumers lose" in amber
    assert "margin = 0.3" in amber and "LOSS" not in amber
    assert "1 of 3 settings end in a loss" in text
    assert "In 1 more, the platform holds while most paying consumers get back less" in text
    rows = re.findall(r'<tr(?: class="([\w-]+)")? data-level="([^"]+)">', text)
    assert rows == [("row-loss", "loss"), ("row-warn", "consumers lose"), ("", "holds")]
    css = text[text.index("<style>") : text.index("</style>")]
    assert ".verdict-warn {" in css and ".verdict-warn .badge {" in css

    # The order-only scenario's point as the simulator writes it: no loss, 100 % losing.
    order_only = positioned({}, "consumers lose", 500.0, 0.0, 0.0) | {"loss_from_day": None}
    alone = tmp_path / "order-only.html"
    write_report(alone, summary([order_only], []), synthetic_daily([{}], set()))
    assert list(verdict_classes(alone.read_text(encoding="utf-8")).values()) == ["verdict-warn"]

    # A summary from before verdict_level: the colour from loss_from_day, as it was.
    old = tmp_path / "old.html"
    write_report(old, summary([point_summary({}, None, VERDICT_OK)], []), [])
    assert list(verdict_classes(old.read_text(encoding="utf-8")).values()) == ["verdict-ok"]


LEVELS = ("loss", "consumers lose", "holds")


def table_rows(text: str, table_class: str) -> list[list[str]]:
    start = text.index(f'<table class="{table_class}">')
    body = text[text.index("<tbody>", start) : text.index("</tbody>", start)]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in body.split("</tr>")[:-1]]


def test_the_position_in_parts(tmp_path: Path) -> None:
    """The table gives the position's parts, its mean ± 95 % CI and its value at risk; a chart
    draws the last day's parts (adding up to the position) and, apart, what the pool owes; the
    platform chart draws the operator's cash beside the position."""
    params = [{"margin": "0.2"}, {"margin": "0.4"}]
    points = [
        positioned(params[0], "loss", -900.0, 300.0, 100.0),  # position -1,100
        positioned(params[1], "holds", 2000.0, 200.0, 50.0, ci=None),  # position 1,850
    ]
    rows = synthetic_daily(params, {0})
    for row in rows:
        row["operator_cash"] = row["platform_result"] + 1000.0
    path = tmp_path / "report.html"
    write_report(path, summary(points, ["margin"]), rows)
    text = path.read_text(encoding="utf-8")
    check_charts(text)

    main = table_rows(text, "points")
    assert main[0][0] == "0.2"
    # margin, runs, price p5/median/p95, position p5/median/p95, mean ± CI, value at risk
    assert main[0][5:10] == ["-¥1,600", "-¥1,100", "-¥600.00", "-¥1,090 ± ¥100.00", "¥1,600"]
    assert main[1][8:10] == ["¥1,860", "¥0.00"]  # no interval (one run): the mean alone
    assert 'class="num neg">-¥1,090 ± ¥100.00' in text
    assert main_parts(text)[0][1:5] == ["-¥900.00", "¥300.00", "¥100.00", "-¥1,100"]
    assert main_parts(text)[1][1:] == ["¥2,000", "¥200.00", "¥50.00", "¥1,850", "¥321.00", "¥4,567"]
    assert "Owed out of the pool (not the operator's money)" in text

    parts = figure(text, "chart-parts")
    left = [t for t in parts["data"] if t.get("xaxis", "x") == "x"]
    right = [t for t in parts["data"] if t.get("xaxis") == "x2"]
    assert len(left) == len(right) == len(points)
    cash, owed, own, position = values(left[0]["y"])
    assert (cash, owed, own, position) == (-890.0, -310.0, 110.0, -1090.0)  # means
    assert cash + owed + own == position
    assert left[0]["x"][1] == "− SP owed"
    assert values(right[1]["y"]) == [331.0, 4577.0]
    titles = [a["text"] for a in parts["layout"]["annotations"]]
    assert any("Owed out of the pool" in title for title in titles)

    platform = figure(text, "chart-platform")
    dashed = [t for t in platform["data"] if t.get("line", {}).get("dash") == "dash"]
    assert [t["name"] for t in dashed] == [
        f"margin = 0.2: {report.CASH_LINE}",
        f"margin = 0.4: {report.CASH_LINE}",
        f"dashed: {report.CASH_LINE}",
    ]
    first = values(dashed[0]["y"])
    result = next(t for t in platform["data"] if t.get("name", "").startswith("margin = 0.2 ·"))
    assert np.allclose(np.array(first) - np.array(values(result["y"])), 1000.0)
    how = text[text.index("<h2>2. The platform") : text.index('id="chart-platform"')]
    assert "its cash, minus the SP it still owes, plus its own EP" in how
    assert "dashed line" in how


def main_parts(text: str) -> list[list[str]]:
    return table_rows(text, "points parts")


def sensitivity_summary() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A one-at-a-time sensitivity as the runner writes it: the points sorted by their JSON
    (the base point `{}` last), each changing one setting; the bars largest swing first."""
    params: list[dict[str, str]] = [
        {"arrivals.rate": "1"},
        {"arrivals.rate": "3"},
        {"contribution_rate": "0.2"},
        {"contribution_rate": "0.4"},
        {"platform.gross_margin": "<0.3>"},
        {"platform.gross_margin": "0.5"},
        {},
    ]
    results = [500.0, 1500.0, 1500.0, -500.0, 0.0, 2000.0, 500.0]
    points = [
        positioned(p, "loss" if r < 0 else "holds", r, 0.0, 0.0)
        for p, r in zip(params, results, strict=True)
    ]
    bars = [
        ("arrivals.rate", "1", "3", 500.0, 1500.0),
        ("platform.gross_margin", "<0.3>", "0.5", 0.0, 2000.0),
        ("contribution_rate", "0.2", "0.4", 1500.0, -500.0),
    ]
    sensitivity = [
        {
            "name": name,
            "low": low,
            "high": high,
            "result_low": at_low,
            "result_high": at_high,
            "base": 500.0,
            "swing": abs(at_high - at_low),
        }
        for name, low, high, at_low, at_high in bars
    ]
    swept = ["arrivals.rate", "contribution_rate", "platform.gross_margin"]
    made = summary(points, swept) | {"sensitivity": sensitivity}
    return made, synthetic_daily(params, {3})


def test_a_sensitivity_draws_a_tornado(tmp_path: Path) -> None:
    """Bars from the base to the result at each setting's low and high value, the largest
    swing on top (the summary's order is not trusted), labelled with the values; the base
    point reads "as in the scenario", first, everywhere a point is named."""
    made, rows = sensitivity_summary()
    path = tmp_path / "report.html"
    write_report(path, made, rows)
    text = path.read_text(encoding="utf-8")
    check_charts(text, tornado=True)
    assert "<h2>1. What moves the position most</h2>" in text

    tornado = figure(text, "chart-tornado")
    low, high = tornado["data"]
    assert low["orientation"] == high["orientation"] == "h"
    assert low["y"] == ["platform.gross_margin", "contribution_rate", "arrivals.rate"]
    assert tornado["layout"]["yaxis"]["autorange"] == "reversed"  # the first row on top
    assert low["base"] == high["base"] == 500.0
    assert values(low["x"]) == [-500.0, 1000.0, 0.0]
    assert values(high["x"]) == [1500.0, -1000.0, 1000.0]
    assert low["text"] == ["&lt;0.3&gt; → ¥0.00", "0.2 → ¥1,500", "1 → ¥500.00"]
    assert high["text"] == ["0.5 → ¥2,000", "0.4 → -¥500.00", "3 → ¥1,500"]
    assert any("as in the scenario: ¥500.00" in a["text"] for a in tornado["layout"]["annotations"])

    # The base point: first, named, in the verdicts, the tables and the charts' legends.
    boxes = re.findall(r'<p class="point">(.*?)</p>', text)
    assert boxes[0] == "as in the scenario" and len(boxes) == 7
    assert "arrivals.rate = 1" in boxes and "platform.gross_margin = &lt;0.3&gt;" in boxes
    assert not [box for box in boxes if " = ," in box or box.endswith("= ")]
    assert '<th rowspan="2">Setting</th>' in text
    assert [row[0] for row in table_rows(text, "points")][:2] == [
        "as in the scenario",
        "arrivals.rate = 1",
    ]
    price = figure(text, "chart-price")["data"]
    medians = [t for t in price if t.get("hovertemplate", "").startswith("day")]
    assert [t["name"] for t in medians][:2] == ["as in the scenario", "arrivals.rate = 1"]
    for trace in medians:  # every point found its own daily rows (the others' names absent)
        assert len(values(trace["y"])) == DAYS
    swept = made["sweep_params"]
    base_rows = [row for row in rows if not any(name in row for name in swept)]
    assert len(base_rows) == RUNS * DAYS
    assert values(medians[0]["y"])[0] == np.median([r["price"] for r in base_rows if r["day"] == 0])

    # metrics.csv read back: the names a point does not set are empty strings.
    from_csv = [{**dict.fromkeys(swept, ""), **{k: str(v) for k, v in r.items()}} for r in rows]
    again = tmp_path / "csv.html"
    write_report(again, made, from_csv)
    price = figure(again.read_text(encoding="utf-8"), "chart-price")["data"]
    assert [len(values(t["y"])) for t in price if t.get("name") == "as in the scenario"] == [DAYS]


def test_the_provenance_footer(tmp_path: Path) -> None:
    """The tool, the scenario file's hash, the engine, runs and seed, and the exact parameters
    in a collapsed table (escaped; lists and booleans as JSON)."""
    made = summary([point_summary({}, None, VERDICT_OK)], []) | {
        "tool_version": "0.1.0",
        "scenario_sha256": "ab" * 32,
        "engine": "fast",
        "engine_detail": "order-only fast path (NumPy, float64)",
        "params": {
            "referral_rates": ["0.1", "0.05"],
            "exit_enabled": False,
            "contribution_rate": "0.3",
            "note": "<b>x</b>",
        },
    }
    path = tmp_path / "report.html"
    write_report(path, made, [])
    text = path.read_text(encoding="utf-8")
    footer = text[text.index('<footer class="provenance">') : text.index("</footer>")]
    assert text.index("</footer>") > text.rindex('class="plotly-graph-div"')
    assert "tokenmall 0.1.0" in footer
    assert f"<code>{'ab' * 32}</code>" in footer
    assert "order-only fast path (NumPy, float64)" in footer
    assert "3 runs per setting, seed 7" in footer
    details = footer[footer.index('<details class="params">') : footer.index("</details>")]
    assert "<summary>The exact parameters (4;" in details
    pairs = re.findall(r"<tr><td><code>(.*?)</code></td><td><code>(.*?)</code></td></tr>", details)
    assert pairs == [
        ("contribution_rate", "0.3"),
        ("exit_enabled", "false"),
        ("note", "&lt;b&gt;x&lt;/b&gt;"),
        ("referral_rates", "[&#34;0.1&#34;, &#34;0.05&#34;]"),
    ]
    # An older summary: what is not recorded says so; no parameters, no table.
    old = tmp_path / "old.html"
    write_report(old, summary([point_summary({}, None, VERDICT_OK)], []), [])
    footer = old.read_text(encoding="utf-8").split('<footer class="provenance">')[1]
    assert footer.count("not recorded") == 3 and '<details class="params">' not in footer


# A fresh interpreter writes a report and a comparison, then names every module of plotly's
# Python package (and its helper _plotly_utils) that it imported.
NO_PLOTLY = """
import json, sys
from pathlib import Path
from tokenmall.sim.report import write_comparison, write_report
made, rows, folder = json.loads(sys.stdin.read())
write_report(Path(folder) / "report.html", made, rows)
write_comparison(Path(folder) / "compare.html", ("a", made, rows), ("b", made, rows))
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("plotly", "_plotly_utils"))))
"""


def test_the_report_never_imports_plotly(tmp_path: Path) -> None:
    """plotly.js comes from the plotly package's folder, but its Python modules are never
    imported: importing and validating plotly's figures took longer than the whole report."""
    made, rows = sensitivity_summary()
    done = subprocess.run(
        [sys.executable, "-c", NO_PLOTLY],
        input=json.dumps([made, rows, str(tmp_path)]),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert json.loads(done.stdout) == []
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    check_self_contained(text)
    check_charts(text, tornado=True)
    check_self_contained((tmp_path / "compare.html").read_text(encoding="utf-8"))


def test_chart_layout_updates_merge_like_plotly() -> None:
    """update_layout and update_xaxes / update_yaxes merge nested dicts key by key; a value
    that is not a dict (a list of menus, a number) replaces the old one."""
    chart = Chart()
    chart.update_layout(title={"text": "a", "font": {"size": 13}}, margin={"l": 1, "r": 2})
    chart.update_layout(
        {"title": {"font": {"color": "red"}}, "updatemenus": [{"name": "one"}]},
        margin={"r": 3},
        height=400,
    )
    chart.update_layout(updatemenus=[{"name": "two"}], title={"x": 0})
    assert chart.layout == {
        "title": {"text": "a", "font": {"size": 13, "color": "red"}, "x": 0},
        "margin": {"l": 1, "r": 3},
        "updatemenus": [{"name": "two"}],
        "height": 400,
    }
    chart.update_xaxes(title={"text": "Day"}).update_xaxes(title={"standoff": 12}, range=[0, 9])
    assert chart.layout["xaxis"] == {"title": {"text": "Day", "standoff": 12}, "range": [0, 9]}
    # A merged dict is the chart's own: changing what was passed in leaves the layout alone.
    font = {"family": "serif"}
    chart.update_layout(font=font)
    font["family"] = "changed"
    assert chart.layout["font"] == {"family": "serif"}


def test_chart_subplots_and_lines_as_plotly_made_them() -> None:
    """One row of subplots and the lines across a plot, in the JSON plotly's make_subplots,
    add_hline and add_vline made for the report (written out here, from plotly 7.1)."""
    chart = Chart.columns(widths=[0.64, 0.36], spacing=0.1, titles=("left", "right"))
    chart.add_trace(bar(x=["a"], y=[1.0], marker={"color": "#123456"}), row=1, col=2)
    chart.update_yaxes(tickprefix="¥").update_yaxes(title={"text": "CNY"}, row=1, col=1)
    assert chart.data == [
        {"type": "bar", "x": ["a"], "y": [1.0], "marker": {"color": "#123456"}}
        | {"xaxis": "x2", "yaxis": "y2"}
    ]
    layout = chart.layout
    assert layout["xaxis"] == {"domain": [0.0, 0.5760000000000001], "anchor": "y"}
    assert layout["xaxis2"] == {"domain": [0.676, 1.0], "anchor": "y2"}
    assert layout["yaxis"] == {
        "domain": [0.0, 1.0],
        "anchor": "x",
        "tickprefix": "¥",
        "title": {"text": "CNY"},
    }
    assert layout["yaxis2"] == {"domain": [0.0, 1.0], "anchor": "x2", "tickprefix": "¥"}
    title = {"font": {"size": 16}, "showarrow": False, "xanchor": "center", "xref": "paper"}
    title |= {"y": 1.0, "yanchor": "bottom", "yref": "paper"}
    assert layout["annotations"] == [
        title | {"text": "left", "x": 0.28800000000000003},
        title | {"text": "right", "x": 0.8380000000000001},
    ]

    lines = Chart()
    lines.add_hline(y=1, line={"dash": "dash"}, annotation_text="even")
    lines.add_vline(x=500.0, line={"width": 1.5}, annotation_text="base", annotation_position="top")
    lines.add_hline(y=0, line={"color": "#222"})  # no text: no annotation
    assert lines.layout["shapes"] == [
        {"type": "line", "x0": 0, "x1": 1, "xref": "x domain", "y0": 1, "y1": 1, "yref": "y"}
        | {"line": {"dash": "dash"}},
        {"type": "line", "x0": 500.0, "x1": 500.0, "xref": "x", "y0": 0, "y1": 1}
        | {"yref": "y domain", "line": {"width": 1.5}},
        {"type": "line", "x0": 0, "x1": 1, "xref": "x domain", "y0": 0, "y1": 0, "yref": "y"}
        | {"line": {"color": "#222"}},
    ]
    note = {"showarrow": False, "yanchor": "bottom"}
    assert lines.layout["annotations"] == [
        note
        | {"text": "even", "x": 1, "xanchor": "right", "xref": "x domain"}
        | {"y": 1, "yref": "y"},
        note
        | {"text": "base", "x": 500.0, "xanchor": "center", "xref": "x"}
        | {"y": 1, "yref": "y domain"},
    ]


def test_chart_json_has_no_nan_and_cannot_end_its_script() -> None:
    """numpy values become plain JSON (NaN and infinities null: a gap in the line), and no
    string of a figure can close the <script> it is written in."""
    chart = Chart()
    name = "</script><script>alert(1)</script><!--"
    days = np.arange(4, dtype=np.int64)
    prices = np.array([1.5, np.nan, np.inf, -np.inf])
    chart.add_trace(scatter(x=days, y=prices, name=name, customdata=None, legendrank=np.int64(3)))
    chart.update_layout(height=321)
    assert chart.figure() == {
        "data": [
            {
                "type": "scatter",
                "x": [0, 1, 2, 3],
                "y": [1.5, None, None, None],
                "name": name,
                "legendrank": 3,
            }
        ],
        "layout": {"height": 321},
    }
    assert plain({"a": (np.float64(2.0), np.bool_(True), [math.nan])}) == {"a": [2.0, True, [None]]}

    snippet = chart.html("chart-x", "500px", {"responsive": True})
    assert snippet.startswith('<div style="height:321px; width:100%;"><div id="chart-x"')
    assert snippet.count("<script>") == 1 and snippet.count("</script>") == 1
    assert snippet.endswith("</script></div>")
    assert "<!--" not in snippet and "NaN" not in snippet and "Infinity" not in snippet
    drawn = figure(snippet, "chart-x")
    assert drawn["data"][0]["name"] == name  # the escapes are JSON's: the text is unchanged
    assert drawn["data"][0]["y"] == [1.5, None, None, None]
