"""Inference throughput of inceptionzoo's ``inception_v3`` against timm's and torchvision's, side by side.

The three models are built with the same weights and run interleaved in one process (same batch, threads,
dtype and memory format), several repetitions after warm-up; the median images/s of each is reported with
its ratio to the peers. Speed is never asserted in the tests: this script is where it is measured.

    python benchmarks/inference.py --batch 16 --threads 2 --repeats 7 --csv benchmarks/inference.csv
"""

import argparse
import csv
import statistics
import time

import timm
import torch
import torchvision

import inceptionzoo


def build_models() -> dict[str, torch.nn.Module]:
    ours = inceptionzoo.create_model("inception_v3").eval()
    theirs = timm.create_model("inception_v3").eval()
    tv = torchvision.models.inception_v3(weights=None, aux_logits=False, transform_input=False, init_weights=False)
    for other in (theirs, tv):
        other.load_state_dict(ours.state_dict())
    return {"inceptionzoo": ours, "timm": theirs, "torchvision": tv.eval()}


@torch.inference_mode()
def images_per_second(model: torch.nn.Module, x: torch.Tensor, iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        model(x)
    return iterations * x.shape[0] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=299)
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per model (median reported)")
    parser.add_argument("--iterations", type=int, default=2, help="batches per repetition")
    parser.add_argument("--csv", default="", help="also write the results to this CSV file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = build_models()
    x = torch.randn(args.batch, 3, args.size, args.size)
    rows = []
    for layout in ("nchw", "channels_last"):
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        runs = {name: model.to(memory_format=fmt) for name, model in models.items()}
        xin = x.contiguous(memory_format=fmt)
        for model in runs.values():  # warm-up
            images_per_second(model, xin, 1)
        speeds: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, model in runs.items():  # interleaved, so machine noise hits all alike
                speeds[name].append(images_per_second(model, xin, args.iterations))
        medians = {name: statistics.median(values) for name, values in speeds.items()}
        for name, median in medians.items():
            row = {"layout": layout, "model": name, "img_per_s": round(median, 2)}
            row.update({f"ratio_vs_{peer}": round(median / medians[peer], 3) for peer in medians if peer != name})
            rows.append(row)
            ratios = "  ".join(f"{k[9:]}: {v:.3f}x" for k, v in row.items() if k.startswith("ratio_vs_"))
            print(f"{layout:<14} {name:<13} {median:7.2f} img/s   {ratios}")
    if args.csv:
        ratios = sorted({key for row in rows for key in row if key.startswith("ratio_vs_")})
        fields = ["layout", "model", "img_per_s", *ratios]
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
