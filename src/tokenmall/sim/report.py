"""The simulator's report: one self-contained HTML file an operator can open offline.

`write_report` takes what the runner produces (the summary of every sweep point and one daily
row per run and day, as dicts or, from the order-only fast path, column by column) and writes,
in this order: the title, any warnings of the summary, the verdict of each sweep point
(coloured by its verdict_level: red when the platform's position stays below zero, amber when
it holds while most paying consumers lose, green otherwise, with its explanations when the
summary has them), a table of the sweep points (the position's spread, mean ± 95 % CI and value
at risk) and one of the position in parts, the charts, each with a short "How to read this"
paragraph (a tornado chart first when the summary has a one-at-a-time sensitivity), and a
provenance footer (tool version, the scenario file's SHA-256, the engine, runs and seed, the
exact parameters).

`write_comparison` writes a page of two results side by side (templates/compare.html: what
differs, the headline figures and their differences, price and position over the days);
`load_result` reads one result from the folder `tokenmall simulate --out` wrote.

The page is rendered from the Jinja2 templates in templates/ (autoescaped: the scenario's name,
description, verdicts and sweep values are text from a file, never markup). plotly.js is
embedded once, inline, in <head>: the bundle the plotly package ships (package_data/
plotly.min.js), read from the package's folder without importing its Python modules. Every chart
is a <div> after it with a script that hands plotly.js the figure's JSON (Plotly.newPlot); the
figures are built as plain data by charts.py, which writes the JSON plotly's own figure classes
wrote (importing and validating those took most of the report's time). So the file needs no
network. Runs are never drawn one by one: each chart shows the median over the runs of a sweep
point, day by day, with a band around it where it helps: from the 5th to the 95th percentile
with at least PERCENTILE_RUNS runs, from the lowest to the highest run with fewer (a 5th
percentile of 4 runs is an interpolation between two of them, not a measurement).

Days are 0-based, as everywhere in the simulator (scenario events, metrics.csv, summary.json's
loss_from_day); cohorts' weeks too (week 0 holds days 0-6).
"""

import csv
import functools
import html
import importlib.util
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from tokenmall.sim.charts import Chart, bar, scatter

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

TEMPLATES = Path(__file__).parent / "templates"

# The daily metrics the charts need; each is aggregated over the runs of a sweep point.
SERIES = (
    "price",
    "platform_result",
    "operator_cash",
    "sales",
    "contributions",
    "dividends",
    "cash_out",
    "sp_outstanding",
    "sp_backing",
)
# One colour per sweep point (Plotly's qualitative palette, repeated if there are more points).
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
# Chart 3: (metric, legend name, colour, width, dash), in drawing order. Two of these can be
# equal day after day (a pool that pays out each day what went in: dividends = contributions),
# and a line drawn later covers an earlier one exactly. So each line is narrower than the ones
# drawn before it (their edges stay visible) and the later ones are dashed or dotted (the earlier
# colour shows through the gaps). The legend keeps the reading order through `legendrank`.
FLOWS = (
    ("sales", "Cash sales", "#1f77b4", 3.4, "solid"),
    ("dividends", "Dividends paid", "#ff7f0e", 2.8, "solid"),
    ("contributions", "Contributions to the pool", "#9467bd", 2.4, "dash"),
    ("cash_out", "Cash paid out (sales of EP, 出局)", "#d62728", 2.0, "dot"),
)
FLOWS_LEGEND_ORDER = ("sales", "contributions", "dividends", "cash_out")
MONEY_OUT = (  # chart 6: (cohort key, legend name, colour)
    ("cash_out", "Cash received", "#1f77b4"),
    ("sp", "SP (恒定积分)", "#2ca02c"),
    ("goods", "Goods", "#ff7f0e"),
    ("ep_value", "EP still held (at the last price)", "#9467bd"),
)
CHART_HEIGHT = 500
# plotly.js's options for every chart: no plotly logo in the tool bar; redrawn to the page's
# width when the window is resized.
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
GRID = "#e3e3e3"
# Below this many runs a band is the range of the runs, at or above it the 5-95 % band: with 20
# runs the 5th and 95th percentiles fall on the second lowest and second highest run.
PERCENTILE_RUNS = 20
# The clipped view of the daily amounts leaves out the days below the 1st and above the 99th
# percentile, so a one-day spike (a bank run's exits) does not flatten every other day.
CLIP_PERCENTILES = (1.0, 99.0)
# The page and the charts name the same fonts: the usual system fonts, then Chinese fonts for
# macOS, Windows and Linux (the names carry Chinese terms such as 股权积分), so that a Linux
# desktop with Noto, Source Han or WenQuanYi shows them instead of boxes. Plotly writes it into
# each SVG text's style attribute; the page CSS gets the same string.
FONT_FAMILY = (
    'system-ui, -apple-system, "Segoe UI", "PingFang SC", "Microsoft YaHei", '
    '"Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", sans-serif'
)
# A legend row holds about this many entries at the report's width; a chart with more rows of
# legend is made taller by LEGEND_ROW pixels a row, so the plot itself keeps its height.
LEGEND_PER_ROW = 2
LEGEND_ROW = 22
LEGEND_MAX_EXTRA = 440


@dataclass(frozen=True)
class Band:
    """A metric over the days: the median across runs and the band around it (the 5th to
    the 95th percentile, or the lowest to the highest run: see `_aggregate`)."""

    low: FloatArray
    median: FloatArray
    high: FloatArray


@dataclass(frozen=True)
class PointData:
    # The sweep parameters (text from the command line); "" without a sweep. `label` is
    # escaped for Plotly, which reads tags (<b>, <a>) and entities in legend and hover text;
    # `text` is as given, for the templates, which escape it themselves.
    label: str
    text: str
    color: str
    summary: Mapping[str, Any]
    days: IntArray
    runs: int
    series: dict[str, Band]


@dataclass(frozen=True)
class Spread:
    """What the bands of a report show, decided by the fewest runs of any sweep point."""

    runs: int

    @property
    def percentiles(self) -> bool:
        return self.runs >= PERCENTILE_RUNS

    @property
    def drawn(self) -> bool:
        return self.runs > 1

    @property
    def name(self) -> str:
        """The band's name in legends and titles."""
        return "5–95% of runs" if self.percentiles else f"range of {self.runs} runs"


# The daily rows: a dict per row (the rules engine's runs, metrics.csv read back), or the same
# rows column by column (the order-only fast path's: NumPy arrays of numbers, lists of sweep
# values; no dict per row to build and read back).
Daily = Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]


def write_report(path: Path, summary: dict[str, Any], daily: Daily) -> None:
    """Write the HTML report for one simulation (all its sweep points) to `path`."""
    sweep_params = [str(name) for name in summary.get("sweep_params", [])]
    sensitivity = _sensitivity(summary)
    points = _points(summary, daily, sweep_params)
    spread = Spread(min((p.runs for p in points if p.runs), default=0))
    charts: list[tuple[str, str, str, Chart]] = []
    if sensitivity:
        charts.append(
            (
                "chart-tornado",
                "tornado",
                "What moves the position most",
                _tornado_figure(sensitivity),
            )
        )
    charts += [
        ("chart-price", "price", "Price of one EP", _price_figure(points, spread)),
        (
            "chart-platform",
            "platform",
            "The platform's position",
            _platform_figure(points, spread),
        ),
        ("chart-parts", "parts", "The position in parts, on the last day", _parts_figure(points)),
        ("chart-flows", "flows", "Daily money in and out", _flows_figure(points)),
        ("chart-sp", "sp", "SP outstanding against its backing", _sp_figure(points)),
        ("chart-roi", "roi", "Return by entry week", _roi_figure(points)),
        ("chart-cohorts", "cohorts", "Money in and out by entry week", _cohort_figure(points)),
    ]
    days = int(summary.get("days", 0))
    levels = [_level(point.summary) for point in points]
    document = (
        _environment()
        .get_template("report.html")
        .render(
            scenario=str(summary.get("scenario", "")),
            description=str(summary.get("description", "")),
            days=days,
            last_day=max(days - 1, 0),
            runs=int(summary.get("runs", 0)),
            seed=str(summary.get("seed", "")),
            swept=", ".join(sweep_params),
            sensitivity=bool(sensitivity),
            warnings=_strings(summary.get("warnings")),
            multiple=bool(sweep_params) or len(points) > 1,
            losing=levels.count(LOSS),
            consumers_lose=levels.count(CONSUMERS_LOSE),
            verdicts=[_verdict(point) for point in points],
            columns=["Setting"] if sensitivity else sweep_params,
            rows=[_row(point, sweep_params, bool(sensitivity)) for point in points],
            spread=spread,
            charts=[
                {
                    "id": div_id,
                    "key": key,
                    "title": f"{number}. {title}",
                    "plot": _plot(div_id, fig),
                }
                for number, (div_id, key, title, fig) in enumerate(charts, start=1)
            ],
            provenance=_provenance(summary),
            # Markup: our own constant and plotly's bundle, inserted as they are (in <style>
            # and <script>, where escaping would break them).
            font_family=Markup(FONT_FAMILY),
            plotlyjs=Markup(_plotlyjs()),
        )
    )
    path.write_text(document, encoding="utf-8")


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        bytecode_cache=_bytecode_cache(),
        autoescape=True,  # every template is HTML (or CSS included in it)
        undefined=StrictUndefined,  # a misspelt name fails the tests instead of printing ""
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _bytecode_cache() -> FileSystemBytecodeCache | None:
    """The templates compiled once, not by every simulate (compiling them took 0.04 s of a
    run): in Jinja's folder for this user in the system's temporary folder, which it makes
    mode 0700 and whose owner it checks (a template's source checksum keys its entry, so an
    edited template compiles again). None where that folder cannot be made safely."""
    try:
        return FileSystemBytecodeCache()
    except (OSError, RuntimeError):
        return None


# -- data ----------------------------------------------------------------------------------


def _points(summary: Mapping[str, Any], daily: Daily, sweep_params: list[str]) -> list[PointData]:
    """Each sweep point of the summary with its daily rows aggregated over its runs. A
    sensitivity's base point (the scenario as it is, no parameters) comes first."""
    columns = _columns(daily, [*sweep_params, "run", "day", *SERIES])
    # A sensitivity's point sets one of the varied names; the others are absent from its
    # rows (or empty, read back from metrics.csv), as they are from its parameters.
    keys = list(zip(*(map(_text, columns[name]) for name in sweep_params), strict=True))
    at_key: dict[tuple[str, ...], list[int]] = {}
    if sweep_params:
        for index, key in enumerate(keys):
            at_key.setdefault(key, []).append(index)
    listed = list(summary.get("points", []))
    if _sensitivity(summary):
        listed.sort(key=lambda point: bool(point.get("params")))  # stable: the rest in order
    points = []
    for index, point in enumerate(listed):
        params = {str(k): str(v) for k, v in (point.get("params") or {}).items()}
        key = tuple(params.get(name, "") for name in sweep_params)
        # one setting: every row is its own
        rows = at_key.get(key, []) if sweep_params else range(len(columns["run"]))
        days, runs, series = _aggregate(columns, rows)
        points.append(
            PointData(
                label=html.escape(_label(params, sweep_params)),
                text=_label(params, sweep_params),
                color=PALETTE[index % len(PALETTE)],
                summary=point,
                days=days,
                runs=runs,
                series=series,
            )
        )
    return points


def _columns(daily: Daily, names: list[str]) -> dict[str, Sequence[Any]]:
    """The daily rows' values of these names, column by column (None where a row has none)."""
    if isinstance(daily, Mapping):
        count = len(next(iter(daily.values()), ()))
        return {name: daily.get(name, [None] * count) for name in names}
    return {name: [row.get(name) for row in daily] for name in names}


BASE_LABEL = "as in the scenario"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _label(params: Mapping[str, str], sweep_params: list[str]) -> str:
    if not sweep_params:
        return ""  # one setting: nothing to tell apart
    if not params:
        return BASE_LABEL  # a sensitivity's base point: no setting changed
    return ", ".join(f"{name} = {params[name]}" for name in sweep_params if name in params)


def _sensitivity(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The summary's one-at-a-time sensitivity bars, largest swing first; none: []."""
    bars = summary.get("sensitivity")
    if not isinstance(bars, list | tuple):
        return []
    return sorted(
        (bar for bar in bars if isinstance(bar, Mapping)),
        key=lambda bar: -_finite(abs(_number(bar.get("swing")))),
    )


def _aggregate(
    columns: Mapping[str, Sequence[Any]], rows: Sequence[int]
) -> tuple[IntArray, int, dict[str, Band]]:
    """Days, number of runs, and each metric's median and band across runs, day by day, of
    these rows (indices into the columns)."""
    run_values, day_values = columns["run"], columns["day"]
    whole = isinstance(rows, range) and rows == range(len(run_values))
    arrays = isinstance(run_values, np.ndarray) and isinstance(day_values, np.ndarray)
    if arrays:
        # the fast path's columns: each row's run and day at once (the runs' order is the
        # grid's rows' and changes no percentile)
        at = np.asarray(rows, dtype=np.intp)
        run_numbers, rows_at = np.unique(np.asarray(run_values)[at], return_inverse=True)
        day_numbers, cols_at = np.unique(np.asarray(day_values)[at], return_inverse=True)
        runs, days = run_numbers.tolist(), day_numbers.tolist()
    else:
        run_names = [str(run_values[row]) for row in rows]
        runs = sorted(set(run_names))  # as text: read back from metrics.csv they are text
        run_index = {run: i for i, run in enumerate(runs)}
        day_list = [int(day_values[row]) for row in rows]
        days = sorted(set(day_list))
        day_index = {day: i for i, day in enumerate(days)}
        rows_at = np.fromiter(map(run_index.__getitem__, run_names), np.intp, len(rows))
        cols_at = np.fromiter(map(day_index.__getitem__, day_list), np.intp, len(rows))
    # The band's edges: percentiles only with enough runs, otherwise the lowest and highest.
    edges = [5, 50, 95] if len(runs) >= PERCENTILE_RUNS else [0, 50, 100]
    series = {}
    for metric in SERIES:
        grid = np.full((len(runs), len(days)), np.nan)
        values = columns[metric]
        if whole:
            picked = values
        elif arrays and isinstance(values, np.ndarray):
            picked = values[at]
        else:
            picked = [values[row] for row in rows]
        grid[rows_at, cols_at] = _numbers(picked)
        if grid.size == 0:
            empty = np.zeros(0)
            series[metric] = Band(empty, empty, empty)
            continue
        if not np.isnan(grid).any():  # every run reached every day: the same percentiles,
            low, median, high = np.percentile(grid, edges, axis=0)  # in one C-level pass
            series[metric] = Band(low, median, high)
            continue
        with warnings.catch_warnings():  # a day no run reached: NaN, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            # (nanpercentile works day by day in Python: 0.4 s for 100 runs of 1,000 days)
            low, median, high = np.nanpercentile(grid, edges, axis=0)
        series[metric] = Band(low, median, high)
    return np.asarray(days, dtype=np.int64), len(runs), series


def _numbers(values: Sequence[Any]) -> FloatArray:
    """`_number` of each value: numbers (and numeric text, as read back from metrics.csv)
    converted at once; a value that is neither (None, "") makes them go one by one."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return np.fromiter(map(_number, values), np.float64, len(values))


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _finite(value: float) -> float:
    """NaN (a figure missing from the summary) as 0, so that it sorts."""
    return 0.0 if math.isnan(value) else value


def _strings(value: Any) -> list[str]:
    """A list of plain strings from the summary (explanations, warnings); absent: none."""
    if not isinstance(value, list | tuple):
        return []
    return [str(item) for item in value]


# -- charts --------------------------------------------------------------------------------


def _figure(title: str, x_title: str, y_title: str) -> Chart:
    fig = Chart()
    # No template: plotly.js has no default one (plotly's Python package added its own unless
    # told template="none", as this report did).
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left"},
        height=CHART_HEIGHT,
        # Small fixed margins that grow to fit: the axes' automargin makes room for the whole
        # tick labels (¥−12,000,000 is wide) and their titles; the legend reserves its own.
        margin={"l": 16, "r": 24, "t": 96, "b": 16, "autoexpand": True},
        font={"family": FONT_FAMILY, "size": 13},
        paper_bgcolor="white",
        plot_bgcolor="white",
        # At the bottom of the figure (container coordinates): Plotly reserves that space,
        # and the x axis's labels and title go above it, never under it.
        legend={
            "orientation": "h",
            "x": 0,
            "xanchor": "left",
            "y": 0,
            "yref": "container",
            "yanchor": "bottom",
        },
        hoverlabel={"namelength": -1, "font": {"family": FONT_FAMILY}},
    )
    # The titles keep a standoff from the tick labels so that neither covers the other.
    fig.update_xaxes(
        title={"text": x_title, "standoff": 12},
        automargin=True,
        gridcolor=GRID,
        zeroline=False,
        showline=True,
    )
    fig.update_yaxes(
        title={"text": y_title, "standoff": 12},
        automargin=True,
        gridcolor=GRID,
        zeroline=False,
        showline=True,
    )
    return fig


def _day_axis(fig: Chart, points: list[PointData]) -> None:
    """The day axis from the first simulated day to the last, whatever else is drawn.

    Without a fixed range Plotly pads the axis and stretches it to fit annotations and
    shapes, so it used to begin near day −45."""
    days = [int(day) for point in points for day in point.days]
    if not days:
        return
    first, last = min(days), max(days)
    fig.update_xaxes(range=[first, last if last > first else first + 1])
    if last - first <= 10:  # a short run: whole days, not 0.5 steps
        fig.update_xaxes(tick0=first, dtick=1)


def _sized(fig: Chart) -> Chart:
    """Make the figure taller by its extra legend rows, so a long legend leaves the plot its
    height (the legend's space is taken out of the figure's)."""
    entries = sum(1 for trace in fig.data if trace.get("showlegend") is not False)
    entries += sum(1 for shape in fig.layout.get("shapes", []) if shape.get("showlegend"))
    rows = math.ceil(entries / LEGEND_PER_ROW)
    extra = min(max(rows - 2, 0) * LEGEND_ROW, LEGEND_MAX_EXTRA)
    fig.update_layout(height=CHART_HEIGHT + extra)
    return fig


def _rgba(color: str, alpha: float) -> str:
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def _add_band(
    fig: Chart,
    point: PointData,
    metric: str,
    number: str,
    single: bool,
    note: str | None = None,
) -> None:
    """Median line with its band (only when runs differ): 5-95 % or the range of the runs.

    `number` is the d3 format of the amounts in the hover text, such as ",.4f". With several
    sweep points the legend has one entry per point (the band goes with its median, `note` is
    added to its name; the chart's title names the band); with one point each has its own
    entry. (A legend title would push a horizontal legend's entries right, out of the figure.)"""
    band = point.series[metric]
    drawn = point.runs > 1
    name = Spread(point.runs).name
    if drawn:
        fig.add_trace(
            scatter(
                x=point.days,
                y=band.high,
                mode="lines",
                line={"width": 0, "color": point.color},
                legendgroup=point.label,
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            scatter(
                x=point.days,
                y=band.low,
                mode="lines",
                line={"width": 0, "color": point.color},
                fill="tonexty",
                fillcolor=_rgba(point.color, 0.18),
                legendgroup=point.label,
                name=name,
                showlegend=single,
                hoverinfo="skip",
            )
        )
    hover = f"day %{{x}}<br>median ¥%{{y:{number}}}"
    if drawn:
        hover += f"<br>{name}: ¥%{{customdata[0]:{number}}} to ¥%{{customdata[1]:{number}}}"
    fig.add_trace(
        scatter(
            x=point.days,
            y=band.median,
            mode="lines",
            line={"width": 2.2, "color": point.color},
            legendgroup=point.label,
            name="median" if single else f"{point.label} · {note}" if note else point.label,
            customdata=np.column_stack([band.low, band.high]) if drawn else None,
            hovertemplate=f"{hover}<extra>{point.label}</extra>",
        )
    )


def _band_title(spread: Spread) -> str:
    return f"median and {spread.name}" if spread.drawn else "median of runs"


def _price_figure(points: list[PointData], spread: Spread) -> Chart:
    fig = _figure(f"Price of one EP (CNY), {_band_title(spread)}", "Day", "CNY per EP")
    for point in points:
        _add_band(fig, point, "price", ",.4f", len(points) == 1)
    fig.update_yaxes(tickformat=",.4f", tickprefix="¥")
    _day_axis(fig, points)
    return _sized(fig)


CASH_LINE = "operator's cash (median)"


def _platform_figure(points: list[PointData], spread: Spread) -> Chart:
    fig = _figure(
        f"The platform's position since day 0 (CNY), {_band_title(spread)}; dashed: its cash",
        "Day",
        "CNY",
    )
    single = len(points) == 1
    for point in points:
        loss_day = point.summary.get("loss_from_day")
        loss = None if loss_day is None else f"loss from day {_day(loss_day)}"
        # The day of the loss goes in the legend, never on the chart: with many sweep points
        # losing from nearby days, labels on the chart printed over each other. With several
        # points it is part of the point's entry (one legend row fewer per point).
        _add_band(fig, point, "platform_result", ",.0f", single, loss)
        if loss_day is not None:
            fig.add_shape(
                type="line",
                x0=float(loss_day),
                x1=float(loss_day),
                xref="x",
                y0=0,
                y1=1,
                yref="paper",
                line={"color": point.color, "dash": "dot", "width": 1.5},
                legendgroup=point.label,
                showlegend=single,
                name=loss,
            )
    _cash_lines(fig, points)
    fig.add_hline(y=0, line={"color": "#222", "width": 1.5})
    fig.update_yaxes(tickformat=",.0f", tickprefix="¥")
    _day_axis(fig, points)
    return _sized(fig)


def _cash_lines(fig: Chart, points: list[PointData]) -> None:
    """The operator's cash, dashed, in each point's colour: the part of the position that is
    money in hand, apart from the SP it owes and its own EP. With several points one legend
    entry says what the dashed lines are (one entry per point would double the legend)."""
    single = len(points) == 1
    drawn = False
    for point in points:
        cash = point.series["operator_cash"].median
        if not np.isfinite(cash).any():  # rows without the column (an older metrics.csv)
            continue
        drawn = True
        name = CASH_LINE if single else f"{point.label}: {CASH_LINE}"
        fig.add_trace(
            scatter(
                x=point.days,
                y=cash,
                mode="lines",
                line={"width": 1.8, "color": point.color, "dash": "dash"},
                legendgroup=point.label,
                name=name,
                showlegend=single,
                hovertemplate="day %{x}: ¥%{y:,.0f}<extra>" + name + "</extra>",
            )
        )
    if drawn and not single:
        fig.add_trace(
            scatter(
                x=[None],
                y=[None],
                mode="lines",
                line={"width": 1.8, "color": "#444", "dash": "dash"},
                name=f"dashed: {CASH_LINE}",
                hoverinfo="skip",
            )
        )


# The last day's position in parts (summary.json's spreads, their means: means add up, so the
# bars of a point add up to its position): (key, name, sign).
POSITION_PARTS = (
    ("operator_cash", "Operator's cash", 1),
    ("sp_owed", "− SP owed", -1),
    ("treasury_value", "+ its own EP", 1),
    ("platform_result", "= position", 1),
)
POOL_PARTS = (
    ("cash_owed", "Cash owed<br>to sellers"),
    ("ep_held", "EP held by consumers<br>and merchants"),
)


def _part(point: PointData, key: str) -> float:
    spread = point.summary.get(key)
    if isinstance(spread, Mapping):
        mean = _number(spread.get("mean"))
        return mean if not math.isnan(mean) else _number(spread.get("median"))
    return _number(spread)


def _parts_figure(points: list[PointData]) -> Chart:
    """Grouped bars per point: the operator's cash, minus the SP it owes, plus its own EP, is
    its position (left); what the pool owes (right) is apart: not the operator's money."""
    fig = Chart.columns(
        widths=[0.64, 0.36],
        spacing=0.1,
        titles=(
            "The operator's position = cash − SP owed + its own EP",
            "Owed out of the pool (the contributions fund it)",
        ),
    )
    base = _figure(
        "The position in parts on the last day (CNY, mean over runs: the parts add up)",
        "",
        "CNY",
    )
    layout = base.layout
    fig.update_layout(
        {key: layout[key] for key in ("title", "height", "margin", "font", "legend", "hoverlabel")}
        | {"paper_bgcolor": "white", "plot_bgcolor": "white"}
    )
    single = len(points) == 1
    for point in points:
        name = "mean of runs" if single else point.label
        for col, parts in (
            (1, [(name_, sign * _part(point, key)) for key, name_, sign in POSITION_PARTS]),
            (2, [(name_, _part(point, key)) for key, name_ in POOL_PARTS]),
        ):
            fig.add_trace(
                bar(
                    x=[part for part, _ in parts],
                    y=[value for _, value in parts],
                    marker={"color": point.color},
                    name=name,
                    legendgroup=point.label,
                    showlegend=col == 1 and not single,
                    hovertemplate="%{x}: ¥%{y:,.2f}<extra>" + name + "</extra>",
                ),
                row=1,
                col=col,
            )
    fig.update_layout(barmode="group", title={"x": 0, "xanchor": "left"})
    fig.update_yaxes(
        tickformat=",.0f",
        tickprefix="¥",
        automargin=True,
        gridcolor=GRID,
        showline=True,
        zeroline=True,
        zerolinecolor="#222",
    )
    fig.update_xaxes(automargin=True, showline=True)
    fig.update_yaxes(title={"text": "CNY", "standoff": 12}, row=1, col=1)
    return _sized(fig)


def _tornado_figure(bars: list[Mapping[str, Any]]) -> Chart:
    """One row per setting, largest swing on top: the position at the setting's low value and
    at its high value, each a bar from the base (the scenario as it is) to that result."""
    base = _number(bars[0].get("base")) if bars else 0.0
    fig = _figure(
        "The platform's position at each setting's low and high value (median, CNY)",
        "Platform position at the end (CNY)",
        "",
    )
    names = [html.escape(str(bar.get("name", ""))) for bar in bars]
    for end, colour in (("low", "#1f77b4"), ("high", "#d62728")):
        results = [_number(bar.get(f"result_{end}")) for bar in bars]
        labels = [
            f"{html.escape(str(bar.get(end, '')))} → {_cny(result)}"
            for bar, result in zip(bars, results, strict=True)
        ]
        fig.add_trace(
            bar(
                y=names,
                x=[result - base for result in results],
                base=base,
                orientation="h",
                marker={"color": colour},
                name=f"{end} value of the setting",
                text=labels,
                textposition="outside",
                cliponaxis=False,
                customdata=labels,
                hovertemplate="%{y} = %{customdata}<extra></extra>",
            )
        )
    fig.add_vline(
        x=base,
        line={"color": "#222", "width": 1.5},
        annotation_text=f"{BASE_LABEL}: {_cny(base)}",
        annotation_position="top",
    )
    results = [base] + [
        _number(bar.get(f"result_{end}")) for bar in bars for end in ("low", "high")
    ]
    finite = [value for value in results if math.isfinite(value)] or [0.0]
    low, high = min(finite), max(finite)
    pad = (high - low) * 0.3 or 1.0  # room for the labels outside the bars
    fig.update_layout(barmode="group", bargap=0.3, height=max(CHART_HEIGHT, 160 + 70 * len(bars)))
    fig.update_yaxes(autorange="reversed", showgrid=False)  # the first (largest) on top
    fig.update_xaxes(tickformat=",.0f", tickprefix="¥", range=[low - pad, high + pad])
    return fig


def _with_menu(fig: Chart, points: list[PointData], per_point: int) -> None:
    """With more than one sweep point: a menu that shows one point's traces at a time."""
    if len(points) < 2:  # a menu of one is no menu
        return
    total = per_point * len(points)
    for index, trace in enumerate(fig.data):
        trace["visible"] = index < per_point
    buttons = [
        {
            "label": point.label,
            "method": "restyle",
            "args": [{"visible": [i // per_point == n for i in range(total)]}],
        }
        for n, point in enumerate(points)
    ]
    fig.update_layout(
        updatemenus=[
            *fig.layout.get("updatemenus", []),
            {
                "type": "dropdown",
                "buttons": buttons,
                "x": 1,
                "xanchor": "right",
                "y": 1.02,
                "yanchor": "bottom",
                "showactive": True,
            },
        ]
    )


def _clip_menu(fig: Chart, values: FloatArray) -> None:
    """Two buttons over the chart: the full range (the default) or the 1st-99th percentile of
    every amount drawn, so that a one-day spike can be set aside to see the other days. The
    percentiles pool every sweep point: the clipped view keeps one scale whichever point the
    menu of settings shows, so two settings can be compared by switching between them."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return
    low, high = (float(v) for v in np.percentile(values, CLIP_PERCENTILES))
    low = min(low, 0.0)  # amounts per day: keep zero in view
    pad = (high - low) * 0.05 or 1.0
    fig.update_layout(
        updatemenus=[
            *fig.layout.get("updatemenus", []),
            {
                "type": "buttons",
                "direction": "right",
                "buttons": [
                    {
                        "label": "Full range",
                        "method": "relayout",
                        "args": [{"yaxis.autorange": True}],
                    },
                    {
                        "label": "Clip spikes (1st–99th percentile)",
                        "method": "relayout",
                        "args": [{"yaxis.range": [low - pad if low < 0 else 0, high + pad]}],
                    },
                ],
                "active": 0,
                "showactive": True,
                "x": 0,
                "xanchor": "left",
                "y": 1.02,
                "yanchor": "bottom",
                "pad": {"t": 0, "b": 0},
                "name": "scale",
            },
        ]
    )


def _flows_figure(points: list[PointData]) -> Chart:
    fig = _figure("Daily amounts (CNY), median of runs", "Day", "CNY per day")
    for point in points:
        for metric, name, color, width, dash in FLOWS:
            fig.add_trace(
                scatter(
                    x=point.days,
                    y=point.series[metric].median,
                    mode="lines",
                    line={"width": width, "color": color, "dash": dash},
                    name=name,
                    legendrank=1000 + FLOWS_LEGEND_ORDER.index(metric),
                    hovertemplate=f"{name}: ¥%{{y:,.2f}}<extra></extra>",
                )
            )
    drawn = [point.series[metric].median for point in points for metric, *_ in FLOWS]
    _clip_menu(fig, np.concatenate(drawn) if drawn else np.zeros(0))
    _with_menu(fig, points, len(FLOWS))
    fig.update_yaxes(tickformat=",.0f", tickprefix="¥")
    fig.update_layout(hovermode="x unified")
    _day_axis(fig, points)
    return fig


def _sp_figure(points: list[PointData]) -> Chart:
    fig = _figure("SP outstanding and its backing (CNY), median of runs", "Day", "CNY")
    single = len(points) == 1
    lines = (
        ("sp_outstanding", "SP outstanding", "solid"),
        ("sp_backing", "backing (treasury EP × price)", "dash"),
    )
    for point in points:
        for metric, name, dash in lines:
            label = name if single else f"{point.label}: {name}"
            fig.add_trace(
                scatter(
                    x=point.days,
                    y=point.series[metric].median,
                    mode="lines",
                    line={"width": 2, "color": point.color, "dash": dash},
                    legendgroup=point.label,
                    # Several points: one entry per point (a legend group shows its entries
                    # one under the other, which made a legend taller than the plot) ...
                    name=label if single else point.label,
                    showlegend=single or dash == "solid",
                    hovertemplate="day %{x}: ¥%{y:,.2f}<extra>" + label + "</extra>",
                )
            )
    if not single:  # ... and two entries that only say which line is which
        for _metric, name, dash in lines:
            fig.add_trace(
                scatter(
                    x=[None],
                    y=[None],
                    mode="lines",
                    line={"width": 2, "color": "#444", "dash": dash},
                    name=name,
                    legendrank=0,
                    hoverinfo="skip",
                )
            )
    fig.update_yaxes(tickformat=",.0f", tickprefix="¥")
    _day_axis(fig, points)
    return _sized(fig)


def _cohorts(point: PointData) -> list[Mapping[str, Any]]:
    return list(point.summary.get("cohorts") or [])


WEEK_TITLE = "Entry week (week 0: days 0–6)"


def _roi_figure(points: list[PointData]) -> Chart:
    fig = _figure(
        "Return on money in, by the week consumers joined (1.0 = got their money back)",
        WEEK_TITLE,
        "Money out ÷ money in",
    )
    for point in points:
        cohorts = _cohorts(point)
        fig.add_trace(
            bar(
                x=[int(c["week"]) for c in cohorts],
                y=[_number(c.get("roi")) for c in cohorts],
                marker={"color": point.color},
                name=point.label,
                customdata=[
                    [_number(c.get("in_profit")), _number(c.get("consumers"))] for c in cohorts
                ],
                hovertemplate="week %{x}: ROI %{y:.2f}<br>in profit: %{customdata[0]:.0%}"
                " of %{customdata[1]:,.0f} consumers<extra>" + point.label + "</extra>",
            )
        )
    fig.add_hline(
        y=1,
        line={"color": "#222", "width": 1.5, "dash": "dash"},
        annotation_text="break-even",
        annotation_position="top right",
    )
    fig.update_layout(barmode="group", showlegend=len(points) > 1)
    _week_ticks(fig, points)
    return _sized(fig)


def _week_ticks(fig: Chart, points: list[PointData]) -> None:
    """Whole weeks on the axis, about 20 ticks at most, from the first week's bar to the
    last's (Plotly's own padding for the diamonds began the axis at week −3)."""
    weeks = [int(c["week"]) for point in points for c in _cohorts(point)]
    span = max(weeks) - min(weeks) + 1 if weeks else 1
    fig.update_xaxes(tick0=0, dtick=max(1, math.ceil(span / 20)))
    if weeks:
        fig.update_xaxes(range=[min(weeks) - 0.6, max(weeks) + 0.6])


def _cohort_figure(points: list[PointData]) -> Chart:
    fig = _figure("What each entry week paid in and got back (CNY)", WEEK_TITLE, "CNY")
    for point in points:
        cohorts = _cohorts(point)
        weeks = [int(c["week"]) for c in cohorts]
        for key, name, color in MONEY_OUT:
            fig.add_trace(
                bar(
                    x=weeks,
                    y=[_number(c.get(key)) for c in cohorts],
                    marker={"color": color},
                    name=name,
                    hovertemplate=f"{name}: ¥%{{y:,.0f}}<extra></extra>",
                )
            )
        fig.add_trace(
            scatter(
                x=weeks,
                y=[_number(c.get("money_in")) for c in cohorts],
                mode="markers",
                marker={"symbol": "diamond", "size": 11, "color": "#111"},
                name="Money paid in",
                hovertemplate="Money paid in: ¥%{y:,.0f}<extra></extra>",
            )
        )
    _with_menu(fig, points, len(MONEY_OUT) + 1)
    fig.update_layout(barmode="stack", hovermode="x unified")
    _week_ticks(fig, points)
    fig.update_yaxes(tickformat=",.0f", tickprefix="¥")
    return fig


def _plot(div_id: str, fig: Chart) -> Markup:
    """The chart's <div> and the script that draws it (plotly.js itself is in <head>)."""
    # Chart.html escapes the figure's strings for the JSON inside <script>; the page's own
    # text is escaped by the templates.
    return Markup(fig.html(div_id, f"{CHART_HEIGHT}px", PLOT_CONFIG))


@functools.cache
def _plotlyjs() -> str:
    """plotly.js, the bundle that plotly's Python package ships (package_data/plotly.min.js),
    read once. Found without importing the package: its import alone took longer than the
    rest of the report."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the report needs plotly.js: install the plotly package")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return (folder / "package_data" / "plotly.min.js").read_text(encoding="utf-8")


# -- text ----------------------------------------------------------------------------------


def _cny(value: Any, places: int | None = None) -> str:
    number = _number(value)
    if math.isnan(number):
        return "n/a"
    if places is None:
        places = 0 if abs(number) >= 1000 else 2
    sign = "-" if number < 0 else ""
    return f"{sign}¥{abs(number):,.{places}f}"


def _pct(value: Any) -> str:
    number = _number(value)
    return "n/a" if math.isnan(number) else f"{number * 100:.1f}%"


def _day(value: Any) -> str:
    if value is None:
        return "never"
    number = _number(value)
    if math.isnan(number):
        return "n/a"
    return str(int(number)) if number == int(number) else f"{number:.1f}"


LOSS, CONSUMERS_LOSE, HOLDS = "loss", "consumers lose", "holds"
# summary.json's verdict_level: the verdict box's class and its badge.
LEVELS = {
    LOSS: ("verdict-loss", "LOSS from day {day}"),
    CONSUMERS_LOSE: ("verdict-warn", "The platform holds, most paying consumers lose"),
    HOLDS: ("verdict-ok", "Holds: the margin covers the promises"),
}


def _level(point: Mapping[str, Any]) -> str:
    """The point's verdict level; a summary from before verdict_level: from loss_from_day."""
    level = point.get("verdict_level")
    if level in LEVELS:
        return str(level)
    return LOSS if point.get("loss_from_day") is not None else HOLDS


def _verdict(point: PointData) -> dict[str, Any]:
    level = _level(point.summary)
    css, badge = LEVELS[level]
    return {
        "level": level,
        "css": css,
        "badge": badge.format(day=_day(point.summary.get("loss_from_day"))),
        "label": point.text,
        "text": str(point.summary.get("verdict", "")),
        "explanations": _strings(point.summary.get("explanations")),
    }


def _spread_of(point: PointData, key: str) -> Mapping[str, Any]:
    spread = point.summary.get(key)
    return spread if isinstance(spread, Mapping) else {}


def _mean_ci(spread: Mapping[str, Any]) -> str:
    """The mean and the half width of its 95 % interval: "¥1,500 ± ¥300"; no interval (one
    run, or an older summary): the mean alone."""
    mean = _number(spread.get("mean"))
    if math.isnan(mean):
        return "n/a"
    low, high = _number(spread.get("ci95_low")), _number(spread.get("ci95_high"))
    if math.isnan(low) or math.isnan(high):
        return _cny(mean)
    return f"{_cny(mean)} ± {_cny((high - low) / 2)}"


def _row(point: PointData, sweep_params: list[str], sensitivity: bool) -> dict[str, Any]:
    """One row of the table of sweep points, as text; `neg` marks the amounts below zero."""
    params = point.summary.get("params") or {}
    price = _spread_of(point, "final_price")
    result = _spread_of(point, "platform_result")
    loss = point.summary.get("loss_from_day")
    gini = _number(point.summary.get("gini"))
    var = point.summary.get("value_at_risk_95")
    level = _level(point.summary)
    return {
        "params": [point.text] if sensitivity else [str(params.get(p, "")) for p in sweep_params],
        "runs": f"{int(point.summary.get('runs', point.runs)):,}",
        "price": [_cny(price.get(k), 4) for k in ("p5", "median", "p95")],
        "result": [
            (_cny(result.get(k)), _number(result.get(k)) < 0) for k in ("p5", "median", "p95")
        ],
        "mean": (_mean_ci(result), _number(result.get("mean")) < 0),
        "var": _cny(var) if var is not None else "n/a",
        "css": {LOSS: "row-loss", CONSUMERS_LOSE: "row-warn"}.get(level, ""),
        "level": level,
        "loss": loss is not None,
        "loss_day": _day(loss),
        "in_profit": _pct(point.summary.get("share_in_profit")),
        "losing": _pct(point.summary.get("share_losing")),
        "gini": "n/a" if math.isnan(gini) else f"{gini:.2f}",
        # The position in parts (medians over runs) and what the pool owes.
        "parts": [
            (_cny(median), _number(median) < 0)
            for median in (_spread_of(point, key).get("median") for key, *_ in POSITION_PARTS)
        ],
        "pool": [_cny(_spread_of(point, key).get("median")) for key, _name in POOL_PARTS],
    }


def _provenance(summary: Mapping[str, Any]) -> dict[str, Any]:
    """What reproduces the result: the tool, the scenario file's bytes, the engine, the runs
    and seed, and the exact parameters (as JSON text, lists and booleans included)."""
    params = summary.get("params")
    engine = summary.get("engine_detail") or summary.get("engine")
    return {
        "tool_version": _text(summary.get("tool_version")) or "not recorded",
        "sha256": _text(summary.get("scenario_sha256")) or "not recorded",
        "engine": _text(engine) or "not recorded",
        "runs": f"{int(summary.get('runs', 0)):,}",
        "seed": _text(summary.get("seed")),
        "params": [
            (str(name), value if isinstance(value, str) else json.dumps(value))
            for name, value in sorted(params.items())
        ]
        if isinstance(params, Mapping)
        else [],
    }


# -- comparison ----------------------------------------------------------------------------

# One result: (label, summary.json as a dict, metrics.csv's rows as dicts).
Result = tuple[str, dict[str, Any], list[dict[str, Any]]]
SIDE_COLOURS = ("#1f77b4", "#d62728")  # left, right


def load_result(directory: Path, label: str | None = None) -> Result:
    """One result as `write_comparison` takes it, from the folder `tokenmall simulate --out`
    wrote: its summary.json and metrics.csv (rows as csv reads them, values as text: the
    report reads numbers from text; no metrics.csv: no daily rows, the charts stay empty).
    `label` names it on the page; by default the folder's name."""
    summary = json.loads((directory / "summary.json").read_text(encoding="utf-8"))
    metrics = directory / "metrics.csv"
    rows: list[dict[str, Any]] = []
    if metrics.exists():
        with metrics.open(newline="", encoding="utf-8") as handle:
            rows = [dict(row) for row in csv.DictReader(handle)]
    return (label if label is not None else directory.resolve().name), summary, rows


def write_comparison(path: Path, left: Result, right: Result) -> None:
    """Write one self-contained HTML page (offline, as `write_report`'s) comparing two results.

    `left` and `right` are each (label, summary, daily rows): the label names the result on
    the page (a folder name, "before", "margin 30 %"), the summary is summary.json as a dict
    and the daily rows are metrics.csv's rows as dicts (numbers or their text), as
    `write_report` takes them; `load_result(folder)` reads both from a folder. Differences are
    right − left.

    When both summaries have the same points (the same sweep values), each point is compared
    with its counterpart; otherwise the first point of each (the page says so). The page shows
    what differs between the two (scenario file, parameters, engine), the headline figures of
    each pair with their differences, and the price and the platform's position over the days,
    the two results drawn over each other (with several pairs, a menu picks one)."""
    sides = []
    for (label, summary, daily), colour in zip((left, right), SIDE_COLOURS, strict=True):
        sweep_params = [str(name) for name in summary.get("sweep_params", [])]
        points = _points(summary, daily, sweep_params)
        sides.append((str(label), summary, points, colour))
    keys = [
        [json.dumps(p.summary.get("params") or {}, sort_keys=True) for p in s[2]] for s in sides
    ]
    matched = bool(keys[0]) and sorted(keys[0]) == sorted(keys[1])
    left_points, right_points = sides[0][2], sides[1][2]
    if matched:
        by_key = dict(zip(keys[1], right_points, strict=True))
        pairs = [(point, by_key[key]) for key, point in zip(keys[0], left_points, strict=True)]
    else:
        pairs = [(left_points[0], right_points[0])] if left_points and right_points else []
    labels = [sides[0][0], sides[1][0]]
    if labels[0] == labels[1]:  # two folders of the same name: still tell them apart
        labels = [f"{labels[0]} (left)", f"{labels[1]} (right)"]
    coloured = [
        (
            _side(a, labels[0], SIDE_COLOURS[0], len(pairs)),
            _side(b, labels[1], SIDE_COLOURS[1], len(pairs)),
        )
        for a, b in pairs
    ]
    settings = [a.text for a, _b in pairs]
    charts = (
        (
            "chart-compare-price",
            "price",
            "1. Price of one EP",
            _compare_figure(coloured, settings, "price"),
        ),
        (
            "chart-compare-platform",
            "platform",
            "2. The platform's position",
            _compare_figure(coloured, settings, "platform_result"),
        ),
    )
    document = (
        _environment()
        .get_template("compare.html")
        .render(
            labels=labels,
            sides=[_side_facts(label, side[1]) for label, side in zip(labels, sides, strict=True)],
            same_scenario=_same(sides[0][1], sides[1][1], "scenario_sha256"),
            params=_param_differences(sides[0][1], sides[1][1]),
            matched=matched,
            pairs=[_pair_rows(a, b) for a, b in pairs],
            charts=[
                {"id": div_id, "key": key, "title": title, "plot": _plot(div_id, fig)}
                for div_id, key, title, fig in charts
            ],
            font_family=Markup(FONT_FAMILY),
            plotlyjs=Markup(_plotlyjs()),
        )
    )
    path.write_text(document, encoding="utf-8")


def _side(point: PointData, label: str, colour: str, pairs: int) -> PointData:
    """A point drawn as one side of the comparison: named by the result (and its setting, when
    several pairs are compared), in the side's colour."""
    text = f"{label}: {point.text}" if pairs > 1 and point.text else label
    return PointData(
        label=html.escape(text),
        text=text,
        color=colour,
        summary=point.summary,
        days=point.days,
        runs=point.runs,
        series=point.series,
    )


def _compare_figure(
    pairs: list[tuple[PointData, PointData]], settings: list[str], metric: str
) -> Chart:
    platform = metric == "platform_result"
    title = (
        "The platform's position since day 0 (CNY), median and band of each result"
        if platform
        else "Price of one EP (CNY), median and band of each result"
    )
    fig = _figure(title, "Day", "CNY" if platform else "CNY per EP")
    number = ",.0f" if platform else ",.4f"
    counts = []
    for pair in pairs:
        before = len(fig.data)
        for side, point in enumerate(pair):
            _add_band(fig, point, metric, number, single=False)
            if side == 1:  # dashed: where the two medians coincide, the left one shows
                fig.data[-1]["line"]["dash"] = "dash"
        counts.append(len(fig.data) - before)
    if len(pairs) > 1:  # a menu of pairs, as `_with_menu` (sides may differ in traces)
        owner = [n for n, count in enumerate(counts) for _ in range(count)]
        for index, trace in enumerate(fig.data):
            trace["visible"] = owner[index] == 0
        fig.update_layout(
            updatemenus=[
                {
                    "type": "dropdown",
                    "buttons": [
                        {
                            "label": html.escape(setting or BASE_LABEL),
                            "method": "restyle",
                            "args": [{"visible": [o == n for o in owner]}],
                        }
                        for n, setting in enumerate(settings)
                    ],
                    "x": 1,
                    "xanchor": "right",
                    "y": 1.02,
                    "yanchor": "bottom",
                    "showactive": True,
                }
            ]
        )
    if platform:
        fig.add_hline(y=0, line={"color": "#222", "width": 1.5})
        fig.update_yaxes(tickformat=",.0f", tickprefix="¥")
    else:
        fig.update_yaxes(tickformat=",.4f", tickprefix="¥")
    _day_axis(fig, [point for pair in pairs for point in pair])
    return _sized(fig)


def _same(left: Mapping[str, Any], right: Mapping[str, Any], key: str) -> bool | None:
    """Whether both summaries record the same value; None when either does not record it."""
    if left.get(key) is None or right.get(key) is None:
        return None
    return bool(left[key] == right[key])


def _side_facts(label: str, summary: Mapping[str, Any]) -> dict[str, str]:
    provenance = _provenance(summary)
    sweep = ", ".join(str(name) for name in summary.get("sweep_params", []))
    return {
        "label": label,
        "scenario": _text(summary.get("scenario")),
        "days": f"{int(summary.get('days', 0)):,}",
        "runs": provenance["runs"],
        "seed": provenance["seed"],
        "varied": (sweep + (" (one at a time)" if _sensitivity(summary) else "")) or "nothing",
        "engine": provenance["engine"],
        "tool_version": provenance["tool_version"],
        "sha256": provenance["sha256"],
    }


def _param_differences(
    left: Mapping[str, Any], right: Mapping[str, Any]
) -> list[tuple[str, str, str]]:
    """The SPEC parameters whose values differ: (name, left, right); absent on a side: "—"."""
    a, b = left.get("params"), right.get("params")
    if not isinstance(a, Mapping) or not isinstance(b, Mapping):
        return []

    def shown(params: Mapping[str, Any], name: str) -> str:
        if name not in params:
            return "—"
        value = params[name]
        return value if isinstance(value, str) else json.dumps(value)

    return [
        (name, shown(a, name), shown(b, name))
        for name in sorted(set(a) | set(b))
        if a.get(name, ...) != b.get(name, ...)
    ]


LEVEL_WORDS = {
    LOSS: "loss",
    CONSUMERS_LOSE: "the platform holds, most paying consumers lose",
    HOLDS: "holds",
}


def _difference(left: float, right: float, unit: str) -> tuple[str, bool]:
    """right − left as text with its sign, and whether it is below zero."""
    if math.isnan(left) or math.isnan(right):
        return "n/a", False
    delta = right - left
    if unit == "cny":
        text = _cny(delta) if delta < 0 else f"+{_cny(delta)}"
    elif unit == "price":
        text = _cny(delta, 4) if delta < 0 else f"+{_cny(delta, 4)}"
    elif unit == "pp":
        text = f"{delta * 100:+.1f} pp"
    elif unit == "days":
        text = f"{delta:+,.0f} days"
    else:
        text = f"{delta:+.2f}"
    return text.replace("+-", "-"), delta < 0


def _pair_rows(left: PointData, right: PointData) -> dict[str, Any]:
    """The headline figures of two points (left, right) and their differences, as text."""
    rows: list[dict[str, Any]] = []
    levels = [_level(p.summary) for p in (left, right)]
    rows.append(
        {
            "name": "Verdict",
            "values": [LEVEL_WORDS[level] for level in levels],
            "levels": [LEVELS[level][0] for level in levels],
            "difference": "same" if levels[0] == levels[1] else "changed",
            "negative": False,
        }
    )

    def median(point: PointData, key: str) -> float:
        return _number(_spread_of(point, key).get("median"))

    figures: list[tuple[str, Any, str]] = [
        ("Final price (median)", lambda p: median(p, "final_price"), "price"),
        ("Platform position at the end (median)", lambda p: median(p, "platform_result"), "cny"),
        (
            "Platform position (mean ± 95% CI)",
            lambda p: _number(_spread_of(p, "platform_result").get("mean")),
            "cny",
        ),
        ("Value at risk (95%)", lambda p: _number(p.summary.get("value_at_risk_95")), "cny"),
        ("Operator's cash (median)", lambda p: median(p, "operator_cash"), "cny"),
        ("SP owed (median)", lambda p: median(p, "sp_owed"), "cny"),
        ("Its own EP (median)", lambda p: median(p, "treasury_value"), "cny"),
        ("Cash owed out of the pool (median)", lambda p: median(p, "cash_owed"), "cny"),
        ("EP held by consumers and merchants (median)", lambda p: median(p, "ep_held"), "cny"),
        ("Consumers in profit", lambda p: _number(p.summary.get("share_in_profit")), "pp"),
        ("Consumers losing", lambda p: _number(p.summary.get("share_losing")), "pp"),
        ("Gini of returns", lambda p: _number(p.summary.get("gini")), "ratio"),
    ]
    for name, value_of, unit in figures:
        a, b = value_of(left), value_of(right)
        if name.startswith("Platform position (mean"):
            shown = [_mean_ci(_spread_of(p, "platform_result")) for p in (left, right)]
        elif unit == "price":
            shown = [_cny(v, 4) for v in (a, b)]
        elif unit == "cny":
            shown = [_cny(v) for v in (a, b)]
        elif unit == "pp":
            shown = [_pct(v) for v in (a, b)]
        else:
            shown = ["n/a" if math.isnan(v) else f"{v:.2f}" for v in (a, b)]
        text, negative = _difference(a, b, unit)
        rows.append(
            {
                "name": name,
                "values": shown,
                "levels": ["", ""],
                "difference": text,
                "negative": negative,
            }
        )
    days = [p.summary.get("loss_from_day") for p in (left, right)]
    loss_difference = (
        _difference(_number(days[0]), _number(days[1]), "days")
        if None not in days
        else ("same" if days[0] == days[1] else "changed", False)
    )
    rows.append(
        {
            "name": "Loss from day",
            "values": [_day(day) for day in days],
            "levels": ["", ""],
            "difference": loss_difference[0],
            "negative": loss_difference[1],
        }
    )
    rows.append(
        {
            "name": "Runs",
            "values": [f"{int(p.summary.get('runs', p.runs)):,}" for p in (left, right)],
            "levels": ["", ""],
            "difference": "",
            "negative": False,
        }
    )
    return {"setting": left.text, "rows": rows}
