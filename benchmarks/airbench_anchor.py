"""airbench94 on the CPU, the anchor of the fast-CIFAR study (docs/ablation.md): Keller Jordan's published package
(`pip install airbench`, not part of this project), ported at run time the way the study's issue describes:
device -> cpu, fp16 -> bf16 autocast, CUDA timing events -> wall-clock time. Its data is this project's JPEG copy of
CIFAR-10, decoded by inceptionzoo into the tensors airbench loads, so both sides train and test on the same images.

    pip install airbench
    python benchmarks/airbench_anchor.py --runs 2 --output airbench94-cpu.json
    python benchmarks/airbench_anchor.py --runs 1 --first-seed 1 --output airbench94-cpu-seed1.json  # seed 1 alone

Prints airbench's own per-epoch table and writes each run's test accuracy (with its TTA) and training seconds.
"""

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

SHARED_COPY = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz").resolve()


class WallClockEvent:
    """``torch.cuda.Event(enable_timing=True)`` on the CPU: ``record`` notes the time, ``elapsed_time`` is in ms."""

    def __init__(self, enable_timing: bool = True) -> None:
        self.time = 0.0

    def record(self) -> None:
        self.time = time.perf_counter()

    def elapsed_time(self, end: "WallClockEvent") -> float:
        return (end.time - self.time) * 1000


class Bf16Autocast(nn.Module):
    """The network in bf16 autocast (airbench keeps fp16 weights on the GPU; on the CPU bf16 is the fast type)."""

    def __init__(self, net: nn.Sequential) -> None:
        super().__init__()
        self.net = net

    def __getitem__(self, index: int) -> nn.Module:  # airbench reaches model[0], the whitening convolution
        return self.net[index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.net(x).float()


def port_to_cpu() -> None:
    """Patch what airbench's package asks of CUDA: its events and synchronize, ``.cuda()``, ``.half()`` and
    ``torch.load(map_location=cuda)``. Weights stay fp32 (bf16 autocast); images become bf16 instead of fp16."""
    torch.cuda.Event = WallClockEvent
    torch.cuda.synchronize = lambda *args, **kwargs: None
    nn.Module.cuda = lambda self, *args, **kwargs: self
    nn.Module.half = lambda self: self
    torch.Tensor.half = lambda self, *args, **kwargs: self.to(torch.bfloat16)
    real_load = torch.load
    torch.load = lambda *args, **kwargs: real_load(*args, **{**kwargs, "map_location": "cpu"})


def write_airbench_data(source: str, folder: Path) -> None:
    """airbench's ``cifar10/train.pt`` and ``test.pt`` (uint8 NHWC images, labels, classes) from the JPEG copy."""
    from inceptionzoo.train.data.in_memory import load_dataset

    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        target = folder / f"{split}.pt"
        if target.is_file():
            continue
        data = load_dataset(source, split, cache_dir=Path.home() / ".cache" / "inceptionzoo" / "datasets")
        images = data.images.permute(0, 2, 3, 1).contiguous()  # NCHW uint8 -> airbench's NHWC
        torch.save({"images": images, "labels": data.labels, "classes": list(data.classes)}, target)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED_COPY), help="CIFAR-10 as inceptionzoo reads it")
    parser.add_argument("--runs", type=int, default=2, help="training runs (seeds FIRST to FIRST + N - 1)")
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="the first run's seed (a run is a function of its seed: the same seed gives the same figure)",
    )
    parser.add_argument("--epochs", type=float, default=None, help="airbench94's epochs (default: its own, 9.9)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    parser.add_argument("--output", default="airbench94-cpu.json", help="results file (JSON)")
    args = parser.parse_args()
    try:
        import airbench.lib_airbench94 as bench
        from airbench import utils
    except ImportError:
        print("airbench is not installed: pip install airbench", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    port_to_cpu()
    work = Path.cwd()
    write_airbench_data(args.data, work / "cifar10")  # airbench reads ./cifar10/{train,test}.pt
    os.chdir(work)
    results = []
    for run in range(args.first_seed, args.first_seed + args.runs):
        torch.manual_seed(run)
        loader = utils.CifarLoader("cifar10", train=True, batch_size=bench.hyp["opt"]["batch_size"],
                                   aug=bench.hyp["aug"], altflip=True, gpu="cpu")  # fmt: skip
        epochs = args.epochs if args.epochs is not None else bench.hyp["opt"]["train_epochs"]
        table = io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stdout(table):
            model = bench.train94(loader, epochs=epochs, make_net=lambda: Bf16Autocast(bench.make_net94()), run=run)
        wall = time.perf_counter() - started
        print(table.getvalue(), end="", flush=True)
        test = utils.CifarLoader("cifar10", train=False, batch_size=2000, gpu="cpu")
        accuracy = utils.evaluate(model, test, tta_level=bench.hyp["net"]["tta_level"])
        # airbench's table ends with its own time (training plus the final TTA evaluation); the wall time here
        # adds the per-epoch test passes its verbose mode makes
        results.append({"run": run, "epochs": epochs, "test_top1": 100 * accuracy, "wall_seconds": wall})
        print(json.dumps(results[-1]), flush=True)
    summary = {
        "airbench": "lib_airbench94 (pip package), CPU port: bf16 autocast",
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "runs": results,
        "mean_test_top1": sum(r["test_top1"] for r in results) / len(results),
    }
    Path(args.output).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in ("mean_test_top1", "threads")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
