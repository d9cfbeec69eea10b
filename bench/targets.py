"""The performance targets (docs/benchmarks.md) checked against a run, and the summary of runs.

A run gives a dict of measures (a name and a number: a ratio, or a count of queries or round
trips); a ``Target`` bounds one measure. ``targets_section`` checks one run, ``summary`` the
median of several (with the spread, lowest to highest, beside it).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

Measures = dict[str, float]


@dataclass(frozen=True)
class Target:
    measure: str
    bound: float
    at_least: bool = False  # at most the bound, unless at_least
    count: bool = False  # a count of queries or round trips, not a ratio

    def holds(self, value: float) -> bool:
        return value >= self.bound if self.at_least else value <= self.bound

    def text(self) -> str:
        return f"{'>=' if self.at_least else '<='} {self.format(self.bound)}"

    def format(self, value: float) -> str:
        return f"{value:g}" if self.count else f"{value:.2f}x"


def verdict(target: Target, value: float | None) -> str:
    if value is None:
        return "not measured"
    return "holds" if target.holds(value) else "misses"


def targets_section(targets: list[Target], measures: Measures) -> str:
    lines = [
        "### Targets",
        "",
        "| target | measured | bound | verdict |",
        "|---|---:|---:|---|",
    ]
    for target in targets:
        value = measures.get(target.measure)
        shown = "-" if value is None else target.format(value)
        lines.append(f"| {target.measure} | {shown} | {target.text()} | {verdict(target, value)} |")
    return "\n".join(lines) + "\n"


def summary(runs: list[Measures], targets: list[Target]) -> str:
    """Per measure, the median of the runs and their spread; the targets on the median."""
    bounded = {target.measure: target for target in targets}
    names = list(dict.fromkeys(name for run in runs for name in run))
    lines = [
        f"## Summary of {len(runs)} runs",
        "",
        "| measure | median | spread (lowest-highest) | target | on the median |",
        "|---|---:|---:|---:|---|",
    ]
    for name in names:
        values = [run[name] for run in runs if name in run]
        target = bounded.get(name, Target(name, 0, count=name.endswith(("queries", "trips"))))
        median = statistics.median(values)
        spread = f"{target.format(min(values))}-{target.format(max(values))}"
        rule, outcome = (target.text(), verdict(target, median)) if name in bounded else ("", "")
        lines.append(f"| {name} | {target.format(median)} | {spread} | {rule} | {outcome} |")
    missing = [target.measure for target in targets if target.measure not in names]
    lines.extend(f"| {name} | - | - | {bounded[name].text()} | not measured |" for name in missing)
    return "\n".join(lines) + "\n"
