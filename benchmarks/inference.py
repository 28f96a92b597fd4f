"""Inference throughput of inceptionzoo's fast path against timm, torchvision and ONNX Runtime, side by side.

For each architecture the contenders are built with the same weights and run interleaved in one process (same
batch, threads and input), several repetitions after warm-up; the median images/s of each is reported with its
ratio to every peer of the same precision, its GFLOP/s (2 x multiply-adds x images/s) and the fraction of the
same-run convolution ceiling (the fastest of a few large channels_last convolutions, fp32 or bf16). Speed is never
asserted in the tests: this script is where it is measured.

    python benchmarks/inference.py --batch 16 --threads 2 --repeats 7 --csv benchmarks/inference.csv
"""

import argparse
import copy
import inspect
import statistics
import tempfile
import time
from collections.abc import Callable

import timm
import torch
import torchvision
from common import machine, write_csv
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

import inceptionzoo
from inceptionzoo.complexity import count_macs
from inceptionzoo.inference import optimize_for_inference

Runner = Callable[[torch.Tensor], object]


def fold_peer_batchnorm(model: nn.Module) -> nn.Module:
    """BN folding for timm's / torchvision's ``BasicConv2d`` (conv, bn, relu), the peers' best-known fp32 setup."""
    for module in model.modules():
        conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            module.conv, module.bn = fuse_conv_bn_eval(conv, bn), nn.Identity()
    return model


def channels_last(model: nn.Module) -> Runner:
    model = model.eval().to(memory_format=torch.channels_last)
    return lambda x: model(x.contiguous(memory_format=torch.channels_last))


def bf16_autocast(model: nn.Module) -> Runner:
    run = channels_last(model)

    def runner(x: torch.Tensor) -> object:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return run(x)

    return runner


def onnx_runtime(model: nn.Module, example: torch.Tensor, threads: int) -> Runner:
    import onnxruntime

    folder = tempfile.TemporaryDirectory()  # the weights may sit beside the graph as external data
    path = f"{folder.name}/model.onnx"
    torch.onnx.export(model.eval(), (example,), path, dynamo=True, verbose=False)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def runner(x: torch.Tensor, keep: object = folder) -> object:
        return session.run(None, {name: x.numpy()})

    return runner


def contenders(
    arch: str, example: torch.Tensor, threads: int, compile: bool = False
) -> tuple[dict[str, tuple[str, Runner]], int]:
    """``{label: (precision, runner)}`` for one architecture, and its multiply-adds per image."""
    torch.manual_seed(0)
    ours = inceptionzoo.create_model(arch).eval()
    with torch.no_grad():  # realistic BatchNorm statistics so folding is exercised on real numbers
        ours.train()(torch.randn(4, 3, *example.shape[-2:]))
        ours.eval()
    if arch == "inception_v3":
        peers = {"timm": timm.create_model("inception_v3"),
                 "torchvision": torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False,
                                                                transform_input=False)}  # fmt: skip
    else:
        peers = {"torchvision": torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False,
                                                             transform_input=False)}  # fmt: skip
    for peer in peers.values():
        peer.load_state_dict(ours.state_dict())
        peer.eval()
    runners: dict[str, tuple[str, Runner]] = {
        "inceptionzoo fast fp32": ("fp32", optimize_for_inference(ours)),
        "inceptionzoo fast bf16": ("bf16", optimize_for_inference(ours, dtype=torch.bfloat16)),
    }
    if compile:  # inductor with weight freezing; the first call (the warm-up) compiles
        runners["inceptionzoo fast fp32 compiled"] = ("fp32", optimize_for_inference(ours, compile=True))
        runners["inceptionzoo fast bf16 compiled"] = (
            "bf16",
            optimize_for_inference(ours, dtype=torch.bfloat16, compile=True),
        )
    for name, peer in peers.items():
        runners[f"{name} channels_last"] = ("fp32", channels_last(peer))
        runners[f"{name} channels_last+BN folded"] = ("fp32", channels_last(fold_peer_batchnorm(copy.deepcopy(peer))))
        runners[f"{name} bf16 autocast+channels_last"] = ("bf16", bf16_autocast(peer))
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        runners["onnxruntime fp32"] = ("fp32", onnx_runtime(ours, example, threads))
    else:
        print(f"ONNX Runtime left out: torch.onnx.export(dynamo=True) is not in torch {torch.__version__}")
    return runners, count_macs(ours, input_size=tuple(example.shape[1:]))


# (channels in = out, kernel, grid) of large convolutions like inception_v3's own; the fastest sets the ceiling
CEILING_SHAPES = ((192, 3, 35), (256, 3, 28), (384, 3, 14), (768, 1, 17))


def convolution_ceiling(dtype: torch.dtype, batch: int = 16, seconds: float = 0.25) -> float:
    """GFLOP/s of the fastest of a few large channels_last convolutions (oneDNN): the practical peak of this machine
    for the network's own kind of work, measured in the same run as the models."""
    best = 0.0
    for channels, kernel, grid in CEILING_SHAPES:
        conv = nn.Conv2d(channels, channels, kernel, padding=kernel // 2, bias=False).eval()
        conv = conv.to(memory_format=torch.channels_last, dtype=dtype)
        x = torch.randn(batch, channels, grid, grid, dtype=dtype).contiguous(memory_format=torch.channels_last)
        flops = 2 * channels * channels * kernel * kernel * grid * grid * batch
        with torch.inference_mode():
            conv(x)
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                conv(x)
                count += 1
        best = max(best, count * flops / (time.perf_counter() - start) / 1e9)
    return best


@torch.inference_mode()
def images_per_second(runner: Runner, x: torch.Tensor, iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        runner(x)
    return iterations * x.shape[0] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", nargs="+", default=["inception_v3", "inception_v1_tv"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per contender (median reported)")
    parser.add_argument("--iterations", type=int, default=2, help="batches per repetition")
    parser.add_argument("--csv", default="", help="also write the results to this CSV file")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="leave out the torch.compile fast paths (each takes 20-40 s to compile)")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for arch in args.arch:
        size = 299 if arch == "inception_v3" else 224
        x = torch.randn(args.batch, 3, size, size)
        runners, macs = contenders(arch, x, args.threads, compile=args.compile)
        for _, runner in runners.values():  # warm-up
            images_per_second(runner, x, 1)
        speeds: dict[str, list[float]] = {name: [] for name in runners}
        ceilings: dict[str, list[float]] = {"fp32": [], "bf16": []}
        for _ in range(args.repeats):
            for name, (_, runner) in runners.items():  # interleaved, so machine noise hits all alike
                speeds[name].append(images_per_second(runner, x, args.iterations))
            ceilings["fp32"].append(convolution_ceiling(torch.float32, args.batch))
            ceilings["bf16"].append(convolution_ceiling(torch.bfloat16, args.batch))
        ceiling = {k: statistics.median(v) for k, v in ceilings.items()}
        medians = {name: statistics.median(values) for name, values in speeds.items()}
        print(
            f"\n{arch} at {size}x{size}, batch {args.batch}, {args.threads} threads, {2 * macs / 1e9:.2f} GFLOP/image; "
            f"convolution ceiling {ceiling['fp32']:.0f} GFLOP/s fp32, {ceiling['bf16']:.0f} bf16"
        )
        for name, median in medians.items():
            precision = runners[name][0]
            gflops = 2 * macs * median / 1e9
            row = {
                "arch": arch,
                "contender": name,
                "precision": precision,
                "img_per_s": round(median, 2),
                "gflop_per_s": round(gflops, 1),
                "fraction_of_ceiling": round(gflops / ceiling[precision], 3),
            }
            if name.startswith("inceptionzoo"):
                row.update({f"ratio_vs_{peer}": round(median / medians[peer], 3) for peer in medians
                            if runners[peer][0] == precision and not peer.startswith("inceptionzoo")})  # fmt: skip
            rows.append(row)
            ratios = "  ".join(f"{k[9:]}: {v:.2f}x" for k, v in row.items() if k.startswith("ratio_vs_"))
            print(f"  {name:<44} {precision} {median:7.1f} img/s {gflops:6.0f} GFLOP/s "
                  f"{100 * row['fraction_of_ceiling']:5.1f}% of ceiling  {ratios}")  # fmt: skip
    if args.csv:
        write_csv(args.csv, rows, machine(args.threads))


if __name__ == "__main__":
    main()
