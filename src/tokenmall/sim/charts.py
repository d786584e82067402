"""Plotly figures as plain data: the JSON that plotly.js draws from, built without plotly's
Python package (importing and validating its figure classes cost the report about 0.3 s).

A `Chart` holds `data` (a list of traces, each a dict such as `scatter(...)` returns) and
`layout` (a dict), and covers the part of plotly's figure API the report uses: `update_layout`
(a deep merge of nested dicts, as plotly's), `update_xaxes` / `update_yaxes` (every axis, or
one subplot's), `add_trace`, `add_shape`, `add_hline` / `add_vline` (shapes and annotations as
plotly makes them), one row of subplots (`Chart.columns`, as `make_subplots(rows=1, ...)`) and
the HTML of a chart (`Chart.html`, as `fig.to_html(full_html=False, include_plotlyjs=False)`).
Nothing is validated: a misspelt property reaches plotly.js, which ignores it.

The JSON is plotly's: numpy arrays and scalars become plain lists and numbers, NaN and ±inf
null (a gap in a line), and `<`, `>` and `/` are written as \\u escapes, so that no string of
a figure (a trace's name, a sweep value) can end the <script> it is in.
"""

import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np

# What plotly writes inside <script> in place of characters that could end it or open a comment
# (plotly.io's JSON engine, the same three).
SCRIPT_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("/", "\\u002f"))
# Where add_hline / add_vline put their annotation for each `annotation_position` (plotly's
# shapeannotation.annotation_params_for_line): (xanchor, yanchor, at x, at y), where x and y are
# "low", "high" or "mid" of the line's two ends (on a domain-spanning axis 0, 1 or 0.5).
LINE_ANNOTATIONS: dict[str, dict[frozenset[str], tuple[str, str, str, str]]] = {
    "vline": {
        frozenset({"top", "left"}): ("right", "top", "high", "high"),
        frozenset({"top", "right"}): ("left", "top", "high", "high"),
        frozenset({"top"}): ("center", "bottom", "high", "high"),
        frozenset({"bottom", "left"}): ("right", "bottom", "low", "low"),
        frozenset({"bottom", "right"}): ("left", "bottom", "low", "low"),
        frozenset({"bottom"}): ("center", "top", "low", "low"),
        frozenset({"left"}): ("right", "middle", "mid", "mid"),
        frozenset({"right"}): ("left", "middle", "mid", "mid"),
    },
    "hline": {
        frozenset({"top", "left"}): ("left", "bottom", "low", "low"),
        frozenset({"top", "right"}): ("right", "bottom", "high", "high"),
        frozenset({"top"}): ("center", "bottom", "mid", "mid"),
        frozenset({"bottom", "left"}): ("left", "top", "low", "low"),
        frozenset({"bottom", "right"}): ("right", "top", "high", "high"),
        frozenset({"bottom"}): ("center", "top", "mid", "mid"),
        frozenset({"left"}): ("right", "middle", "low", "low"),
        frozenset({"right"}): ("left", "middle", "high", "high"),
    },
}


def scatter(**props: Any) -> dict[str, Any]:
    """A scatter trace (lines or markers); a property given as None is left out, as plotly
    leaves it out."""
    return _trace("scatter", props)


def bar(**props: Any) -> dict[str, Any]:
    """A bar trace; a property given as None is left out."""
    return _trace("bar", props)


def _trace(kind: str, props: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": kind} | {key: value for key, value in props.items() if value is not None}


class Chart:
    """One figure: `data` (its traces, drawn in order) and `layout`, both plain and mutable
    (`chart.data[-1]["visible"] = False` is how a trace is changed after it is added)."""

    def __init__(self) -> None:
        self.data: list[dict[str, Any]] = []
        self.layout: dict[str, Any] = {}
        # Each subplot's (x axis, y axis) names in the layout, left to right; one plot: one.
        self._axes: list[tuple[str, str]] = [("xaxis", "yaxis")]

    @classmethod
    def columns(
        cls,
        widths: Sequence[float],
        spacing: float,
        titles: Sequence[str] = (),
    ) -> Self:
        """One row of subplots side by side, as plotly's make_subplots(rows=1, cols=N,
        column_widths=widths, horizontal_spacing=spacing, subplot_titles=titles) lays them
        out: `widths` are relative, `spacing` is the gap between two plots as a fraction of
        the figure's width, and each title is an annotation centred over its plot."""
        chart = cls()
        chart._axes = []
        # plotly's arithmetic, step for step, so that the domains are the same floats.
        total = float(sum(widths))
        sizes = [(1.0 - spacing * (len(widths) - 1)) * (width / total) for width in widths]
        for index, size in enumerate(sizes):
            start = sum(sizes[:index]) + index * spacing
            domain = [start, start + size]
            suffix = str(index + 1) if index else ""
            x_name, y_name = f"xaxis{suffix}", f"yaxis{suffix}"
            chart.layout[x_name] = {"domain": domain, "anchor": f"y{suffix}"}
            chart.layout[y_name] = {"domain": [0.0, 1.0], "anchor": f"x{suffix}"}
            chart._axes.append((x_name, y_name))
            if index < len(titles) and titles[index]:
                chart.layout.setdefault("annotations", []).append(
                    {
                        "y": 1.0,
                        "xref": "paper",
                        "x": sum(domain) / 2.0,
                        "yref": "paper",
                        "text": titles[index],
                        "showarrow": False,
                        "font": {"size": 16},
                        "xanchor": "center",
                        "yanchor": "bottom",
                    }
                )
        return chart

    def update_layout(self, update: Mapping[str, Any] | None = None, **props: Any) -> Self:
        """Merge `update` and then `props` into the layout: a dict into a dict key by key, at
        every depth; anything else (a number, a string, a list) replaces what was there."""
        for changes in (update or {}, props):
            _merge(self.layout, changes)
        return self

    def update_xaxes(self, row: int | None = None, col: int | None = None, **props: Any) -> Self:
        """Merge `props` into every x axis, or only into the subplot's at (row, col)."""
        for name in self._axis_names(0, row, col):
            _merge(self.layout.setdefault(name, {}), props)
        return self

    def update_yaxes(self, row: int | None = None, col: int | None = None, **props: Any) -> Self:
        """Merge `props` into every y axis, or only into the subplot's at (row, col)."""
        for name in self._axis_names(1, row, col):
            _merge(self.layout.setdefault(name, {}), props)
        return self

    def _axis_names(self, which: int, row: int | None, col: int | None) -> list[str]:
        if row not in (None, 1):
            raise ValueError(f"a chart has one row of subplots, not row {row}")
        if col is None:
            return [axes[which] for axes in self._axes]
        return [self._axes[col - 1][which]]

    def add_trace(
        self, trace: dict[str, Any], row: int | None = None, col: int | None = None
    ) -> Self:
        """Append a trace; with (row, col), drawn on that subplot's axes."""
        if col is not None:
            self._axis_names(0, row, col)  # the same check of row and col
            suffix = str(col) if col > 1 else ""
            trace = trace | {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}
        self.data.append(trace)
        return self

    def add_shape(self, **props: Any) -> Self:
        """Append a shape (plotly's layout.shapes), as given."""
        self.layout.setdefault("shapes", []).append(props)
        return self

    def add_hline(
        self,
        y: float,
        annotation_text: str | None = None,
        annotation_position: str = "top right",
        **props: Any,
    ) -> Self:
        """A horizontal line across the plot at `y`, as plotly's add_hline on a figure without
        subplots: from 0 to 1 of the x axis's domain; with `annotation_text`, a note at
        `annotation_position` ("top right", "bottom left", "top", ...)."""
        line = {"type": "line", "x0": 0, "x1": 1, "xref": "x domain", "y0": y, "y1": y}
        return self._spanning(
            "hline", line | {"yref": "y"}, annotation_text, annotation_position, props
        )

    def add_vline(
        self,
        x: float,
        annotation_text: str | None = None,
        annotation_position: str = "top right",
        **props: Any,
    ) -> Self:
        """A vertical line across the plot at `x`, as plotly's add_vline on a figure without
        subplots: from 0 to 1 of the y axis's domain; with `annotation_text`, a note."""
        line = {"type": "line", "x0": x, "x1": x, "xref": "x", "y0": 0, "y1": 1}
        return self._spanning(
            "vline", line | {"yref": "y domain"}, annotation_text, annotation_position, props
        )

    def _spanning(
        self,
        kind: str,
        line: dict[str, Any],
        text: str | None,
        position: str,
        props: dict[str, Any],
    ) -> Self:
        self.add_shape(**(line | props))
        if text is None:
            return self
        places = LINE_ANNOTATIONS[kind].get(frozenset(position.split()))
        if places is None:
            raise ValueError(f"no annotation position {position!r} for a {kind}")
        xanchor, yanchor, at_x, at_y = places
        self.layout.setdefault("annotations", []).append(
            {
                "text": text,
                "xanchor": xanchor,
                "yanchor": yanchor,
                "x": _end(line, "x", at_x),
                "y": _end(line, "y", at_y),
                "showarrow": False,
                "xref": line["xref"],
                "yref": line["yref"],
            }
        )
        return self

    def figure(self) -> dict[str, Any]:
        """The figure as plotly.js takes it: {"data": [...], "layout": {...}}, plain JSON
        values only (see `plain`)."""
        return {"data": plain(self.data), "layout": plain(self.layout)}

    def html(self, div_id: str, default_height: str, config: Mapping[str, Any]) -> str:
        """The chart's <div> and the <script> that draws it with Plotly.newPlot, for a page
        that loads plotly.js before it: what plotly's to_html(full_html=False,
        include_plotlyjs=False, div_id=..., default_height=..., config=...) writes (the
        height is the layout's, or `default_height`, a CSS length such as "500px")."""
        height = self.layout.get("height")
        css_height = default_height if height is None else f"{height}px"
        figure = self.figure()  # plain already
        call = ", ".join(
            (
                script_json(div_id),
                _script_safe(figure["data"]),
                _script_safe(figure["layout"]),
                script_json(config),
            )
        )
        return (
            f'<div style="height:{html.escape(css_height)}; width:100%;">'
            f'<div id="{html.escape(div_id)}" class="plotly-graph-div"'
            ' style="height:100%; width:100%;"></div>'
            "<script>window.PLOTLYENV=window.PLOTLYENV || {};"
            f"if (document.getElementById({script_json(div_id)})) {{Plotly.newPlot({call})}};"
            "</script></div>"
        )


def _end(line: Mapping[str, Any], axis: str, which: str) -> Any:
    """One coordinate of where a line's annotation goes: the lower or higher of its two ends
    on `axis`, or their mean (plotly takes the annotation's place from the ends the same way;
    a spanning line's ends differ on one axis only, so the other axis gives one value)."""
    ends = [line[f"{axis}0"], line[f"{axis}1"]]
    if which == "low":
        return min(ends)
    if which == "high":
        return max(ends)
    return float(sum(ends)) / len(ends)


def _merge(target: dict[str, Any], changes: Mapping[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, Mapping):
            current = target.get(key)
            if not isinstance(current, dict):
                current = target[key] = {}
            _merge(current, value)
        else:
            target[key] = value


def plain(value: Any) -> Any:
    """`value` with only JSON's types: numpy arrays as lists, numpy scalars as numbers, tuples
    as lists, and NaN and ±inf as None (JSON has no NaN; plotly.js draws null as a gap)."""
    if isinstance(value, float):  # numpy's float64 too
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biu":
            return value.tolist()
        if value.dtype.kind == "f":
            finite = np.isfinite(value)
            if finite.all():
                return value.tolist()
            numbers = value.astype(object)
            numbers[~finite] = None
            return numbers.tolist()
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    raise TypeError(f"not a JSON value for a chart: {type(value).__name__}")


def script_json(value: Any) -> str:
    """`value` as compact JSON that is safe inside <script>: `<`, `>` and `/` as \\u escapes
    (so that "</script>" or "<!--" in a string cannot end the script or open a comment), and
    every other non-ASCII character escaped too (U+2028 is a line break to older JavaScript)."""
    return _script_safe(plain(value))


def _script_safe(value: Any) -> str:
    """script_json of a value that is `plain` already."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    for unsafe, safe in SCRIPT_ESCAPES:
        text = text.replace(unsafe, safe)
    return text
