"""How the inference fast path's cost grows with batch size and input resolution, with peak memory.

Each point runs in a fresh process: the model is built and optimized, the peak growth of the process's resident
memory during its first forward (Linux VmHWM, reset just before) is its activation memory, then it is timed over
several repetitions (median), with timm's ``inception_v3`` (channels_last, bf16 autocast for bf16) beside it in the
same process as the reference. Writes a CSV (with the CPU it ran on) and a two-panel PNG; ``--replot CSV`` draws
the PNG again from a CSV.

    python benchmarks/scaling.py --csv docs/images/performance_scaling.csv --plot docs/images/performance_scaling.png
"""

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time

from common import machine, write_csv

BATCHES = (1, 4, 16, 32)
RESOLUTIONS = (107, 149, 224, 299, 399)


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as handle:
        line = next(line for line in handle if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024  # kB


def reset_peak() -> float:
    """Set the process's peak resident memory (VmHWM) to its current resident memory (Linux); returns that, MiB."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    return _status_mib("VmRSS")


def peak_mib() -> float:
    return _status_mib("VmHWM")


def measure_point(arch: str, batch: int, size: int, dtype: str, threads: int, repeats: int, images: int = 16) -> dict:
    """One point, in this process: images/s of the fast path and of timm, and the fast path's peak memory."""
    import timm
    import torch

    import inceptionzoo
    from inceptionzoo.deploy import optimize_for_inference

    torch.set_num_threads(threads)
    model = inceptionzoo.create_model(arch).eval()
    fast = optimize_for_inference(model, dtype=torch.bfloat16 if dtype == "bf16" else None)
    x = torch.randn(batch, 3, size, size)
    iterations = max(1, images // batch)
    with torch.inference_mode():
        resident_before = reset_peak()
        fast(x)  # the first forward: the allocator's cache is still empty, so every activation shows up as growth
        peak_growth = peak_mib() - resident_before
        peer = timm.create_model(arch).eval().to(memory_format=torch.channels_last)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16")

        def run_peer() -> None:
            with autocast:
                peer(x.contiguous(memory_format=torch.channels_last))

        run_peer()
        speeds: dict[str, list[float]] = {"fast": [], "timm": []}
        for _ in range(repeats):
            for name, runner in (("fast", lambda: fast(x)), ("timm", run_peer)):
                start = time.perf_counter()
                for _ in range(iterations):
                    runner()
                speeds[name].append(iterations * batch / (time.perf_counter() - start))
    fast_speed, peer_speed = statistics.median(speeds["fast"]), statistics.median(speeds["timm"])
    return {
        "arch": arch,
        "dtype": dtype,
        "batch": batch,
        "resolution": size,
        "img_per_s": round(fast_speed, 2),
        "ms_per_img": round(1000 / fast_speed, 2),
        "timm_channels_last_img_per_s": round(peer_speed, 2),
        "ratio_vs_timm": round(fast_speed / peer_speed, 3),
        "activation_peak_mib": round(peak_growth, 1),
        "model_resident_mib": round(resident_before, 1),
    }


def plot(rows: list[dict], path: str, cpu: str, batch_resolution: int = 299, resolution_batch: int = 16) -> None:
    """Speed (solid, left axis) and activation memory (dashed, right axis) against batch size (at
    ``batch_resolution``); ms per image against resolution (at batch ``resolution_batch``). Both lines of each kind
    are in the legend, and the title names the machine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (by_batch, by_size) = plt.subplots(1, 2, figsize=(11, 5.2))
    memory = by_batch.twinx()
    for dtype, marker in (("fp32", "o"), ("bf16", "s")):
        batch_rows = [r for r in rows if r["dtype"] == dtype and int(r["resolution"]) == batch_resolution]
        size_rows = [r for r in rows if r["dtype"] == dtype and int(r["batch"]) == resolution_batch]
        if batch_rows:
            batches = [int(r["batch"]) for r in batch_rows]
            (line,) = by_batch.plot(batches, [float(r["img_per_s"]) for r in batch_rows], marker=marker,
                                    label=f"{dtype}: images/s")  # fmt: skip
            memory.plot(batches, [float(r["activation_peak_mib"]) for r in batch_rows], marker=marker, linestyle="--",
                        color=line.get_color(), alpha=0.6, label=f"{dtype}: activation peak (MiB)")  # fmt: skip
        if size_rows:
            by_size.plot([int(r["resolution"]) for r in size_rows], [float(r["ms_per_img"]) for r in size_rows],
                         marker=marker, label=f"{dtype}")  # fmt: skip
    memory.set_ylabel("activation peak (MiB), dashed")
    by_batch.set(xscale="log", xlabel=f"batch size ({batch_resolution}x{batch_resolution})", ylabel="images/s, solid",
                 title="batch size")  # fmt: skip
    batches = sorted({int(r["batch"]) for r in rows if int(r["resolution"]) == batch_resolution})
    by_batch.set_xticks(batches, [str(b) for b in batches])
    handles = by_batch.get_legend_handles_labels()[0] + memory.get_legend_handles_labels()[0]
    by_batch.legend(handles, [h.get_label() for h in handles], loc="upper center", bbox_to_anchor=(0.5, -0.16),
                    ncol=2, fontsize="small")  # fmt: skip
    by_size.set(xlabel=f"input resolution (batch {resolution_batch})", ylabel="ms per image", title="resolution")
    by_size.legend(loc="upper left")
    for axis in (by_batch, by_size):
        axis.grid(alpha=0.3)
    arch = rows[0]["arch"]
    figure.suptitle(f"{arch}, inceptionzoo's inference fast path, on {cpu}", fontsize="medium")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="inception_v3")
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", nargs="+", type=int, default=list(BATCHES), help="batch sizes timed (at 299x299)")
    parser.add_argument("--batch-resolution", type=int, default=299, help="the input size the batch sizes are timed at")
    parser.add_argument(
        "--resolutions", nargs="+", type=int, default=list(RESOLUTIONS), help="input sizes timed (at batch 16)"
    )
    parser.add_argument("--resolution-batch", type=int, default=16, help="the batch size the input sizes are timed at")
    parser.add_argument("--images", type=int, default=16, help="images per timed repetition")
    parser.add_argument("--csv", default="")
    parser.add_argument("--plot", default="")
    parser.add_argument("--replot", default="", metavar="CSV", help="draw --plot from this CSV instead of measuring")
    parser.add_argument("--point", default="", help=argparse.SUPPRESS)  # internal: measure one point and print it
    args = parser.parse_args()
    if args.replot:
        with open(args.replot, newline="") as handle:
            rows = list(csv.DictReader(handle))
        plot(rows, args.plot or args.replot.removesuffix(".csv") + ".png", rows[0].get("cpu") or machine(args.threads))
        return
    if args.point:
        batch, size, dtype = args.point.split(",")
        point = measure_point(args.arch, int(batch), int(size), dtype, args.threads, args.repeats, args.images)
        print(json.dumps(point))
        return
    points = {(b, args.batch_resolution) for b in args.batches} | {(args.resolution_batch, s) for s in args.resolutions}
    rows = []
    for dtype in args.dtypes:
        for batch, size in sorted(points):
            command = [sys.executable, __file__, "--arch", args.arch, "--threads", str(args.threads),
                       "--repeats", str(args.repeats), "--images", str(args.images),
                       "--point", f"{batch},{size},{dtype}"]  # fmt: skip
            result = subprocess.run(command, capture_output=True, text=True, check=True)
            row = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{dtype} batch {batch:3d} at {size}: {row['img_per_s']:7.1f} img/s ({row['ms_per_img']:.1f} ms/img, "
                  f"{row['ratio_vs_timm']:.2f}x timm channels_last at the same dtype), activation peak "
                  f"{row['activation_peak_mib']:.0f} MiB", flush=True)  # fmt: skip
    if args.csv:
        write_csv(args.csv, rows, machine(args.threads))
    if args.plot:
        plot(rows, args.plot, machine(args.threads), args.batch_resolution, args.resolution_batch)


if __name__ == "__main__":
    main()
