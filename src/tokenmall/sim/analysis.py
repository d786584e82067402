"""Questions analysts ask of a scenario beyond one run: at what value of a setting does the
platform break even (goal seek), and how two results compare side by side.

Goal seek bisects one setting between a low and a high value. Every evaluation runs the same
seeds (common random numbers, as a sweep does), so the median result moves with the setting,
not with luck; the answer is the value where the median crosses the target, to within the
tolerance, with every evaluation on the way kept in the record.
"""

from collections.abc import Callable
from fractions import Fraction
from typing import Any, Final

import numpy as np

from tokenmall.sim import runner
from tokenmall.sim.metrics import run_summary
from tokenmall.sim.model import run
from tokenmall.sim.scenario import Scenario, ScenarioError

GOAL_STEPS_MAX: Final = 30  # bisections: 2**-30 of the range is far below any setting's use
GOAL_FIGURES: Final = ("platform_result", "operator_cash", "final_price", "share_losing")

Evaluate = Callable[[Scenario], float]


def median_of(scenario: Scenario, figure: str, runs: int, seed: int) -> float:
    """The median over `runs` runs (seeds as a sweep's) of one figure of the summary, through
    the exact rules engine, here, one run after another."""
    jobs = runner.jobs(scenario, {}, runs, seed)
    results = []
    for job in jobs:
        result = run(job.scenario, np.random.default_rng(job.seed))
        results.append((job.point, job.run, run_summary(result)))
    (point,) = runner.summarize(scenario, runs, seed, {}, results)["points"]
    value = point[figure]
    return float(value["median"] if isinstance(value, dict) else value)


def goal_seek(
    scenario: Scenario,
    setting: str,
    low: str,
    high: str,
    evaluate: Evaluate,
    *,
    target: float = 0.0,
    tolerance: str = "0.0001",
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The value of `setting` between `low` and `high` at which `evaluate` (a figure of the
    scenario with that value) reaches `target`, by bisection. ScenarioError if the figure
    does not cross the target between the two (bisection needs a change of sign)."""
    try:
        a, b, step = Fraction(low), Fraction(high), Fraction(tolerance)
    except (ValueError, ZeroDivisionError):
        raise ScenarioError(f"{setting}: low, high and tolerance must be numbers") from None
    if not a < b or step <= 0:
        raise ScenarioError(f"{setting}: give low < high and a positive tolerance")
    trail: list[dict[str, Any]] = []

    def at(value: Fraction) -> float:
        text = _decimal(value)
        found = evaluate(scenario.with_setting(setting, text)) - target
        trail.append({"value": text, "result": found + target})
        if on_step is not None:  # progress: each evaluation is `runs` whole runs
            on_step(trail[-1])
        return found

    f_a, f_b = at(a), at(b)
    if f_a == 0 or f_b == 0:
        value = a if f_a == 0 else b
        return _answer(setting, value, target, trail, exact=True)
    if (f_a > 0) == (f_b > 0):
        raise ScenarioError(
            f"{setting}: the figure does not reach {target:g} between {low} and {high} "
            f"({f_a + target:,.2f} and {f_b + target:,.2f}); widen the range"
        )
    for _ in range(GOAL_STEPS_MAX):
        if b - a <= step:
            break
        middle = (a + b) / 2
        f_m = at(middle)
        if f_m == 0:
            return _answer(setting, middle, target, trail, exact=True)
        if (f_m > 0) == (f_a > 0):
            a, f_a = middle, f_m
        else:
            b, f_b = middle, f_m
    # the end nearer the target: the figure moves in steps (whole fen), not smoothly
    value = a if abs(f_a) <= abs(f_b) else b
    return _answer(setting, value, target, trail, exact=False, bracket=(a, b))


def _decimal(value: Fraction, places: int = 8) -> str:
    """A setting's value as the scenario takes it: a decimal of at most `places` places."""
    scaled = round(value * 10**places)
    text = f"{abs(scaled) // 10**places}.{abs(scaled) % 10**places:0{places}d}".rstrip("0")
    return ("-" if scaled < 0 else "") + text.rstrip(".")


def _answer(
    setting: str,
    value: Fraction,
    target: float,
    trail: list[dict[str, Any]],
    *,
    exact: bool,
    bracket: tuple[Fraction, Fraction] | None = None,
) -> dict[str, Any]:
    text = _decimal(value)
    result = next(step["result"] for step in reversed(trail) if step["value"] == text)
    return {
        "setting": setting,
        "value": text,
        "result": result,
        "target": target,
        "exact": exact,
        "between": None if bracket is None else [_decimal(bracket[0]), _decimal(bracket[1])],
        "evaluations": trail,
    }
