"""Two simulation results side by side (report.write_comparison): one self-contained page with
what differs between them, the headline figures of each and their differences, and the price
and the platform's position over the days drawn over each other. The file is read here; one
test opens it in Chromium (no console error, nothing asked off the machine)."""

import csv
import html
import json
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser

from tests.support.web import DESKTOP, SHOTS
from tests.test_sim_report import (
    DAYS,
    RUNS,
    check_self_contained,
    figure,
    positioned,
    summary,
    synthetic_daily,
    values,
)
from tokenmall.sim.report import load_result, write_comparison

CHARTS = ("chart-compare-price", "chart-compare-platform")


def result(
    params: list[dict[str, str]],
    levels: list[str],
    cash: float,
    losing: set[int],
    extra: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A summary (one point per params, each at `levels`) and its daily rows."""
    points = [
        positioned(p, level, cash + 100.0 * index, 50.0, 10.0)
        for index, (p, level) in enumerate(zip(params, levels, strict=True))
    ]
    made = summary(points, sorted({name for p in params for name in p})) | {
        "tool_version": "0.1.0",
        "scenario_sha256": "ab" * 32,
        "engine": "exact",
        "engine_detail": "exact rules engine",
        "params": {"contribution_rate": "0.3", "referral_rates": ["0.1"]},
    }
    return made | (extra or {}), synthetic_daily(params, losing)


def table(text: str, setting: str | None = None) -> dict[str, list[str]]:
    """A headline table (the first, or the one under <h3>setting</h3>): row name -> cells."""
    start = text.index(f"<h3>{setting}</h3>") if setting else text.index('class="headline"')
    start = text.index('<table class="points compare">', start)
    body = text[start : text.index("</table>", start)]
    rows = re.findall(r"<tr><th>(.*?)</th>(.*?)</tr>", body, re.DOTALL)
    return {html.unescape(name): re.findall(r"<td[^>]*>(.*?)</td>", cells) for name, cells in rows}


def test_first_points_compared_with_their_differences(tmp_path: Path) -> None:
    left = result([{}], ["consumers lose"], 500.0, set())
    right = result(
        [{}],
        ["loss"],
        -900.0,
        {0},
        {
            "scenario_sha256": "cd" * 32,
            "engine": "fast",
            "engine_detail": "order-only <fast> path",
            "params": {"contribution_rate": "0.4", "referral_rates": ["0.1"], "new": True},
        },
    )
    path = tmp_path / "compare.html"
    write_comparison(path, ("before <b>", *left), ("after", *right))
    text = path.read_text(encoding="utf-8")
    check_self_contained(text)
    assert text.count('class="plotly-graph-div"') == len(CHARTS)
    assert text.count("How to read this.") == len(CHARTS)
    assert "before &lt;b&gt;" in text and "before <b>" not in text
    assert "order-only &lt;fast&gt; path" in text
    assert "Differences are after − before &lt;b&gt;." in text

    # What differs: the scenario file, and two parameters (one only on the right).
    assert "They come from\ndifferent scenario files." in text
    assert "2 parameters differ:" in text
    differ = text[text.index('class="points params-differ"') :]
    pairs = re.findall(
        r"<tr><td><code>(.*?)</code></td><td><code>(.*?)</code></td><td><code>(.*?)</code>",
        differ[: differ.index("</table>")],
    )
    assert pairs == [("contribution_rate", "0.3", "0.4"), ("new", "—", "true")]

    rows = table(text)
    assert rows["Verdict"][2] == "changed"
    assert 'class="num verdict-warn">the platform holds, most paying consumers lose' in text
    assert 'class="num verdict-loss">loss<' in text
    # Positions 500 − 50 + 10 = 460 and −900 − 50 + 10 = −940: a difference of −1,400.
    assert rows["Platform position at the end (median)"] == ["¥460.00", "-¥940.00", "-¥1,400"]
    assert rows["Platform position (mean ± 95% CI)"] == [
        "¥470.00 ± ¥100.00",
        "-¥930.00 ± ¥100.00",
        "-¥1,400",
    ]
    assert rows["Operator's cash (median)"] == ["¥500.00", "-¥900.00", "-¥1,400"]
    assert rows["SP owed (median)"][2] == "+¥0.00"
    assert rows["Consumers losing"] == ["100.0%", "25.0%", "-75.0 pp"]
    assert rows["Loss from day"] == ["never", "5", "changed"]
    assert rows["Value at risk (95%)"] == ["¥40.00", "¥1,440", "+¥1,400"]
    assert '<td class="num diff neg">-¥1,400</td>' in text
    assert "do not have the same settings" not in text

    # The two medians over each other, the right one dashed; the days axis from day 0.
    for chart_id, metric in zip(CHARTS, ("price", "platform_result"), strict=True):
        data = figure(text, chart_id)["data"]
        medians = [t for t in data if t.get("hovertemplate", "").startswith("day")]
        assert [t["name"] for t in medians] == ["before &lt;b&gt;", "after"]
        assert medians[1]["line"]["dash"] == "dash"
        assert figure(text, chart_id)["layout"]["xaxis"]["range"] == [0, DAYS - 1]
        expected = [
            sorted(r[metric] for r in rows_ if r["day"] == 0)[RUNS // 2]
            for rows_ in (left[1], right[1])
        ]
        assert [values(t["y"])[0] for t in medians] == expected


def test_matching_points_are_compared_one_by_one(tmp_path: Path) -> None:
    """The same sweep points on both sides: a table per point, and a menu of points in the
    charts; different points: the first of each, and the page says so."""
    params = [{"margin": "0.3"}, {"margin": "0.5"}]
    left = result(params, ["loss", "holds"], -200.0, {0})
    right = result(list(reversed(params)), ["holds", "holds"], 800.0, set())
    path = tmp_path / "compare.html"
    write_comparison(path, ("a", *left), ("b", *right))
    text = path.read_text(encoding="utf-8")
    assert re.findall(r"<h3>(.*?)</h3>", text) == ["margin = 0.3", "margin = 0.5"]
    # Paired by their parameters, not their order: margin 0.3 is the right's second point.
    first = table(text, "margin = 0.3")
    assert first["Operator's cash (median)"] == ["-¥200.00", "¥900.00", "+¥1,100"]
    assert table(text, "margin = 0.5")["Operator's cash (median)"][:2] == ["-¥100.00", "¥800.00"]
    price = figure(text, "chart-compare-price")
    menu = price["layout"]["updatemenus"][0]
    assert [button["label"] for button in menu["buttons"]] == ["margin = 0.3", "margin = 0.5"]
    shown = [t.get("visible", True) is not False for t in price["data"]]
    assert shown == menu["buttons"][0]["args"][0]["visible"]
    names = [t["name"] for t in price["data"] if t.get("hovertemplate", "").startswith("day")]
    assert names == ["a: margin = 0.3", "b: margin = 0.3", "a: margin = 0.5", "b: margin = 0.5"]

    other = result([{"rate": "1"}], ["holds"], 100.0, set())
    apart = tmp_path / "apart.html"
    write_comparison(apart, ("a", *left), ("b", *other))
    text = apart.read_text(encoding="utf-8")
    assert "do not have the same settings (sweep points): the first of\neach is compared" in text
    assert table(text)["Operator's cash (median)"][:2] == ["-¥200.00", "¥100.00"]
    assert '"updatemenus"' not in text[text.index('id="chart-compare-price"') :]


def write_folder(folder: Path, made: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """What `tokenmall simulate --out` writes: summary.json and metrics.csv."""
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(made), encoding="utf-8")
    columns = list(dict.fromkeys(name for row in rows for name in row))
    with (folder / "metrics.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def test_load_result_reads_a_simulate_folder(tmp_path: Path) -> None:
    made, rows = result([{}], ["holds"], 100.0, set())
    write_folder(tmp_path / "run-a", made, rows)
    label, summary_, daily = load_result(tmp_path / "run-a")
    assert label == "run-a" and summary_ == made and len(daily) == len(rows)
    assert daily[0]["price"] == str(rows[0]["price"])  # as csv reads it: text
    assert load_result(tmp_path / "run-a", "before")[0] == "before"
    # The same folder twice: the two sides are still told apart.
    path = tmp_path / "same.html"
    write_comparison(path, load_result(tmp_path / "run-a"), load_result(tmp_path / "run-a"))
    text = path.read_text(encoding="utf-8")
    assert "<th>run-a (left)</th><th>run-a (right)</th>" in text
    assert "Both come from the same scenario file." in text
    assert "The exact parameters are the same." in text
    price = figure(text, "chart-compare-price")["data"]
    assert len(values(price[-1]["y"])) == DAYS


def test_the_comparison_in_chromium(browser: Browser, tmp_path: Path) -> None:
    """The page opens from file:// with no console error and no request off the machine; both
    results' lines are drawn, and the table shows the difference."""
    params = [{"margin": "0.3"}, {"margin": "0.5"}]
    path = tmp_path / "compare.html"
    write_comparison(
        path,
        ("before", *result(params, ["loss", "holds"], -200.0, {0})),
        ("after", *result(params, ["holds", "consumers lose"], 800.0, set())),
    )
    context = browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    requests: list[str] = []
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("request", lambda request: requests.append(request.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
        page.goto(path.as_uri())
        page.wait_for_function(
            "() => [...document.querySelectorAll('.plotly-graph-div')].every((d) => d._fullLayout)",
            polling=100,
            timeout=15_000,
        )
        lines = page.evaluate(
            """() => [...document.querySelectorAll(
                 '#chart-compare-platform .scatterlayer .trace path.js-line')]
                 .filter((p) => (p.getAttribute('d') || '').includes('L')
                                && parseFloat(getComputedStyle(p).strokeWidth) > 0).length"""
        )
        assert lines == 2  # the first pair's two medians (the menu hides the other pair)
        legend = page.evaluate(
            "() => [...document.querySelectorAll('#chart-compare-platform .legendtext')]"
            ".map((e) => e.textContent)"
        )
        assert legend == ["before: margin = 0.3", "after: margin = 0.3"]
        cell = page.locator("table.compare tr", has_text="Operator's cash").first
        assert cell.inner_text().split("\t")[-1] == "+¥1,000"
        diff = page.locator("table.compare td.diff.neg").first
        assert diff.evaluate("(e) => getComputedStyle(e).color") == "rgb(183, 28, 28)"
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SHOTS / "sim-compare.png", full_page=True)
    finally:
        context.close()
    offline = ("file:", "data:", "blob:", "about:")
    assert not [url for url in requests if not url.startswith(offline)]
    assert not errors, errors
