"""The simulator's report: one self-contained HTML file an operator can open offline.

`write_report` takes what the runner produces (the summary of every sweep point and one daily
row per run and day) and writes, in this order: the title, the verdict of each sweep point
(red when the platform ends up paying out of its own pocket, green otherwise), a table of the
sweep points, and six interactive charts, each with a short "How to read this" paragraph.

plotly.js is embedded once, inline, in <head>; every chart is a plotly <div> after it, so the
file needs no network. Runs are never drawn one by one: each chart shows the median over the
runs of a sweep point, day by day, with a band from the 5th to the 95th percentile where it
helps. Every piece of text that comes from the scenario goes through html.escape.
"""

import html
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go  # type: ignore[import-untyped]
from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# The daily metrics the charts need; each is aggregated over the runs of a sweep point.
SERIES = (
    "price",
    "platform_result",
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
FLOWS = (  # chart 3: (metric, legend name, colour)
    ("sales", "Cash sales", "#1f77b4"),
    ("contributions", "Contributions to the pool", "#9467bd"),
    ("dividends", "Dividends paid", "#ff7f0e"),
    ("cash_out", "Cash paid out (sales of EP, 出局)", "#d62728"),
)
MONEY_OUT = (  # chart 6: (cohort key, legend name, colour)
    ("cash_out", "Cash received", "#1f77b4"),
    ("sp", "SP (恒定积分)", "#2ca02c"),
    ("goods", "Goods", "#ff7f0e"),
    ("ep_value", "EP still held (at the last price)", "#9467bd"),
)
CHART_HEIGHT = 500
GRID = "#e3e3e3"


@dataclass(frozen=True)
class Band:
    """A metric over the days: 5th percentile, median and 95th percentile across runs."""

    p5: FloatArray
    median: FloatArray
    p95: FloatArray


@dataclass(frozen=True)
class PointData:
    label: str  # the sweep parameters, escaped (text from the scenario); "" without a sweep
    color: str
    summary: Mapping[str, Any]
    days: IntArray
    runs: int
    series: dict[str, Band]


def write_report(path: Path, summary: dict[str, Any], daily: list[dict[str, Any]]) -> None:
    """Write the HTML report for one simulation (all its sweep points) to `path`."""
    sweep_params = [str(name) for name in summary.get("sweep_params", [])]
    points = _points(summary, daily, sweep_params)
    charts = (
        ("chart-price", "1. Price of one EP", PRICE_TEXT, _price_figure(points)),
        ("chart-platform", "2. The platform's result", PLATFORM_TEXT, _platform_figure(points)),
        ("chart-flows", "3. Daily money in and out", FLOWS_TEXT, _flows_figure(points)),
        ("chart-sp", "4. SP outstanding against its backing", SP_TEXT, _sp_figure(points)),
        ("chart-roi", "5. Return by entry week", ROI_TEXT, _roi_figure(points)),
        ("chart-cohorts", "6. Money in and out by entry week", COHORT_TEXT, _cohort_figure(points)),
    )
    sections = [_chart_section(*chart) for chart in charts]
    name = html.escape(str(summary.get("scenario", "")))
    document = PAGE.format(
        title=name,
        css=CSS,
        plotlyjs=get_plotlyjs(),
        header=_header(summary, sweep_params),
        verdicts=_verdicts(points, multiple=bool(sweep_params) or len(points) > 1),
        table=_table(points, summary, sweep_params),
        glossary=GLOSSARY,
        charts="\n".join(sections),
    )
    path.write_text(document, encoding="utf-8")


# -- data ----------------------------------------------------------------------------------


def _points(
    summary: Mapping[str, Any], daily: Sequence[Mapping[str, Any]], sweep_params: list[str]
) -> list[PointData]:
    """Each sweep point of the summary with its daily rows aggregated over its runs."""
    rows_by_key: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in daily:
        key = tuple(str(row.get(name, "")) for name in sweep_params)
        rows_by_key.setdefault(key, []).append(row)
    points = []
    for index, point in enumerate(summary.get("points", [])):
        params = {str(k): str(v) for k, v in (point.get("params") or {}).items()}
        key = tuple(params.get(name, "") for name in sweep_params)
        days, runs, series = _aggregate(rows_by_key.get(key, []))
        points.append(
            PointData(
                label=html.escape(_label(params, sweep_params)),
                color=PALETTE[index % len(PALETTE)],
                summary=point,
                days=days,
                runs=runs,
                series=series,
            )
        )
    return points


def _label(params: Mapping[str, str], sweep_params: list[str]) -> str:
    if not sweep_params:
        return ""  # one setting: nothing to tell apart
    return ", ".join(f"{name} = {params.get(name, '')}" for name in sweep_params)


def _aggregate(rows: Sequence[Mapping[str, Any]]) -> tuple[IntArray, int, dict[str, Band]]:
    """Days, number of runs, and each metric's percentiles across runs, day by day."""
    days = sorted({int(row["day"]) for row in rows})
    runs = sorted({str(row["run"]) for row in rows})
    day_index = {day: i for i, day in enumerate(days)}
    run_index = {run: i for i, run in enumerate(runs)}
    rows_at = np.fromiter((run_index[str(row["run"])] for row in rows), np.intp, len(rows))
    cols_at = np.fromiter((day_index[int(row["day"])] for row in rows), np.intp, len(rows))
    series = {}
    for metric in SERIES:
        grid = np.full((len(runs), len(days)), np.nan)
        grid[rows_at, cols_at] = np.fromiter(
            (_number(row.get(metric)) for row in rows), np.float64, len(rows)
        )
        if grid.size == 0:
            empty = np.zeros(0)
            series[metric] = Band(empty, empty, empty)
            continue
        with warnings.catch_warnings():  # a day no run reached: NaN, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            p5, median, p95 = np.nanpercentile(grid, [5, 50, 95], axis=0)
        series[metric] = Band(p5, median, p95)
    return np.asarray(days, dtype=np.int64), len(runs), series


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# -- charts --------------------------------------------------------------------------------


def _figure(title: str, x_title: str, y_title: str) -> Any:
    fig = go.Figure()
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left"},
        template="none",
        height=CHART_HEIGHT,
        margin={"l": 80, "r": 20, "t": 80, "b": 130},  # the legend sits in the bottom margin
        font={"family": "system-ui, -apple-system, 'Segoe UI', sans-serif", "size": 13},
        paper_bgcolor="white",
        plot_bgcolor="white",
        legend={"orientation": "h", "x": 0, "y": 0.01, "yref": "container", "yanchor": "bottom"},
        hoverlabel={"namelength": -1},
    )
    fig.update_xaxes(title_text=x_title, gridcolor=GRID, zeroline=False, showline=True)
    fig.update_yaxes(title_text=y_title, gridcolor=GRID, zeroline=False, showline=True)
    return fig


def _rgba(color: str, alpha: float) -> str:
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def _add_band(fig: Any, point: PointData, metric: str, number: str) -> None:
    """Median line with the 5th-95th percentile band (the band only when runs differ).

    `number` is the d3 format of the amounts in the hover text, such as ",.4f"."""
    band = point.series[metric]
    spread = point.runs > 1
    prefix = f"{point.label}: " if point.label else ""
    if spread:
        fig.add_trace(
            go.Scatter(
                x=point.days,
                y=band.p95,
                mode="lines",
                line={"width": 0, "color": point.color},
                legendgroup=point.label,
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=point.days,
                y=band.p5,
                mode="lines",
                line={"width": 0, "color": point.color},
                fill="tonexty",
                fillcolor=_rgba(point.color, 0.18),
                legendgroup=point.label,
                name=f"{prefix}5–95% of runs",
                hoverinfo="skip",
            )
        )
    hover = f"day %{{x}}<br>median ¥%{{y:{number}}}"
    if spread:
        hover += f"<br>5–95%: ¥%{{customdata[0]:{number}}} to ¥%{{customdata[1]:{number}}}"
    fig.add_trace(
        go.Scatter(
            x=point.days,
            y=band.median,
            mode="lines",
            line={"width": 2.2, "color": point.color},
            legendgroup=point.label,
            name=f"{prefix}median",
            customdata=np.column_stack([band.p5, band.p95]) if spread else None,
            hovertemplate=f"{hover}<extra>{point.label}</extra>",
        )
    )


def _price_figure(points: list[PointData]) -> Any:
    fig = _figure("Price of one EP (CNY), median and 5–95% band of runs", "Day", "CNY per EP")
    for point in points:
        _add_band(fig, point, "price", ",.4f")
    fig.update_yaxes(tickformat=",.4f", tickprefix="¥")
    return fig


def _platform_figure(points: list[PointData]) -> Any:
    fig = _figure(
        "Platform result since day 1 (CNY, cumulative), median and 5–95% band",
        "Day",
        "CNY",
    )
    for point in points:
        _add_band(fig, point, "platform_result", ",.0f")
        loss_day = point.summary.get("loss_from_day")
        if loss_day is not None:
            fig.add_vline(
                x=float(loss_day),
                line={"color": point.color, "dash": "dot", "width": 1.5},
                annotation_text=f"loss from day {_day(loss_day)}",
                annotation_position="top left",
                annotation_font_color=point.color,
            )
    fig.add_hline(y=0, line={"color": "#222", "width": 1.5})
    fig.update_yaxes(tickformat=",.0f", tickprefix="¥")
    return fig


def _with_menu(fig: Any, points: list[PointData], per_point: int) -> None:
    """With more than one sweep point: a menu that shows one point's traces at a time."""
    if len(points) < 2:  # a menu of one is no menu
        return
    total = per_point * len(points)
    for index, trace in enumerate(fig.data):
        trace.visible = index < per_point
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
            {
                "type": "dropdown",
                "buttons": buttons,
                "x": 1,
                "xanchor": "right",
                "y": 1.02,
                "yanchor": "bottom",
                "showactive": True,
            }
        ]
    )


def _flows_figure(points: list[PointData]) -> Any:
    fig = _figure("Daily amounts (CNY), median of runs", "Day", "CNY per day")
    for point in points:
        for metric, name, color in FLOWS:
            fig.add_trace(
                go.Scatter(
                    x=point.days,
                    y=point.series[metric].median,
                    mode="lines",
                    line={"width": 1.8, "color": color},
                    name=name,
                    hovertemplate=f"{name}: ¥%{{y:,.2f}}<extra></extra>",
                )
            )
    _with_menu(fig, points, len(FLOWS))
    fig.update_yaxes(tickformat=",.0f", tickprefix="¥")
    fig.update_layout(hovermode="x unified")
    return fig


def _sp_figure(points: list[PointData]) -> Any:
    fig = _figure("SP outstanding and its backing (CNY), median of runs", "Day", "CNY")
    for point in points:
        for metric, name, dash in (
            ("sp_outstanding", "SP outstanding", "solid"),
            ("sp_backing", "backing (treasury EP × price)", "dash"),
        ):
            label = f"{point.label}: {name}" if len(points) > 1 else name
            fig.add_trace(
                go.Scatter(
                    x=point.days,
                    y=point.series[metric].median,
                    mode="lines",
                    line={"width": 2, "color": point.color, "dash": dash},
                    legendgroup=point.label,
                    name=label,
                    hovertemplate="day %{x}: ¥%{y:,.2f}<extra>" + label + "</extra>",
                )
            )
    fig.update_yaxes(tickformat=",.0f", tickprefix="¥")
    return fig


def _cohorts(point: PointData) -> list[Mapping[str, Any]]:
    return list(point.summary.get("cohorts") or [])


def _roi_figure(points: list[PointData]) -> Any:
    fig = _figure(
        "Return on money in, by the week consumers joined (1.0 = got their money back)",
        "Entry week",
        "Money out ÷ money in",
    )
    for point in points:
        cohorts = _cohorts(point)
        fig.add_trace(
            go.Bar(
                x=[int(c["week"]) for c in cohorts],
                y=[_number(c.get("roi")) for c in cohorts],
                marker_color=point.color,
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
    return fig


def _week_ticks(fig: Any, points: list[PointData]) -> None:
    """Whole weeks on the axis, about 20 ticks at most."""
    weeks = [int(c["week"]) for point in points for c in _cohorts(point)]
    span = max(weeks) - min(weeks) + 1 if weeks else 1
    fig.update_xaxes(tick0=0, dtick=max(1, math.ceil(span / 20)))


def _cohort_figure(points: list[PointData]) -> Any:
    fig = _figure("What each entry week paid in and got back (CNY)", "Entry week", "CNY")
    for point in points:
        cohorts = _cohorts(point)
        weeks = [int(c["week"]) for c in cohorts]
        for key, name, color in MONEY_OUT:
            fig.add_trace(
                go.Bar(
                    x=weeks,
                    y=[_number(c.get(key)) for c in cohorts],
                    marker_color=color,
                    name=name,
                    hovertemplate=f"{name}: ¥%{{y:,.0f}}<extra></extra>",
                )
            )
        fig.add_trace(
            go.Scatter(
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


def _chart_section(div_id: str, title: str, text: str, fig: Any) -> str:
    plot = str(
        fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            default_height=f"{CHART_HEIGHT}px",
            config={"displaylogo": False, "responsive": True},
        )
    )
    return (
        f'<section class="chart">\n<h2>{title}</h2>\n'
        f'<p class="how"><strong>How to read this.</strong> {text}</p>\n{plot}\n</section>'
    )


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


def _header(summary: Mapping[str, Any], sweep_params: list[str]) -> str:
    name = html.escape(str(summary.get("scenario", "")))
    description = html.escape(str(summary.get("description", "")))
    swept = ", ".join(html.escape(p) for p in sweep_params) or "nothing (one setting)"
    return (
        f"<h1>Simulation report: {name}</h1>\n"
        f'<p class="description">{description}</p>\n'
        f'<p class="meta">{int(summary.get("days", 0)):,} days simulated · '
        f"{int(summary.get('runs', 0)):,} runs per setting · seed "
        f"{html.escape(str(summary.get('seed', '')))} · varied: {swept}</p>"
    )


def _verdicts(points: list[PointData], multiple: bool) -> str:
    if not points:
        return '<p class="verdict">The summary holds no results.</p>'
    losing = sum(1 for p in points if p.summary.get("loss_from_day") is not None)
    lead = ""
    if multiple:
        lead = (
            f'<p class="lead">{losing} of {len(points)} settings end in a loss for the platform: '
            "its margin no longer covers what it pays for the points.</p>\n"
        )
    boxes = []
    for point in points:
        loss = point.summary.get("loss_from_day") is not None
        css = "verdict-loss" if loss else "verdict-ok"
        badge = (
            f"LOSS from day {_day(point.summary.get('loss_from_day'))}"
            if loss
            else "Margin covers the promises"
        )
        label = f'<p class="point">{point.label}</p>' if point.label else ""
        verdict = html.escape(str(point.summary.get("verdict", "")))
        boxes.append(
            f'<div class="verdict {css}">{label}<p class="badge">{badge}</p><p>{verdict}</p></div>'
        )
    return lead + "\n".join(boxes)


def _table(points: list[PointData], summary: Mapping[str, Any], sweep_params: list[str]) -> str:
    params_head = "".join(f'<th rowspan="2">{html.escape(p)}</th>' for p in sweep_params)
    head = (
        f"<thead><tr>{params_head}"
        '<th rowspan="2">Runs</th>'
        '<th colspan="3">Final price (CNY per EP)</th>'
        f'<th colspan="3">Platform result at day {int(summary.get("days", 0)):,} (CNY)</th>'
        '<th rowspan="2">Loss from day</th>'
        '<th rowspan="2">Consumers in profit</th>'
        '<th rowspan="2">Gini of returns</th></tr>\n'
        "<tr><th>p5</th><th>median</th><th>p95</th><th>p5</th><th>median</th><th>p95</th>"
        "</tr></thead>"
    )
    rows = []
    for point in points:
        params = point.summary.get("params") or {}
        cells = [f"<td>{html.escape(str(params.get(p, '')))}</td>" for p in sweep_params]
        cells.append(f'<td class="num">{int(point.summary.get("runs", point.runs)):,}</td>')
        price = point.summary.get("final_price") or {}
        cells += [f'<td class="num">{_cny(price.get(k), 4)}</td>' for k in ("p5", "median", "p95")]
        result = point.summary.get("platform_result") or {}
        for key in ("p5", "median", "p95"):
            neg = " neg" if _number(result.get(key)) < 0 else ""
            cells.append(f'<td class="num{neg}">{_cny(result.get(key))}</td>')
        loss = point.summary.get("loss_from_day")
        cells.append(f'<td class="num{" neg" if loss is not None else ""}">{_day(loss)}</td>')
        cells.append(f'<td class="num">{_pct(point.summary.get("share_in_profit"))}</td>')
        gini = _number(point.summary.get("gini"))
        cells.append(f'<td class="num">{"n/a" if math.isnan(gini) else f"{gini:.2f}"}</td>')
        row_css = ' class="row-loss"' if loss is not None else ""
        rows.append(f"<tr{row_css}>{''.join(cells)}</tr>")
    note = (
        '<p class="note">Price and platform result: the 5th percentile, median and 95th '
        "percentile over the runs. Loss from day: the first day from which the platform's "
        "cumulative result stays below zero to the end (median over runs; never: not in the "
        "median run). Consumers in profit: the share who got back more than they paid in, "
        "counting the EP they still hold at the last price. Selling them would pay that price "
        "less the sale fee (10 % by default), and only while the platform lets them sell.</p>"
    )
    body = "\n".join(rows)
    return f'<table class="points">{head}<tbody>\n{body}\n</tbody></table>\n{note}'


PRICE_TEXT = (
    "The price of one EP (股权积分) is the dividend pool (分红池) divided by the EP in "
    "circulation. Each line is the median over the runs of one setting, day by day; the shaded "
    "band holds the middle 90% of runs (from the 5th to the 95th percentile). A rising line is "
    "what consumers are promised. When it flattens or falls, holders start selling and later "
    "buyers stop gaining. A wide band means the outcome depends on luck (who arrives, who buys "
    "when) more than on the rules."
)
PLATFORM_TEXT = (
    "Everything the platform has kept since day 1: its gross margin on cash sales, minus what "
    "it put into the pool (contributions), the dividends it paid, the cost of delivering goods "
    "for redeemed EP, and what it paid into the pool when new EP had to be minted for merchants. "
    "Above the thick zero line the margin still covers the promises; below it the platform is "
    "paying out of its own pocket. A dotted vertical line marks the day from which the median "
    "run stays below zero to the end."
)
FLOWS_TEXT = (
    "Money moving each day (medians over runs, day by day): cash sales coming in, the share of "
    "sales put into the dividend pool, dividends paid to holders, and cash paid to consumers "
    "who sell their EP or are forced out (出局). When the outgoing lines come close to or pass "
    "the sales line, payouts are being funded by money that came in earlier, not by today's "
    "business. With several settings, pick one in the menu at the top right. Hover to see all "
    "four amounts for a day."
)
SP_TEXT = (
    "SP (恒定积分) are worth 1 CNY each and the platform must honour them. The solid line is the "
    "SP held by consumers and merchants; the dashed line is what backs them: the EP the "
    "treasury took in when consumers converted EP to SP, valued at that day's price. While the "
    "dashed line is at or above the solid one, the SP are covered; the gap below it is SP the "
    "platform would have to pay for itself if they were all redeemed at once."
)
ROI_TEXT = (
    "Consumers grouped by the week they joined (week 0 is the first week). ROI is everything a "
    "group got back (cash, SP, goods, and the EP it still holds, valued at the last day's "
    "price) divided by the cash it paid in. Above the break-even line the group is ahead; "
    "below it, it lost money. When the scheme lives on new money, early weeks sit above 1 and "
    "late weeks below: the late joiners carry the loss. EP still held count at full price, but "
    "they only become cash if the pool can pay for them, so a bar propped up by EP is fragile. "
    "Hover to see the share of the group in profit."
)
COHORT_TEXT = (
    "The same groups in CNY. The stacked bar is what a group got back: cash received, SP, "
    "goods, and the EP it still holds (valued at the last day's price). The black diamond is "
    "the cash it paid in. A stack that ends below its diamond is a group that lost money; a "
    "large purple part means most of the gain is still only on paper. With several settings, "
    "pick one in the menu at the top right."
)
GLOSSARY = """<details class="glossary"><summary>Terms used in this report</summary>
<dl>
<dt>EP (股权积分, equity points)</dt><dd>Points a buyer gets with each cash order. Their price is
the dividend pool divided by the EP in circulation.</dd>
<dt>Dividend pool (分红池)</dt><dd>The money set aside from every cash sale (the contribution)
that gives EP their value; sales of EP and forced exits are paid from it.</dd>
<dt>SP (恒定积分, stable points)</dt><dd>Points worth 1 CNY each, used as a wallet at merchants.
Consumers get them by converting EP.</dd>
<dt>Forced exit (出局)</dt><dd>Holders get daily dividends within a quota (分红额度); when the
value of their EP reaches it, their EP are sold automatically and they leave.</dd>
<dt>Platform result</dt><dd>The platform's gross margin on cash sales minus everything it pays
for the points (contributions, dividends, goods, funding for minted EP), added up since
day 1.</dd>
<dt>Median, p5, p95</dt><dd>Each setting is run many times with different random arrivals and
orders. The median is the middle run; only 5% of runs end below p5, and only 5% above
p95.</dd>
<dt>Gini of returns</dt><dd>How unevenly money out is spread over consumers: 0 means everyone
got the same, near 1 means a few got almost everything.</dd>
</dl></details>"""
CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", "PingFang SC", "Microsoft YaHei",
  sans-serif; color: #1d1d1f; background: #fafafa; margin: 0; line-height: 1.55; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 60px; background: #fff; }
h1 { font-size: 1.7em; margin: 0.3em 0 0.2em; }
h2 { font-size: 1.25em; margin: 1.6em 0 0.4em; border-bottom: 1px solid #ddd;
  padding-bottom: 0.2em; }
.description { white-space: pre-line; font-size: 1.05em; margin: 0.3em 0; }
.meta { color: #666; font-size: 0.92em; }
.lead { font-weight: 600; }
.verdict { border-left: 6px solid #999; padding: 10px 16px; margin: 10px 0; border-radius: 4px; }
.verdict p { margin: 0.25em 0; }
.verdict .point { font-weight: 600; color: #333; }
.verdict .badge { font-weight: 700; text-transform: uppercase; font-size: 0.85em;
  letter-spacing: 0.03em; }
.verdict-loss { background: #fdecea; border-left-color: #c62828; }
.verdict-loss .badge { color: #b71c1c; }
.verdict-ok { background: #e8f5e9; border-left-color: #2e7d32; }
.verdict-ok .badge { color: #1b5e20; }
table.points { border-collapse: collapse; font-size: 0.92em; width: 100%; }
table.points th, table.points td { border: 1px solid #d8d8d8; padding: 4px 8px; }
table.points th { background: #f2f2f2; font-weight: 600; }
table.points td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.points td.neg { color: #b71c1c; }
table.points tr.row-loss td:first-child { box-shadow: inset 4px 0 0 #c62828; }
.glossary { margin: 1.2em 0; background: #f7f7f7; padding: 8px 14px; border-radius: 4px; }
.glossary summary { cursor: pointer; font-weight: 600; }
.glossary dt { font-weight: 600; margin-top: 0.5em; }
.glossary dd { margin: 0 0 0 1.2em; }
.note { color: #555; font-size: 0.88em; }
.how { background: #f4f7fb; border-radius: 4px; padding: 8px 12px; }
.chart { margin-bottom: 2em; }
"""
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Simulation report: {title}</title>
<style>{css}</style>
<script type="text/javascript">{plotlyjs}</script>
</head>
<body>
<main>
<header>
{header}
</header>
<section class="verdicts">
<h2>Verdict</h2>
{verdicts}
</section>
<section class="table">
<h2>Settings compared</h2>
{table}
{glossary}
</section>
{charts}
</main>
</body>
</html>
"""
