"""The simulator's HTML report: self-contained, plotly.js once, escaped scenario text, the
verdicts coloured by whether the platform loses money, and one chart per section. What the
report looks like once drawn (axes, legends, the clip control) is checked in a real browser by
test_sim_report_browser.py; these tests read the file."""

import base64
import glob
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

from tokenmall.sim import report
from tokenmall.sim.report import write_report

ROOT = Path(__file__).resolve().parent.parent

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
    """A trace's x or y: plotly writes numpy arrays as typed arrays (base64 with a dtype)."""
    if isinstance(array, dict):
        raw = base64.b64decode(array["bdata"])
        return [float(v) for v in np.frombuffer(raw, dtype=np.dtype(array["dtype"]))]
    return [float(v) for v in array]


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
    assert {Path("sim/templates/report.html"), Path("sim/templates/report.css")} <= templates
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
    assert f"Platform result at the end, day {DAYS - 1} (CNY)" in page
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
