"""What a training run reports: one row per epoch in ``metrics.csv`` and ``metrics.jsonl``, ``metrics.png``, a plot
of loss and accuracy per epoch (matplotlib, from the ``train`` extra), and the progress display during an epoch."""

import csv
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from .data.cache import write_atomically

__all__ = ["MetricsLog", "Progress", "plot_metrics", "rate"]


def rate(images_per_second: float) -> str:
    """Images per second as shown: whole numbers from 10 up, one or two decimals below (a slow model on a CPU
    trains a few images a second, never "0")."""
    if images_per_second >= 10:
        return f"{images_per_second:.0f}"
    return f"{images_per_second:.1f}" if images_per_second >= 1 else f"{images_per_second:.2f}"


class MetricsLog:
    """Per-epoch metrics written as CSV and JSON lines. Rows for epochs at or after ``start_epoch`` that a previous
    (interrupted) run left behind are dropped, so a resumed run's files read as one run."""

    def __init__(self, directory: str | os.PathLike, start_epoch: int = 0) -> None:
        self.directory = Path(directory)
        self.csv_path = self.directory / "metrics.csv"
        self.jsonl_path = self.directory / "metrics.jsonl"
        self.rows: list[dict[str, Any]] = []
        if self.jsonl_path.is_file():
            for line in self.jsonl_path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    if row["epoch"] < start_epoch:
                        self.rows.append(row)
        self._rewrite()

    def append(self, row: dict[str, Any]) -> None:
        """Add one epoch's metrics and rewrite both files (small: one line per epoch)."""
        self.rows.append(row)
        self._rewrite()

    def _rewrite(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fields: list[str] = []
        for row in self.rows:
            fields += [key for key in row if key not in fields]
        for path, text in ((self.jsonl_path, self._jsonl()), (self.csv_path, self._csv(fields))):
            write_atomically(path, lambda partial, text=text: partial.write_text(text))

    def _jsonl(self) -> str:
        return "".join(json.dumps(row) + "\n" for row in self.rows)

    def _csv(self, fields: list[str]) -> str:
        import io

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(self.rows)
        return buffer.getvalue()


def plot_metrics(
    rows: list[dict[str, Any]], path: str | os.PathLike, title: str = "", test_top1: float | None = None
) -> Path:
    """Plot training/validation loss and top-1 accuracy against epochs into ``path``, with the training minutes and,
    once the test split was evaluated, the headline test top-1 (``test_top1``) at the last epoch."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] + 1 for row in rows]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for split, style in (("train", "-o"), ("val", "-s"), ("test", "-^")):
        for axis, metric in ((loss_axis, "loss"), (accuracy_axis, "top1")):
            key = f"{split}_{metric}"
            values = [row.get(key) for row in rows]
            pairs = zip(epochs, values, strict=True)
            points = [(e, v) for e, v in pairs if isinstance(v, int | float) and math.isfinite(v)]
            if points:
                axis.plot(*zip(*points, strict=True), style, label=split, markersize=3)
    loss_axis.set(xlabel="epoch", ylabel="loss", title="loss")
    accuracy_axis.set(xlabel="epoch", ylabel="top-1 accuracy (%)", title="top-1 accuracy")
    if rows and "elapsed_s" in rows[-1]:
        minutes = rows[-1]["elapsed_s"] / 60
        accuracy_axis.annotate(f"{minutes:.1f} min of training", xy=(0.98, 0.02), xycoords="axes fraction", ha="right")
    if test_top1 is not None and rows:
        last = rows[-1]["epoch"] + 1
        accuracy_axis.plot([last], [test_top1], "*", color="black", markersize=11, label=f"test {test_top1:.2f}%")
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    try:
        write_atomically(
            path, lambda partial: figure.savefig(partial, dpi=110, format=path.suffix.lstrip(".") or "png")
        )
    finally:
        plt.close(figure)
    return path


class Progress:
    """A tqdm bar on a terminal; elsewhere (a CI log, a batch job's file) one line every ``every`` steps instead
    of a redraw per step. Both show loss, top-1, images per second and the time spent waiting for data."""

    def __init__(self, total: int, description: str, enabled: bool, every: int, world_size: int) -> None:
        self.total, self.description, self.enabled, self.every = total, description, enabled, every
        self.world_size = world_size
        self.began = time.perf_counter()
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=description, leave=False, dynamic_ncols=True, file=sys.stderr)

    def __call__(self, step: int, totals: torch.Tensor, data_wait: float) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
        last = step + 1 == self.total
        if (step + 1) % (10 if self.bar is not None else self.every) and not last:
            return
        loss, top1, _, seen = totals.tolist()  # a host sync, but only every few steps
        elapsed = time.perf_counter() - self.began
        images_per_second = seen * self.world_size / elapsed
        figures = dict(loss=f"{loss / seen:.3f}", top1=f"{100 * top1 / seen:.1f}%", img_s=rate(images_per_second),
                       data_wait=f"{100 * data_wait / elapsed:.0f}%")  # fmt: skip
        if self.bar is not None:
            self.bar.set_postfix(figures)
        else:
            shown = "  ".join(f"{k} {v}" for k, v in figures.items())
            print(f"{self.description} step {step + 1}/{self.total}: {shown}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
