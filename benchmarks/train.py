"""Training-step throughput: the training fast path (bf16 autocast + channels_last, as ``inceptionzoo.train`` runs by
default, and the same through ``torch.compile`` as ``--compile`` runs it) against plain fp32 NCHW, and against
timm / torchvision for ``inception_v3`` at 299, side by side.

Every contender runs the same step (forward, cross-entropy, backward, SGD update) through the training loop's own
``train_one_epoch`` on a one-batch epoch, interleaved in one process;
several repetitions after warm-up; the median images/s is reported with its ratio to the plain fp32 NCHW step of the
same model. GFLOP/s counts a training step as three forward passes (forward, and backward's two products per
layer) of the multiply-adds ``inceptionzoo.complexity`` counts, two FLOPs each. ``--profile`` adds the share of the
fast step's time spent in convolutions (their forward and backward kernels), from torch's profiler. Speed is never
asserted in the tests: this script is where it is measured.

    python benchmarks/train.py --threads 2 --repeats 5 --csv benchmarks/train.csv
    python benchmarks/train.py --arch inception_fast_cifar --batch 1024 --no-compile --profile
    python benchmarks/train.py --arch "inception_fast_cifar:branch_fractions=(0.125, 0.875, 0)" --threads 1 \
        --batch 512 --no-compile

An ``--arch`` may carry builder arguments (``name:key=value,...``, as ``inceptionzoo ablate`` takes them). A model
with ``FusedConvBranches`` also runs its fast step with the branches one by one (``fuse_branches=False``).
"""

import argparse
import statistics
import time
from collections.abc import Callable

import timm
import torch
import torchvision
from common import machine, write_csv
from torch import nn

import inceptionzoo
from inceptionzoo.complexity import count_macs
from inceptionzoo.layers import FusedConvBranches
from inceptionzoo.train.engine import train_one_epoch
from inceptionzoo.train.recipes import RECIPES
from inceptionzoo.train.study import parse_model_spec

Step = Callable[[], object]


def training_step(model: nn.Module, batch: int, size: int, fast: bool, compile: bool = False) -> Step:
    """One SGD step on a fixed random batch, run by the training loop's own ``train_one_epoch``; ``fast`` = bf16
    autocast + channels_last (the loop's defaults); ``compile`` = through ``torch.compile`` (the loop's --compile)."""
    fmt = torch.channels_last if fast else torch.contiguous_format
    model = model.to(memory_format=fmt)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if compile:
        model = torch.compile(model)
    data = [(torch.randn(batch, 3, size, size).contiguous(memory_format=fmt), torch.randint(0, 10, (batch,)))]
    recipe = RECIPES["cifar"]
    loss_fn = nn.CrossEntropyLoss()
    dtype = torch.bfloat16 if fast else None
    return lambda: train_one_epoch(model, data, optimizer, loss_fn, recipe, autocast_dtype=dtype)


def contenders(arch: str, batch: int, compile: bool) -> tuple[dict[str, Step], int, int]:
    """The steps to time, the image size, and the network's multiply-adds per image."""
    size = 299 if arch == "inception_v3" else 32
    torch.manual_seed(0)
    model_name, kwargs = parse_model_spec(arch)
    network = inceptionzoo.create_model(model_name, num_classes=10, **kwargs)
    variants = [("fp32 NCHW", False, False, {}), ("bf16+channels_last", True, False, {})]
    if compile:
        variants.append(("bf16+channels_last compiled", True, True, {}))
    if any(isinstance(m, FusedConvBranches) for m in network.modules()):
        variants.append(("bf16+channels_last branches one by one", True, False, {"fuse_branches": False}))
    steps = {
        f"inceptionzoo {arch} {label}": training_step(
            inceptionzoo.create_model(model_name, num_classes=10, **kwargs, **extra), batch, size, fast, compiled
        )
        for label, fast, compiled, extra in variants
    }
    if arch == "inception_v3":
        peers = {
            "timm": timm.create_model("inception_v3", num_classes=10),
            "torchvision": torchvision.models.inception_v3(
                weights=None, aux_logits=False, init_weights=False, num_classes=10
            ),
        }
        for name, peer in peers.items():
            steps[f"{name} {arch} bf16+channels_last"] = training_step(peer, batch, size, True)
    return steps, size, count_macs(network, (3, size, size))


def convolution_share(step: Step) -> float:
    """The share of one step's CPU time (self time of every operator) spent in convolution operators."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    convolution = sum(e.self_cpu_time_total for e in events if "conv" in e.key or "mkldnn_convolution" in e.key)
    return convolution / total if total else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", nargs="+", default=["inception_v1_cifar", "inception_v3_cifar", "inception_v3"])
    parser.add_argument("--batch", type=int, default=0, help="images per step (default: 256 at 32x32, 16 at 299)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per contender (median reported)")
    parser.add_argument("--csv", default="", help="also write the results to this CSV file")
    parser.add_argument(
        "--no-compile", dest="compile", action="store_false", help="leave out the torch.compile step (slow to compile)"
    )
    parser.add_argument("--profile", action="store_true", help="also measure the fast step's share in convolutions")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for arch in args.arch:
        batch = args.batch or (16 if arch == "inception_v3" else 256)
        steps, size, macs = contenders(arch, batch, args.compile and arch != "inception_v3")
        for step in steps.values():  # warm-up
            step()
        speeds: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.repeats):
            for name, step in steps.items():  # interleaved, so machine noise hits all alike
                start = time.perf_counter()
                step()
                speeds[name].append(batch / (time.perf_counter() - start))
        medians = {name: statistics.median(values) for name, values in speeds.items()}
        baseline = medians[f"inceptionzoo {arch} fp32 NCHW"]
        flops = 3 * 2 * macs
        share = convolution_share(steps[f"inceptionzoo {arch} bf16+channels_last"]) if args.profile else None
        print(f"\n{arch} at {size}x{size}, batch {batch}, {args.threads} threads, {flops / 1e9:.3f} GFLOP per "
              "training image")  # fmt: skip
        for name, median in medians.items():
            row = {
                "arch": arch,
                "contender": name,
                "img_per_s": round(median, 1),
                "ratio_vs_fp32_nchw": round(median / baseline, 3),
                "gflop_per_s": round(median * flops / 1e9, 1),
            }
            if share is not None and name.endswith("inceptionzoo " + arch + " bf16+channels_last"):
                row["convolution_share"] = round(share, 3)
            rows.append(row)  # fmt: skip
            print(f"  {name:<50} {median:8.1f} img/s  {median / baseline:5.2f}x the fp32 NCHW step  "
                  f"{median * flops / 1e9:7.1f} GFLOP/s")  # fmt: skip
        if share is not None:
            print(f"  the bf16+channels_last step spends {100 * share:.0f}% of its time in convolutions")
    if args.csv:
        write_csv(args.csv, rows, machine(args.threads))


if __name__ == "__main__":
    main()
