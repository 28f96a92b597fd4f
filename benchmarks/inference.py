"""Inference throughput of inceptionzoo's fast path against timm, torchvision and ONNX Runtime, side by side.

For each architecture the contenders are built with the same weights and run interleaved in one process (same
batch, threads and input), several repetitions after warm-up; the median images/s of each is reported with its
ratio to every peer of the same precision, its GFLOP/s (2 x multiply-adds x images/s) and, on a CPU, the fraction
of the same-run convolution ceiling (the fastest of a few large channels_last convolutions, fp32 or bf16).
Contenders: the fast path in fp32, bf16, int8 and ``dtype="auto"``; ONNX Runtime plain, through the library's
engine, and in int8; torchvision's int8 models; timm's and torchvision's float models. The header and the CSV name
the CPU and its int8 / bf16 flags. Speed is never asserted in the tests: this script is where it is measured.

    python benchmarks/inference.py --batch 16 --threads 2 --repeats 7 --csv benchmarks/inference.csv
    python benchmarks/inference.py --device cuda --batch 64 --arch inception_v3      # a GPU: float paths only
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
from inceptionzoo.deploy import optimize_for_inference
from inceptionzoo.deploy.int8 import load_quantized

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


def autocast(model: nn.Module, device: str, dtype: torch.dtype) -> Runner:
    run = channels_last(model)

    def runner(x: torch.Tensor) -> object:
        with torch.autocast(device, dtype=dtype):
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


def torchvision_int8(arch: str, state_dict: dict) -> tuple[nn.Module, Runner]:
    """torchvision's quantizable model with the same float weights, quantized as its published int8 weights were
    (``quantize_model``, fbgemm): the int8 peer."""
    from torchvision.models.quantization import googlenet, inception_v3
    from torchvision.models.quantization.utils import quantize_model

    from inceptionzoo.deploy.int8 import quantized_engine

    build = inception_v3 if arch == "inception_v3" else googlenet
    model = build(weights=None, quantize=False, aux_logits=False, init_weights=False, transform_input=False)
    model.load_state_dict(state_dict)
    with quantized_engine("fbgemm"):
        quantize_model(model.eval(), "fbgemm")

    def runner(x: torch.Tensor) -> object:
        with quantized_engine("fbgemm"):
            return model(x.contiguous(memory_format=torch.channels_last))

    return model, runner


def contenders(
    arch: str, example: torch.Tensor, threads: int, compile: bool = False, device: str = "cpu"
) -> tuple[dict[str, tuple[str, Runner]], int]:
    """``{label: (precision, runner)}`` for one architecture, and its multiply-adds per image."""
    torch.manual_seed(0)
    ours = inceptionzoo.create_model(arch).eval()
    with torch.no_grad():  # realistic BatchNorm statistics so folding is exercised on real numbers
        ours.train()(torch.randn(4, 3, *example.shape[-2:]))
        ours.eval()
    macs = count_macs(ours, input_size=tuple(example.shape[1:]))
    if arch == "inception_v3":
        peers = {"timm": timm.create_model("inception_v3"),
                 "torchvision": torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False,
                                                                transform_input=False)}  # fmt: skip
    else:
        peers = {"torchvision": torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False,
                                                             transform_input=False)}  # fmt: skip
    for peer in peers.values():
        peer.load_state_dict(ours.state_dict())
        peer.eval().to(device)
    calibration = [torch.randn(8, *example.shape[1:]) for _ in range(2)]  # speed only: random calibration
    fast_auto = optimize_for_inference(ours.to(device))
    print(f"dtype='auto' chose {fast_auto.precision}: {fast_auto.precision_reason}")
    short = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
    runners: dict[str, tuple[str, Runner]] = {
        "inceptionzoo fast fp32": ("fp32", optimize_for_inference(ours, dtype=torch.float32)),
        "inceptionzoo fast bf16": ("bf16", optimize_for_inference(ours, dtype=torch.bfloat16)),
        "inceptionzoo fast auto": (short[fast_auto.precision], fast_auto),
    }
    if device.startswith("cuda"):
        runners["inceptionzoo fast fp16"] = ("fp16", optimize_for_inference(ours, dtype=torch.float16))
        if compile:  # max-autotune and CUDA graphs at this batch size; the warm-up compiles
            compiled = optimize_for_inference(ours, compile=True)
            runners["inceptionzoo fast auto compiled"] = (short[compiled.precision], compiled)
        for name, peer in peers.items():
            runners[f"{name} channels_last"] = ("fp32", channels_last(peer))
            runners[f"{name} bf16 autocast+channels_last"] = ("bf16", autocast(peer, "cuda", torch.bfloat16))
            runners[f"{name} fp16 autocast+channels_last"] = ("fp16", autocast(peer, "cuda", torch.float16))
        return runners, macs
    runners["inceptionzoo fast int8"] = ("int8", optimize_for_inference(ours, dtype="int8",
                                                                       calibration_batches=calibration))  # fmt: skip
    if compile:  # inductor with weight freezing; the first call (the warm-up) compiles
        runners["inceptionzoo fast fp32 compiled"] = ("fp32", optimize_for_inference(ours, dtype=torch.float32,
                                                                                     compile=True))  # fmt: skip
        runners["inceptionzoo fast bf16 compiled"] = (
            "bf16",
            optimize_for_inference(ours, dtype=torch.bfloat16, compile=True),
        )
    for name, peer in peers.items():
        runners[f"{name} channels_last"] = ("fp32", channels_last(peer))
        runners[f"{name} channels_last+BN folded"] = ("fp32", channels_last(fold_peer_batchnorm(copy.deepcopy(peer))))
        runners[f"{name} bf16 autocast+channels_last"] = ("bf16", autocast(peer, "cpu", torch.bfloat16))
    torchvision_model, runner = torchvision_int8(arch, ours.state_dict())
    runners["torchvision int8 (fbgemm)"] = ("int8", runner)
    # torchvision's int8 tensors in the zoo's int8 graph, as the tv_int8_in1k tags load them: fbgemm (torchvision's
    # logits bit for bit), then repacked for the x86 engine
    int8_tag = inceptionzoo.get_pretrained_cfg(f"{arch}.tv_int8_in1k")
    published = load_quantized(ours, torchvision_model.state_dict(), "fbgemm", key_map=int8_tag.quantized_keys)
    runners["inceptionzoo int8 tag weights, fbgemm"] = ("int8", published)
    runners["inceptionzoo int8 tag weights, x86"] = ("int8", copy.deepcopy(published).repack("x86"))
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        runners["onnxruntime fp32"] = ("fp32", onnx_runtime(ours, example, threads))
        runners["inceptionzoo onnxruntime engine fp32"] = ("fp32", optimize_for_inference(ours, engine="onnxruntime"))
        runners["inceptionzoo onnxruntime engine int8"] = ("int8", optimize_for_inference(
            ours, engine="onnxruntime", dtype="int8", calibration_batches=calibration))  # fmt: skip
    else:
        print(f"ONNX Runtime left out: torch.onnx.export(dynamo=True) is not in torch {torch.__version__}")
    return runners, macs


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
    synchronize = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    synchronize()
    start = time.perf_counter()
    for _ in range(iterations):
        runner(x)
    synchronize()
    return iterations * x.shape[0] / (time.perf_counter() - start)


# the issue's goals, each a ratio of two contenders' medians in the same run: (label, numerator, denominator)
GOALS = (
    ("int8 vs our fp32 fast path (goal >= 3x)", "inceptionzoo fast int8", "inceptionzoo fast fp32"),
    ("int8 vs ONNX Runtime fp32 (goal >= 2x)", "inceptionzoo fast int8", "onnxruntime fp32"),
    ("int8 vs our bf16 fast path (goal >= 1x with AMX)", "inceptionzoo fast int8", "inceptionzoo fast bf16"),
    ("int8 vs torchvision's int8", "inceptionzoo fast int8", "torchvision int8 (fbgemm)"),
    ("onnxruntime engine vs plain ONNX Runtime (goal >= 0.95x)", "inceptionzoo onnxruntime engine fp32",
     "onnxruntime fp32"),
    ("ONNX Runtime int8 vs ONNX Runtime fp32", "inceptionzoo onnxruntime engine int8", "onnxruntime fp32"),
)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", nargs="+", default=["inception_v3", "inception_v1_tv"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU paths (float only)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per contender (median reported)")
    parser.add_argument("--iterations", type=int, default=2, help="batches per repetition")
    parser.add_argument("--csv", default="", help="also write the results to this CSV file")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="leave out the torch.compile fast paths (each takes 20-40 s to compile)")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    on_gpu = args.device.startswith("cuda")
    where = machine(args.threads, args.device)
    print(f"machine: {where}")
    rows = []
    for arch in args.arch:
        size = 299 if arch == "inception_v3" else 224
        x = torch.randn(args.batch, 3, size, size, device=args.device)
        runners, macs = contenders(arch, x.cpu(), args.threads, compile=args.compile, device=args.device)
        for _, runner in runners.values():  # warm-up (and compilation)
            images_per_second(runner, x, 3 if on_gpu else 1)
        speeds: dict[str, list[float]] = {name: [] for name in runners}
        ceilings: dict[str, list[float]] = {"fp32": [], "bf16": []}
        for _ in range(args.repeats):
            for name, (_, runner) in runners.items():  # interleaved, so machine noise hits all alike
                speeds[name].append(images_per_second(runner, x, args.iterations))
            if not on_gpu:
                ceilings["fp32"].append(convolution_ceiling(torch.float32, args.batch))
                ceilings["bf16"].append(convolution_ceiling(torch.bfloat16, args.batch))
        ceiling = {k: statistics.median(v) for k, v in ceilings.items() if v}
        medians = {name: statistics.median(values) for name, values in speeds.items()}
        ceiling_text = (f"convolution ceiling {ceiling['fp32']:.0f} GFLOP/s fp32, {ceiling['bf16']:.0f} bf16"
                        if ceiling else "no CPU convolution ceiling on a GPU")  # fmt: skip
        print(f"\n{arch} at {size}x{size}, batch {args.batch}, {args.threads} threads, {2 * macs / 1e9:.2f} "
              f"GFLOP/image; {ceiling_text}")  # fmt: skip
        for name, median in medians.items():
            precision = runners[name][0]
            gflops = 2 * macs * median / 1e9
            row = {"arch": arch, "contender": name, "precision": precision, "batch": args.batch,
                   "threads": args.threads, "img_per_s": round(median, 2), "gflop_per_s": round(gflops, 1)}  # fmt: skip
            if precision in ceiling:
                row["fraction_of_ceiling"] = round(gflops / ceiling[precision], 3)
            if name.startswith("inceptionzoo"):
                row.update({f"ratio_vs_{peer}": round(median / medians[peer], 3) for peer in medians
                            if runners[peer][0] == precision and not peer.startswith("inceptionzoo")})  # fmt: skip
            rows.append(row)
            ratios = "  ".join(f"{k[9:]}: {v:.2f}x" for k, v in row.items() if k.startswith("ratio_vs_"))
            share = f"{100 * row['fraction_of_ceiling']:5.1f}% of ceiling" if "fraction_of_ceiling" in row else ""
            print(f"  {name:<44} {precision} {median:8.1f} img/s {gflops:7.0f} GFLOP/s {share}  {ratios}")
        best_float = max(medians[n] for n in ("inceptionzoo fast fp32", "inceptionzoo fast bf16"))
        auto_ratio = medians["inceptionzoo fast auto"] / best_float
        print(f"  auto vs the best of our fp32 / bf16: {auto_ratio:.2f}x")
        rows.append({"arch": arch, "contender": "goal: auto vs best of fast fp32/bf16", "batch": args.batch,
                     "threads": args.threads, "ratio": round(auto_ratio, 3)})  # fmt: skip
        for label, numerator, denominator in GOALS:
            if numerator in medians and denominator in medians:
                ratio = medians[numerator] / medians[denominator]
                print(f"  {label}: {ratio:.2f}x")
                rows.append({"arch": arch, "contender": f"goal: {label}", "batch": args.batch,
                             "threads": args.threads, "ratio": round(ratio, 3)})  # fmt: skip
    if args.csv:
        write_csv(args.csv, rows, where)


if __name__ == "__main__":
    main()
