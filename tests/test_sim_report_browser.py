"""The simulator's report as Chromium draws it: what a reader sees, read from the SVG that
Plotly renders (tick labels, axis titles, legend entries) and from the page's DOM.

Three reports, written once for the module: `deep`, one setting whose platform result falls to
about −12,000,000 CNY over 4 runs, with a one-day spike of exits and contributions equal to the
dividends every day; `grid`, six sweep points of 20 runs each that start losing on nearby
days, with warnings and verdict explanations; and `sensitivity`, a one-at-a-time sensitivity
(a tornado chart) whose points have every verdict level. Each test opens the file (file://,
as an operator would), checks that it asked for nothing off the machine and logged no error,
and leaves a screenshot in SHOTS (the system's temporary folder).
"""

import base64
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request
from playwright.sync_api import Error as PlaywrightError

from tests.support.web import DESKTOP, SHOTS
from tests.test_sim_report import cohorts, sensitivity_summary
from tokenmall.sim.report import FONT_FAMILY, write_report

DEEP_DAYS = 60
DEEP_RUNS = 4
DEEP_LOSS_DAY = 3
SPIKE_DAY = 40
GRID_DAYS = 40
GRID_RUNS = 20
GRID_LOSS_DAYS = (10, 11, 11, 12, 13, 15)  # close together: their notes used to overprint
CHART_IDS = (
    "chart-price",
    "chart-platform",
    "chart-parts",
    "chart-flows",
    "chart-sp",
    "chart-roi",
    "chart-cohorts",
)
UNTITLED_X = ("chart-parts",)
DAY_CHARTS = ("chart-price", "chart-platform", "chart-flows", "chart-sp")
FLOW_COLOURS = {  # report.FLOWS: the colour of each daily amount's line
    "Cash sales": (0x1F, 0x77, 0xB4),
    "Dividends paid": (0xFF, 0x7F, 0x0E),
    "Contributions to the pool": (0x94, 0x67, 0xBD),
    "Cash paid out (sales of EP, 出局)": (0xD6, 0x27, 0x28),
}
EXPLANATIONS = ("Dividends grow faster than the margin.", "Week 1 pays for week 0.")
WARNING = "Only 40 days simulated: too few for the late weeks."


def deep_result(day: int, run: int) -> float:
    """Falls steadily to about −12,000,000 CNY on the last day (a little lower each run)."""
    return -12_000_000.0 * day / (DEEP_DAYS - 1) * (1 + 0.01 * run) + 50_000.0


def deep_rows() -> list[dict[str, Any]]:
    rows = []
    for run in range(DEEP_RUNS):
        for day in range(DEEP_DAYS):
            pooled = 150.0 + 2.0 * day  # the pool pays out what goes in: two equal lines
            rows.append(
                {
                    "run": run,
                    "day": day,
                    "price": 1.0 + 0.01 * day + 0.02 * run,
                    "platform_result": deep_result(day, run),
                    "sales": 600.0 + 5.0 * day + run,
                    "contributions": pooled,
                    "dividends": pooled,
                    "cash_out": 1_000_000.0 if day == SPIKE_DAY else 60.0 + day,
                    "sp_outstanding": 40.0 * day,
                    "sp_backing": 35.0 * day,
                }
            )
    return rows


def deep_summary() -> dict[str, Any]:
    final = [deep_result(DEEP_DAYS - 1, run) for run in range(DEEP_RUNS)]
    return {
        "scenario": "deep-loss",
        "description": "A thin margin, four runs.",
        "days": DEEP_DAYS,
        "runs": DEEP_RUNS,
        "seed": 1,
        "sweep_params": [],
        "points": [
            {
                "params": {},
                "runs": DEEP_RUNS,
                "final_price": {"median": 1.62, "p5": 1.61, "p95": 1.66},
                "platform_result": {
                    "median": float(np.median(final)),
                    "p5": min(final),
                    "p95": max(final),
                },
                "loss_from_day": DEEP_LOSS_DAY,
                "share_in_profit": 0.2,
                "gini": 0.5,
                "cohorts": cohorts(),
                "verdict": f"From day {DEEP_LOSS_DAY} the margin no longer covers the promises.",
            }
        ],
    }


def grid_params() -> list[dict[str, str]]:
    return [{"margin": m, "rate": r} for m in ("0.2", "0.3", "0.4") for r in ("0.1", "0.2")]


def grid_rows() -> list[dict[str, Any]]:
    rows = []
    for index, params in enumerate(grid_params()):
        for run in range(GRID_RUNS):
            for day in range(GRID_DAYS):
                rows.append(
                    {
                        "run": run,
                        "day": day,
                        **params,
                        "price": 1.0 + 0.01 * day + 0.001 * run + 0.05 * index,
                        "platform_result": 1000.0 * (GRID_LOSS_DAYS[index] - day) - run,
                        "sales": 500.0 + run,
                        "contributions": 150.0,
                        "dividends": 30.0 + day,
                        "cash_out": 5.0 * day,
                        "sp_outstanding": 40.0 * day,
                        "sp_backing": 35.0 * day,
                    }
                )
    return rows


def grid_summary() -> dict[str, Any]:
    points = []
    for index, params in enumerate(grid_params()):
        point: dict[str, Any] = {
            "params": params,
            "runs": GRID_RUNS,
            "final_price": {"median": 1.5, "p5": 1.4, "p95": 1.6},
            "platform_result": {"median": -25_000.0, "p5": -26_000.0, "p95": -24_000.0},
            "loss_from_day": GRID_LOSS_DAYS[index],
            "share_in_profit": 0.3,
            "gini": 0.4,
            "cohorts": cohorts(),
            "verdict": f"Loses from day {GRID_LOSS_DAYS[index]}.",
        }
        if index == 1:
            point["explanations"] = list(EXPLANATIONS)
        points.append(point)
    return {
        "scenario": "grid",
        "description": "Six settings.",
        "days": GRID_DAYS,
        "runs": GRID_RUNS,
        "seed": 2,
        "sweep_params": ["margin", "rate"],
        "points": points,
        "warnings": [WARNING],
    }


def sensitivity_report() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A one-at-a-time sensitivity (test_sim_report.sensitivity_summary) whose points have
    every verdict level: its base point is the order-only case (the platform gains, every
    paying consumer loses), contribution_rate = 0.4 a loss, the others hold."""
    made, rows = sensitivity_summary()
    base = next(point for point in made["points"] if not point["params"])
    base |= {"verdict_level": "consumers lose", "share_losing": 1.0, "share_in_profit": 0.0}
    made["points"] = [base if not p["params"] else p for p in made["points"]]
    return made, rows


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sim-report")
    SHOTS.mkdir(parents=True, exist_ok=True)
    written = {name: folder / f"{name}.html" for name in ("deep", "grid", "sensitivity")}
    write_report(written["deep"], deep_summary(), deep_rows())
    write_report(written["grid"], grid_summary(), grid_rows())
    write_report(written["sensitivity"], *sensitivity_report())
    return written


# What Plotly drew, read in the page: boxes in CSS pixels of the viewport.
SVG_STATE = """(id) => {
  const gd = document.getElementById(id);
  const box = (e) => {
    const r = e.getBoundingClientRect();
    return {x: r.left, y: r.top, w: r.width, h: r.height, text: e.textContent};
  };
  const all = (selector) => [...gd.querySelectorAll(selector)].map(box);
  const one = (selector) => { const e = gd.querySelector(selector); return e ? box(e) : null; };
  return {
    svg: one(".main-svg"),
    plot: one(".nsewdrag"),
    yticks: all(".ytick text"),
    xticks: all(".xtick text"),
    ytitle: one(".g-ytitle text"),
    xtitle: one(".g-xtitle text"),
    legend: all(".legendtext"),
    annotations: all(".annotation-text"),
    xrange: gd._fullLayout.xaxis.range,
    yrange: gd._fullLayout.yaxis.range,
  };
}"""
# Plotly lays a chart out again once it knows its margins (automargin): wait until every
# chart's layout stops changing.
SETTLED = """() => {
  const divs = [...document.querySelectorAll(".plotly-graph-div")];
  if (!window.Plotly || divs.length === 0 || divs.some((d) => !d._fullLayout)) return false;
  const now = JSON.stringify(divs.map((d) => [d._fullLayout._size, d._fullLayout.height]));
  const same = window.__lastLayout === now;
  window.__lastLayout = now;
  return same;
}"""
# Counts the pixels of a PNG close to each colour: which lines a reader can actually see.
COUNT_COLOURS = """async ([png, colours]) => {
  const image = new Image();
  image.src = "data:image/png;base64," + png;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.width;
  canvas.height = image.height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const pixels = context.getImageData(0, 0, image.width, image.height).data;
  const counts = colours.map(() => 0);
  for (let i = 0; i < pixels.length; i += 4) {
    colours.forEach(([r, g, b], n) => {
      const d = Math.abs(pixels[i] - r) + Math.abs(pixels[i + 1] - g) + Math.abs(pixels[i + 2] - b);
      if (d < 40) counts[n] += 1;
    });
  }
  return counts;
}"""


@dataclass
class Opened:
    page: Page
    requests: list[str]
    errors: list[str]

    def svg(self, chart_id: str) -> dict[str, Any]:
        state: dict[str, Any] = self.page.evaluate(SVG_STATE, chart_id)
        return state

    def on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def on_error(self, error: PlaywrightError) -> None:
        self.errors.append(f"uncaught: {error}")

    def check(self) -> None:
        offline = ("file:", "data:", "blob:", "about:")
        assert not [url for url in self.requests if not url.startswith(offline)]
        assert not self.errors, self.errors


@pytest.fixture(scope="module")
def pages(browser: Browser, reports: dict[str, Path]) -> Iterator[dict[str, Opened]]:
    """Each report opened once for the module (loading one takes Chromium about 1.5 s: 5 MB
    of plotly.js and six charts). A test that changes a view puts it back before it ends."""
    context = browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    opened = {}
    try:
        for name, path in reports.items():
            page = context.new_page()
            one = Opened(page, [], [])
            page.on("request", one.on_request)
            page.on("console", one.on_console)
            page.on("pageerror", one.on_error)
            page.goto(path.as_uri())
            page.wait_for_function(SETTLED, polling=100, timeout=15_000)
            opened[name] = one
        yield opened
        for one in opened.values():
            one.check()
    finally:
        context.close()


@pytest.fixture
def open_report(pages: dict[str, Opened]) -> Iterator[Any]:
    """open_report(name): the page of that report, checked again after the test."""
    used: list[Opened] = []

    def open_one(name: str) -> Opened:
        used.append(pages[name])
        return pages[name]

    yield open_one
    for one in used:
        one.check()


def click_menu(one: Opened, label: str) -> None:
    """Click a button of the daily amounts' chart and wait for the chart to be drawn again."""
    before = one.svg("chart-flows")["yrange"]
    one.page.locator("#chart-flows g.updatemenu-button", has_text=label).click()
    one.page.wait_for_function(
        "(before) => JSON.stringify(document.getElementById('chart-flows')._fullLayout"
        ".yaxis.range) !== JSON.stringify(before)",
        arg=before,
        polling=50,
        timeout=5_000,
    )


def shot(page: Page, name: str) -> None:
    page.screenshot(path=SHOTS / f"sim-report-{name}.png", full_page=True)


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def inside(inner: dict[str, float], outer: dict[str, float]) -> bool:
    slack = 0.5  # sub-pixel rounding of the boxes
    return (
        inner["x"] >= outer["x"] - slack
        and inner["y"] >= outer["y"] - slack
        and inner["x"] + inner["w"] <= outer["x"] + outer["w"] + slack
        and inner["y"] + inner["h"] <= outer["y"] + outer["h"] + slack
    )


def test_tick_labels_are_whole_with_their_minus_sign(open_report: Any) -> None:
    """Point 1: ¥−12,000,000 used to lose its "¥−" at the left edge, reading as a gain."""
    deep = open_report("deep")
    shot(deep.page, "deep")
    platform = deep.svg("chart-platform")
    labels = [tick["text"] for tick in platform["yticks"]]
    negative = [text for text in labels if re.fullmatch(r"¥−\d{1,3}(,\d{3})+", text)]
    assert len(negative) >= 3, labels
    assert any(re.fullmatch(r"¥−1[02],000,000", text) for text in negative), labels
    for name in ("deep", "grid"):
        one = deep if name == "deep" else open_report(name)
        for chart_id in CHART_IDS:
            state = one.svg(chart_id)
            assert state["yticks"] and state["xticks"], chart_id
            for tick in state["yticks"] + state["xticks"]:
                assert tick["w"] > 0 and inside(tick, state["svg"]), (name, chart_id, tick)


def test_axis_titles_and_legends_keep_off_the_tick_labels(open_report: Any) -> None:
    """Point 2: an axis title never covers a tick label; nor does a legend."""
    for name in ("deep", "grid"):
        one = open_report(name)
        for chart_id in CHART_IDS:
            state = one.svg(chart_id)
            # Every chart has its y title; the parts' bars are named on their axis instead.
            titles = [state["ytitle"]] + ([] if chart_id in UNTITLED_X else [state["xtitle"]])
            assert all(title and inside(title, state["svg"]) for title in titles), chart_id
            ticks = state["yticks"] + state["xticks"]
            for title in titles:
                hit = [tick["text"] for tick in ticks if overlap(title, tick)]
                assert not hit, (name, chart_id, title["text"], hit)
            for entry in state["legend"]:
                for other in [*ticks, *titles, state["plot"]]:
                    assert not overlap(entry, other), (name, chart_id, entry, other)
        shot(one.page, f"{name}-axes")


def test_the_day_axis_runs_from_day_0_to_the_last_day(open_report: Any) -> None:
    """Point 3 (it used to start near day −45); point 7 (days from 0, as in the data)."""
    deep = open_report("deep")
    for chart_id in DAY_CHARTS:
        state = deep.svg(chart_id)
        assert state["xrange"] == [0, DEEP_DAYS - 1], chart_id
        first = min(state["xticks"], key=lambda tick: tick["x"])
        assert first["text"] == "0"
        assert abs(first["x"] + first["w"] / 2 - state["plot"]["x"]) < 2  # at the axis's start
    meta = deep.page.locator("header .meta").inner_text()
    assert f"day 0 to day {DEEP_DAYS - 1}" in meta and "day 0 is the first simulated day" in meta
    body = deep.page.locator("main").inner_text()
    assert body.count("day 0 is the first simulated day") == 1
    assert f"LOSS FROM DAY {DEEP_LOSS_DAY}" in body  # the badge is upper case on screen
    legend = [entry["text"] for entry in deep.svg("chart-platform")["legend"]]
    assert f"loss from day {DEEP_LOSS_DAY}" in legend
    # The dotted line stands at that day on the axis.
    line = deep.page.evaluate(
        """(day) => {
          const gd = document.getElementById("chart-platform");
          const path = gd.querySelector(".shapelayer path[style*='dash']");
          const box = path.getBoundingClientRect();
          return {x: box.left + box.width / 2, day: gd._fullLayout.xaxis.l2p(day)
                  + gd._fullLayout._size.l + gd.getBoundingClientRect().left};
        }""",
        DEEP_LOSS_DAY,
    )
    assert abs(line["x"] - line["day"]) < 2


def test_loss_notes_of_a_grid_do_not_overlap(open_report: Any) -> None:
    """Point 4: six settings losing from days 10 to 15 each name their day, apart."""
    grid = open_report("grid")
    state = grid.svg("chart-platform")
    notes = [
        box for box in state["legend"] + state["annotations"] if "loss from day" in box["text"]
    ]
    assert len(notes) == len(GRID_LOSS_DAYS)
    assert sorted(int(note["text"].rsplit(" ", 1)[1]) for note in notes) == sorted(GRID_LOSS_DAYS)
    for index, note in enumerate(notes):
        assert note["w"] > 0 and inside(note, state["svg"])
        for other in notes[index + 1 :]:
            assert not overlap(note, other), (note, other)
    shapes = grid.page.evaluate(
        "() => document.querySelectorAll('#chart-platform .shapelayer path').length"
    )
    assert shapes == len(GRID_LOSS_DAYS) + 1  # a dotted line each, and the zero line


def test_every_daily_amount_is_visible(open_report: Any) -> None:
    """Point 5: contributions equal to dividends every day are still seen, as is each line."""
    deep = open_report("deep")
    paths = deep.page.evaluate(
        """() => [...document.querySelectorAll("#chart-flows .scatterlayer .trace")].map(
          (trace) => {
            const line = trace.querySelector("path.js-line");
            const style = getComputedStyle(trace);
            return {
              d: line ? line.getAttribute("d") : "",
              width: line ? parseFloat(getComputedStyle(line).strokeWidth) : 0,
              visible: style.visibility !== "hidden" && style.opacity !== "0",
            };
          })"""
    )
    assert len(paths) == len(FLOW_COLOURS)
    for path in paths:
        assert path["visible"] and "L" in path["d"] and path["width"] > 0  # a segment at least
    # Seen, not only drawn: the plot area's pixels, in the view without the spike.
    flows = deep.page.locator("#chart-flows")
    flows.scroll_into_view_if_needed()
    click_menu(deep, "Clip spikes")
    try:
        plot = deep.svg("chart-flows")["plot"]
        png = deep.page.screenshot(
            clip={"x": plot["x"], "y": plot["y"], "width": plot["w"], "height": plot["h"]}
        )
        flows.screenshot(path=SHOTS / "sim-report-deep-flows-clipped.png")
    finally:
        click_menu(deep, "Full range")
    counts = deep.page.evaluate(
        COUNT_COLOURS, [base64.b64encode(png).decode(), list(FLOW_COLOURS.values())]
    )
    seen = dict(zip(FLOW_COLOURS, counts, strict=True))
    assert all(count >= 40 for count in seen.values()), seen


def test_a_one_day_spike_can_be_clipped(open_report: Any) -> None:
    """Point 6: the buttons over the daily amounts switch to the 1st-99th percentile and back."""
    deep = open_report("deep")
    full = deep.svg("chart-flows")["yrange"]
    assert full[1] > 1_000_000  # the spike's day sets the scale
    click_menu(deep, "Clip spikes")
    try:
        clipped = deep.svg("chart-flows")["yrange"]
        labels = [tick["text"] for tick in deep.svg("chart-flows")["yticks"]]
    finally:
        click_menu(deep, "Full range")
    assert clipped[0] == 0 and 800 < clipped[1] < 2_000  # the other days fill the chart
    assert "¥1,000,000" not in labels and "¥0" in labels
    assert deep.svg("chart-flows")["yrange"] == full
    # With several settings the clip buttons and the menu of settings are both there.
    grid = open_report("grid")
    menus = grid.page.locator("#chart-flows .updatemenu-container").text_content() or ""
    assert "Clip spikes" in menus and "margin = 0.2, rate = 0.1" in menus


def test_bands_say_how_many_runs_they_come_from(open_report: Any) -> None:
    """Point 8: 4 runs draw their range and say so beside the charts; 20 runs a 5-95 % band."""
    deep = open_report("deep")
    for chart_id in ("chart-price", "chart-platform"):
        section = deep.page.locator("section.chart", has=deep.page.locator(f"#{chart_id}"))
        caveat = section.locator("p.caveat")
        assert caveat.is_visible()
        assert f"Only {DEEP_RUNS} runs per setting" in caveat.inner_text()
        legend = [entry["text"] for entry in deep.svg(chart_id)["legend"]]
        assert f"range of {DEEP_RUNS} runs" in legend and not any("5–95" in t for t in legend)
    band = deep.page.evaluate(
        """() => document.getElementById("chart-platform")._fullData
                 .filter((t) => t.hoverinfo === "skip")
                 .map((t) => Array.from(t.y))"""
    )
    high, low = band
    grid_of_runs = np.array(
        [[deep_result(day, run) for day in range(DEEP_DAYS)] for run in range(DEEP_RUNS)]
    )
    assert np.allclose(low, grid_of_runs.min(axis=0)) and np.allclose(high, grid_of_runs.max(0))

    grid = open_report("grid")
    assert grid.page.locator("p.caveat").count() == 0
    names = grid.page.evaluate(
        "() => document.getElementById('chart-price').data.map((t) => t.name)"
    )
    assert names.count("5–95% of runs") == len(GRID_LOSS_DAYS)
    title = grid.page.locator("#chart-price .gtitle").text_content() or ""
    assert "5–95% of runs" in title
    how = grid.page.locator("section.chart p.how").first.inner_text()
    assert "from the 5th to the 95th percentile" in how


def test_chinese_text_has_fallback_fonts(open_report: Any) -> None:
    """Point 9: the page and the charts name Chinese fonts for Linux too."""
    deep = open_report("deep")
    body = deep.page.evaluate("() => getComputedStyle(document.body).fontFamily")
    for font in ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei"):
        assert font in body
    assert body.endswith("sans-serif")
    legend_font = deep.page.evaluate(
        "() => document.querySelector('#chart-flows .legendtext').style.fontFamily"
    )
    assert "WenQuanYi Micro Hei" in legend_font and "Noto Sans CJK SC" in legend_font
    assert FONT_FAMILY.count('"') == legend_font.count('"')  # the same list, as written
    # The legend's 出局 is drawn with glyphs, not empty: wider than the Latin text alone.
    widths = deep.page.evaluate(
        """() => [...document.querySelectorAll('#chart-flows .legendtext')]
                 .map((t) => [t.textContent, t.getComputedTextLength()])"""
    )
    cash = next(width for text, width in widths if "出局" in text)
    assert cash > 0 and math.isfinite(cash)


def test_warnings_and_explanations_are_shown(open_report: Any) -> None:
    """Point 11: warnings near the top, explanations under their verdict; absent: nothing."""
    grid = open_report("grid")
    warning = grid.page.locator("section.warnings li")
    assert warning.inner_text() == WARNING and warning.is_visible()
    first_verdict = grid.page.locator(".verdict").first.bounding_box()
    warning_box = warning.bounding_box()
    assert first_verdict is not None and warning_box is not None
    assert warning_box["y"] < first_verdict["y"]
    explained = grid.page.locator(".verdict", has_text="Loses from day 11.")
    assert explained.count() == 2  # two settings lose from day 11; one has explanations
    items = grid.page.locator(".verdict ul.explanations li").all_inner_texts()
    assert items == list(EXPLANATIONS)
    box = grid.page.locator(".verdict", has=grid.page.locator("ul.explanations"))
    assert "margin = 0.2, rate = 0.2" in box.inner_text()
    shot(grid.page, "grid")

    deep = open_report("deep")
    assert deep.page.locator("section.warnings").count() == 0
    assert deep.page.locator("ul.explanations").count() == 0


# summary.json's verdict_level: the verdict box's left border as Chromium computes it.
LEVEL_BORDERS = {
    "loss": "rgb(198, 40, 40)",
    "consumers lose": "rgb(224, 138, 0)",
    "holds": "rgb(46, 125, 50)",
}


def test_verdict_colours_follow_the_level(open_report: Any) -> None:
    """Red for a loss, amber when the platform holds while most paying consumers lose (the
    order-only case: not green), green when it holds; the rows of the table marked alike."""
    sens = open_report("sensitivity")
    boxes = sens.page.evaluate(
        """() => [...document.querySelectorAll(".verdict")].map((box) => ({
             level: box.dataset.level,
             point: box.querySelector(".point").textContent,
             badge: box.querySelector(".badge").innerText,
             border: getComputedStyle(box).borderLeftColor,
             background: getComputedStyle(box).backgroundColor,
           }))"""
    )
    assert boxes[0]["point"] == "as in the scenario" and boxes[0]["level"] == "consumers lose"
    assert boxes[0]["badge"] == "THE PLATFORM HOLDS, MOST PAYING CONSUMERS LOSE"
    for box in boxes:
        assert box["border"] == LEVEL_BORDERS[box["level"]], box
    levels = [box["level"] for box in boxes]
    assert levels.count("consumers lose") == 1 and levels.count("loss") == 1
    backgrounds = {box["level"]: box["background"] for box in boxes}
    assert len(set(backgrounds.values())) == 3  # three tints, none shared
    loss = next(box for box in boxes if box["level"] == "loss")
    assert loss["point"] == "contribution_rate = 0.4" and loss["badge"].startswith("LOSS FROM DAY")
    marks = sens.page.evaluate(
        """() => [...document.querySelectorAll("table.points:not(.parts) tbody tr")].map(
             (row) => [row.dataset.level,
                       getComputedStyle(row.cells[0]).boxShadow])"""
    )
    for level, shadow in marks:
        if level != "holds":
            assert shadow.startswith(LEVEL_BORDERS[level]), (level, shadow)
    sens.page.locator("section.verdicts").screenshot(path=SHOTS / "sim-report-verdicts.png")


def test_the_tornado_puts_the_largest_swing_on_top(open_report: Any) -> None:
    """One row per setting from the largest swing (top) to the smallest, each bar labelled
    with its value and result beside it, the base line at the scenario's result."""
    sens = open_report("sensitivity")
    state = sens.svg("chart-tornado")
    rows = sorted(state["yticks"], key=lambda tick: tick["y"])
    assert [tick["text"] for tick in rows] == [
        "platform.gross_margin",
        "contribution_rate",
        "arrivals.rate",
    ]
    for tick in state["yticks"] + state["xticks"]:
        assert tick["w"] > 0 and inside(tick, state["svg"]), tick
    texts = sens.page.evaluate(
        """() => [...document.querySelectorAll("#chart-tornado .bartext")].map((t) => {
             const r = t.getBoundingClientRect();
             return {text: t.textContent, x: r.left, y: r.top, w: r.width, h: r.height};
           })"""
    )
    labels = {box["text"]: box for box in texts}
    assert set(labels) == {
        "<0.3> → ¥0.00",
        "0.5 → ¥2,000",
        "0.2 → ¥1,500",
        "0.4 → -¥500.00",
        "1 → ¥500.00",
        "3 → ¥1,500",
    }
    for index, box in enumerate(texts):
        assert box["w"] > 0 and inside(box, state["svg"]), box
        for other in texts[index + 1 :]:
            assert not overlap(box, other), (box, other)
    # Each label on its setting's row: between the row's tick label and the next row's.
    centre = {tick["text"]: tick["y"] + tick["h"] / 2 for tick in rows}
    gap = centre["contribution_rate"] - centre["platform.gross_margin"]
    for name, text in (("platform.gross_margin", "0.5 → ¥2,000"), ("arrivals.rate", "3 → ¥1,500")):
        assert abs(labels[text]["y"] + labels[text]["h"] / 2 - centre[name]) < gap / 2
    # Bars left of the base line lower the position: 0.4 ends left of it, 0.2 right.
    base = sens.page.evaluate(
        """() => {
             const gd = document.getElementById("chart-tornado");
             return gd._fullLayout.xaxis.l2p(500) + gd._fullLayout._size.l
                    + gd.getBoundingClientRect().left;
           }"""
    )
    assert labels["0.4 → -¥500.00"]["x"] + labels["0.4 → -¥500.00"]["w"] < base
    assert labels["0.2 → ¥1,500"]["x"] > base
    notes = [box["text"] for box in state["annotations"]]
    assert "as in the scenario: ¥500.00" in notes
    # The base point's name in the other charts' legends.
    legend = [entry["text"] for entry in sens.svg("chart-price")["legend"]]
    assert legend[0] == "as in the scenario"
    sens.page.locator("#chart-tornado").screenshot(path=SHOTS / "sim-report-tornado.png")
