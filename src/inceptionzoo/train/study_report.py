"""An ablation study's report: per arm the error over seeds (mean, standard deviation, 95% interval), the change
against the previous arm with its interval, cost and training time, as a Markdown table (Table 3's layout),
CSV, JSON and a plot beside the paper's figures.

Intervals use Student's t. Its quantiles are tabulated here because none of the project's dependencies offers the
distribution's inverse (scipy is not one of them, and torch's ``StudentT`` has no ``icdf``).
"""

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .data.cache import write_atomically

__all__ = ["ArmResult", "Interval", "difference", "summarize", "t_quantile_975", "write_report"]

# the 97.5% quantile of Student's t (two-sided 95%) for 1-30 degrees of freedom, then 40, 60 and 120 (used beyond)
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
    2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_T975_LARGE = ((40, 2.021), (60, 2.000), (120, 1.980))


def t_quantile_975(degrees_of_freedom: float) -> float:
    """Student's t 97.5% quantile; a fractional ``degrees_of_freedom`` (Welch's) is rounded down, which widens
    the interval slightly rather than narrowing it."""
    if degrees_of_freedom >= _T975_LARGE[-1][0]:
        return _T975_LARGE[-1][1]
    df = math.floor(degrees_of_freedom + 1e-9)  # Welch's 2.0 may arrive as 1.9999999999999996
    if df < 1:
        raise ValueError(f"a t interval needs at least 1 degree of freedom, got {degrees_of_freedom}")
    if df <= len(_T975):
        return _T975[df - 1]
    for limit, value in reversed(_T975_LARGE):
        if df >= limit:
            return value
    return _T975[-1]


@dataclass(frozen=True)
class Interval:
    """A mean with its sample standard deviation and 95% interval half-width (None with a single value)."""

    mean: float
    std: float | None
    half_width: float | None
    count: int

    @property
    def low(self) -> float | None:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.half_width is None else self.mean + self.half_width


def interval(values: Sequence[float]) -> Interval | None:
    """Mean, standard deviation (n - 1) and t interval of ``values``; None when there are none."""
    n = len(values)
    if n == 0:
        return None
    mean = sum(values) / n
    if n == 1:
        return Interval(mean, None, None, 1)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return Interval(mean, std, t_quantile_975(n - 1) * std / math.sqrt(n), n)


def difference(before: Interval | None, after: Interval | None) -> Interval | None:
    """``after - before`` with Welch's interval (unequal variances, the seeds of two arms are independent); no
    interval unless both arms have two or more seeds."""
    if before is None or after is None:
        return None
    delta = after.mean - before.mean
    if before.std is None or after.std is None:
        return Interval(delta, None, None, min(before.count, after.count))
    a, b = before.std**2 / before.count, after.std**2 / after.count
    se = math.sqrt(a + b)
    if se == 0:
        return Interval(delta, 0.0, 0.0, min(before.count, after.count))
    spread = a**2 / (before.count - 1) + b**2 / (after.count - 1)
    df = (a + b) ** 2 / spread if spread > 0 else math.inf
    return Interval(delta, se, t_quantile_975(df) * se, min(before.count, after.count))


@dataclass
class ArmResult:
    """One arm's row of the report: its seeds' errors (100 - accuracy, in %), cost and time."""

    name: str
    change: str
    model: str
    recipe: str
    top1_errors: list[float] = field(default_factory=list)
    top5_errors: list[float] = field(default_factory=list)
    train_minutes: list[float] = field(default_factory=list)
    seeds_done: list[int] = field(default_factory=list)
    seeds_planned: int = 0
    epochs: int | float | None = None
    split: str | None = None  # which split the errors were measured on: test or val
    parameters: int | None = None
    macs: int | None = None
    paper: dict[str, Any] | None = None  # the paper's figures for this row, when it has any

    def top1(self) -> Interval | None:
        return interval(self.top1_errors)

    def top5(self) -> Interval | None:
        return interval(self.top5_errors)


def summarize(arms: Sequence[ArmResult]) -> list[dict[str, Any]]:
    """Per arm, the figures of the report: error intervals, the change against the previous arm (and whether the
    seeds resolve it: its interval excludes 0), cost, time and the paper's figures."""
    rows, previous = [], None
    for arm in arms:
        top1, top5 = arm.top1(), arm.top5()
        delta = difference(previous.top1(), top1) if previous is not None else None
        minutes = interval(arm.train_minutes)
        rows.append(
            {
                "arm": arm.name,
                "change": arm.change,
                "model": arm.model,
                "recipe": arm.recipe,
                "seeds": f"{len(arm.seeds_done)}/{arm.seeds_planned}",
                "epochs": arm.epochs,
                "split": arm.split,
                "top1_error": asdict(top1) if top1 else None,
                "top5_error": asdict(top5) if top5 else None,
                "delta_top1": asdict(delta) if delta else None,
                "delta_resolved": bool(delta and delta.half_width is not None and (delta.low > 0 or delta.high < 0)),
                "parameters": arm.parameters,
                "macs": arm.macs,
                "train_minutes": minutes.mean if minutes else None,
                "paper": arm.paper,
                "top1_errors": arm.top1_errors,
                "top5_errors": arm.top5_errors,
                "seeds_done": arm.seeds_done,
            }
        )
        previous = arm
    return rows


def _plus_minus(value: dict[str, Any] | None) -> str:
    if value is None:
        return "-"
    std = value["std"]
    return f"{value['mean']:.2f}" + (f" ± {std:.2f}" if std is not None else "")


def _bounds(value: dict[str, Any] | None, signed: bool = False) -> str:
    if value is None or value["half_width"] is None:
        return "-"
    low, high = value["mean"] - value["half_width"], value["mean"] + value["half_width"]
    form = "{:+.2f}" if signed else "{:.2f}"
    return f"[{form.format(low)}, {form.format(high)}]"


def _paper(row: dict[str, Any], key: str) -> str:
    value = (row["paper"] or {}).get(key)
    return "-" if value is None else f"{value:g}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The report as a Markdown table in Table 3's layout, with this study's figures and the paper's beside them."""
    head = (
        "| arm | change | seeds | top-1 err % (mean ± std) | 95% interval | Δ top-1 vs previous [95%] | "
        "top-5 err % (mean ± std) [95%] | params (M) | MACs (M) | train min | paper top-1 / top-5 err % | "
        "paper cost (Bn ops) |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for row in rows:
        delta = row["delta_top1"]
        delta_text = "-" if delta is None else f"{delta['mean']:+.2f} {_bounds(delta, signed=True)}"
        if row["delta_resolved"]:
            delta_text = f"**{delta_text}**"
        params = "-" if row["parameters"] is None else f"{row['parameters'] / 1e6:.2f}"
        macs = "-" if row["macs"] is None else f"{row['macs'] / 1e6:.0f}"
        minutes = "-" if row["train_minutes"] is None else f"{row['train_minutes']:.1f}"
        top5 = _plus_minus(row["top5_error"])
        if row["top5_error"] is not None and row["top5_error"]["half_width"] is not None:
            top5 += " " + _bounds(row["top5_error"])
        lines.append(
            f"| {row['arm']} | {row['change']} | {row['seeds']} | {_plus_minus(row['top1_error'])} | "
            f"{_bounds(row['top1_error'])} | {delta_text} | {top5} | {params} | {macs} | {minutes} | "
            f"{_paper(row, 'top1_error')} / {_paper(row, 'top5_error')} | {_paper(row, 'cost')} |"
        )
    return "\n".join(lines) + "\n"


_CSV_FIELDS = ("arm", "change", "model", "recipe", "seeds", "epochs", "split", "top1_error_mean", "top1_error_std",
               "top1_error_ci_low", "top1_error_ci_high", "delta_top1", "delta_top1_ci_low", "delta_top1_ci_high",
               "delta_resolved", "top5_error_mean", "top5_error_std", "top5_error_ci_low", "top5_error_ci_high",
               "parameters", "macs", "train_minutes",
               "paper_top1_error", "paper_top5_error", "paper_cost")  # fmt: skip


def _csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_CSV_FIELDS)
    writer.writeheader()
    for row in rows:
        top1, top5 = row["top1_error"] or {}, row["top5_error"] or {}
        delta, paper = row["delta_top1"] or {}, row["paper"] or {}
        half, delta_half = top1.get("half_width"), delta.get("half_width")
        writer.writerow(
            {
                **{key: row[key] for key in ("arm", "change", "model", "recipe", "seeds", "epochs", "split")},
                "top1_error_mean": top1.get("mean"),
                "top1_error_std": top1.get("std"),
                "top1_error_ci_low": None if half is None else top1["mean"] - half,
                "top1_error_ci_high": None if half is None else top1["mean"] + half,
                "delta_top1": delta.get("mean"),
                "delta_top1_ci_low": None if delta_half is None else delta["mean"] - delta_half,
                "delta_top1_ci_high": None if delta_half is None else delta["mean"] + delta_half,
                "delta_resolved": row["delta_resolved"],
                "top5_error_mean": top5.get("mean"),
                "top5_error_std": top5.get("std"),
                "top5_error_ci_low": None if top5.get("half_width") is None else top5["mean"] - top5["half_width"],
                "top5_error_ci_high": None if top5.get("half_width") is None else top5["mean"] + top5["half_width"],
                **{key: row[key] for key in ("parameters", "macs", "train_minutes")},
                "paper_top1_error": paper.get("top1_error"),
                "paper_top5_error": paper.get("top5_error"),
                "paper_cost": paper.get("cost"),
            }
        )
    return buffer.getvalue()


def plot_report(rows: list[dict[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """Top-1 error per arm with its seeds and 95% interval, and the paper's top-1 error per arm beside it (when the
    arms are the paper's rows)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    has_paper = any((row["paper"] or {}).get("top1_error") is not None for row in rows)
    figure, axes = plt.subplots(1, 2 if has_paper else 1, figsize=(13 if has_paper else 7, 4.6), squeeze=False)
    positions = list(range(len(rows)))
    labels = [row["arm"] for row in rows]
    ours = axes[0][0]
    for x, row in zip(positions, rows, strict=True):
        ours.plot([x] * len(row["top1_errors"]), row["top1_errors"], "o", color="0.6", markersize=4)
        if row["top1_error"] is not None:
            half = row["top1_error"]["half_width"]
            ours.errorbar([x], [row["top1_error"]["mean"]], yerr=None if half is None else [[half], [half]],
                          fmt="s", color="C0", capsize=4, markersize=7)  # fmt: skip
    ours.set(ylabel="top-1 error (%)", title="this study: mean, 95% interval, seeds")
    panels = [ours]
    if has_paper:
        paper_axis = axes[0][1]
        points = [(x, row["paper"]["top1_error"]) for x, row in zip(positions, rows, strict=True)
                  if (row["paper"] or {}).get("top1_error") is not None]  # fmt: skip
        paper_axis.plot(*zip(*points, strict=True), "-D", color="C3")
        paper_axis.set(ylabel="top-1 error (%)", title="the paper (ImageNet, Table 3)")
        panels.append(paper_axis)
    for axis in panels:
        axis.set_xticks(positions, labels, rotation=35, ha="right", fontsize=8)
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    try:
        write_atomically(path, lambda partial: figure.savefig(partial, dpi=110, format="png"))
    finally:
        plt.close(figure)
    return path


def write_report(arms: Sequence[ArmResult], folder: str | os.PathLike, title: str = "") -> dict[str, Path]:
    """Write ``report.md``, ``report.csv``, ``report.json`` and ``report.png`` into ``folder``; returns their paths."""
    folder = Path(folder)
    rows = summarize(arms)
    texts = {
        "report.md": (f"# {title}\n\n" if title else "") + markdown_table(rows),
        "report.csv": _csv(rows),
        "report.json": json.dumps({"title": title, "arms": rows}, indent=2) + "\n",
    }
    paths = {}
    for name, text in texts.items():
        paths[name] = write_atomically(folder / name, lambda partial, text=text: partial.write_text(text))
    if any(row["top1_errors"] for row in rows):
        paths["report.png"] = plot_report(rows, folder / "report.png", title)
    return paths
