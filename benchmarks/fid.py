"""FID feature extraction side by side: inceptionzoo (exact, the default fast fp32 path, opt-in bf16 and int8) against
pytorch-fid, torch-fidelity, clean-fid and torchmetrics' FrechetInceptionDistance.

Every implementation holds the same weights (``inception_v3_fid`` with BatchNorm statistics gathered at 299x299,
since the published file cannot be fetched here), reads the same uint8 CIFAR-10 test images from the project's
copy, and runs interleaved in one process: each repetition times every contender once on the whole set, in batches;
the median images/s of each is reported with its ratio to the fastest peer. Then each one's FID between the two
halves of the set (one float64 distance for all, so only the features differ) is compared with pytorch-fid's and
with the reference of its own resize mode: FID's drift. int8 is calibrated on other images of the same archive (the
next ``--calibration-images``), as ``compute`` calibrates on images it does not measure the drift on. Speed is never
asserted in the tests.

    python benchmarks/fid.py --images 200 --batch 50 --repeats 3 --csv benchmarks/fid.csv

The libraries are not dependencies of the project: ``pip install pytorch-fid torch-fidelity clean-fid torchmetrics``
(a peer that is not installed is left out, saying so).
"""

import argparse
import functools
import io
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import machine, write_csv
from PIL import Image

import inceptionzoo
from inceptionzoo.complexity import count_macs
from inceptionzoo.fid import fid_network, frechet_distance, resize_for_fid

Extractor = Callable[[torch.Tensor], torch.Tensor]


def load_images(archive: Path, count: int) -> torch.Tensor:
    """The first ``count`` images under ``test/`` of the CIFAR-10 archive, as a uint8 ``(n, 3, 32, 32)`` tensor."""
    images = []
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.isfile() and "/test/" in f"/{member.name}" and member.name.endswith(".jpg"):
                with Image.open(io.BytesIO(tar.extractfile(member).read())) as image:
                    images.append(torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1))
                if len(images) == count:
                    break
    return torch.stack(images)


def realistic_fid_model(passes: int = 4) -> torch.nn.Module:
    """``inception_v3_fid`` with BatchNorm running statistics averaged over a few train-mode passes of [-1, 1]
    inputs at 299x299, so that its features have the size of the real network's (a few units, not millions)."""
    torch.manual_seed(0)
    model = inceptionzoo.create_model("inception_v3_fid").train()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the passes
    with torch.no_grad():
        for _ in range(passes):
            model(torch.rand(4, 3, 299, 299) * 2 - 1)
    return model.eval()


def ours(model: torch.nn.Module, mode: str, **options) -> Extractor:
    network = fid_network(model, allow_random_weights=True, **options)

    def extract(batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return network(resize_for_fid(batch, mode))

    return extract


def pytorch_fid_extractor(state_dict: dict) -> Extractor:
    from pytorch_fid import inception

    original = inception.load_state_dict_from_url
    inception.load_state_dict_from_url = lambda *args, **kwargs: state_dict
    try:
        model = inception.InceptionV3(output_blocks=[3]).eval()
    finally:
        inception.load_state_dict_from_url = original

    def extract(batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(batch.float() / 255)[0].flatten(1)  # its ImagePathDataset's ToTensor, then its own resize

    return extract


def torch_fidelity_extractor(weights: Path) -> Extractor:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], str(weights)).eval()

    def extract(batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(batch)[0]

    return extract


def clean_fid_extractor(state_dict: dict) -> Extractor:
    """clean-fid's ``clean`` resize with its pytorch-fid network (``name="pytorch_inception"``: the TorchScript
    graph it downloads by default cannot be fetched here), as its ``get_batch_features`` runs it."""
    from cleanfid import inception_pytorch  # clean-fid's own copy of pytorch-fid's network
    from cleanfid.features import feature_extractor
    from cleanfid.resize import build_resizer

    original = inception_pytorch.load_state_dict_from_url
    inception_pytorch.load_state_dict_from_url = lambda *args, **kwargs: state_dict
    try:
        model = feature_extractor(name="pytorch_inception", device=torch.device("cpu"), use_dataparallel=False)
    finally:
        inception_pytorch.load_state_dict_from_url = original
    resize = build_resizer("clean")

    def extract(batch: torch.Tensor) -> torch.Tensor:
        resized = torch.stack([torch.from_numpy(resize(image.permute(1, 2, 0).numpy())) for image in batch])
        with torch.no_grad():
            return model(resized.permute(0, 3, 1, 2))

    return extract


def torchmetrics_extractor(weights: Path) -> Extractor:
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(weights))

    def extract(batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return metric.inception(batch)

    return extract


def contenders(
    model: torch.nn.Module, weights: Path, calibration: list[torch.Tensor]
) -> dict[str, tuple[str, str, Extractor]]:
    """name -> (library, resize mode, extractor). ``calibration``: int8's batches of resized images."""
    state_dict = model.state_dict()
    found = {
        "inceptionzoo exact (pytorch-fid mode)": (
            "inceptionzoo",
            "pytorch-fid",
            ours(model, "pytorch-fid", fast=False),
        ),
        "inceptionzoo default (pytorch-fid mode)": ("inceptionzoo", "pytorch-fid", ours(model, "pytorch-fid")),
        "inceptionzoo default (tf mode)": ("inceptionzoo", "tf", ours(model, "tf")),
        "inceptionzoo default (clean mode)": ("inceptionzoo", "clean", ours(model, "clean")),
        "inceptionzoo bf16 (pytorch-fid mode)": (
            "inceptionzoo",
            "pytorch-fid",
            ours(model, "pytorch-fid", dtype=torch.bfloat16),
        ),
    }
    if calibration:
        found["inceptionzoo int8 (pytorch-fid mode)"] = (
            "inceptionzoo",
            "pytorch-fid",
            ours(model, "pytorch-fid", dtype="int8", calibration_images=calibration),
        )
    try:
        found["inceptionzoo onnxruntime (pytorch-fid mode)"] = (
            "inceptionzoo",
            "pytorch-fid",
            ours(model, "pytorch-fid", engine="onnxruntime"),
        )
        if calibration:
            found["inceptionzoo onnxruntime int8 (pytorch-fid mode)"] = (
                "inceptionzoo",
                "pytorch-fid",
                ours(model, "pytorch-fid", engine="onnxruntime", dtype="int8", calibration_images=calibration),
            )
    except ImportError as error:
        print(f"inceptionzoo onnxruntime: the onnx extra is not installed ({error}); left out", file=sys.stderr)
    peers = {
        "pytorch-fid": ("pytorch-fid", lambda: pytorch_fid_extractor(state_dict)),
        "torch-fidelity": ("tf", lambda: torch_fidelity_extractor(weights)),
        "clean-fid": ("clean", lambda: clean_fid_extractor(state_dict)),
        # torchmetrics resizes with torch's antialiased bilinear, then (x - 128) / 128: none of the three modes
        "torchmetrics": ("torch antialiased bilinear", lambda: torchmetrics_extractor(weights)),
    }
    for name, (mode, build) in peers.items():
        try:
            found[name] = (name, mode, build())
        except ImportError as error:
            print(f"{name}: not installed ({error}); left out", file=sys.stderr)
    return found


def features_of(extract: Extractor, images: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([extract(images[i : i + batch]).float() for i in range(0, len(images), batch)])


def matmul_rate(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a ``size``-square matrix product in ``dtype``, the median of ``repeats``: what this CPU's matrix
    units reach at all, the yardstick for the convolutions."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times)


def fp32_ceiling(model: torch.nn.Module, images: torch.Tensor) -> dict[str, float]:
    """Where the fp32 default stands against the CPU: its convolutions' share of a forward pass (torch's profiler)
    and their FLOP/s against an fp32 matrix product's, and the images/s it would reach with no time outside them."""
    network = fid_network(model, allow_random_weights=True)
    batch = resize_for_fid(images, "pytorch-fid")
    with torch.inference_mode():
        network(batch)
        with torch.profiler.profile() as profile:
            network(batch)
    events = profile.key_averages()
    total = sum(event.self_cpu_time_total for event in events) / 1e6
    convolutions = sum(event.self_cpu_time_total for event in events if "convolution" in event.key) / 1e6
    flops = 2 * count_macs(model, (3, 299, 299)) * len(images)
    return {
        "convolution_share": convolutions / total,
        "convolution_flops": flops / convolutions,
        "fp32_matmul_flops": matmul_rate(torch.float32),
        "bf16_matmul_flops": matmul_rate(torch.bfloat16),
        "images_per_second_convolutions_only": len(images) / convolutions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/cifar10-jpeg.tar.gz", help="the CIFAR-10 JPEG archive")
    parser.add_argument("--images", type=int, default=200, help="images (two halves for the FID)")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--calibration-passes", type=int, default=4, help="train-mode passes of 4 images that set the "
                        "stand-in network's BatchNorm statistics (docs/fid.md's table: 4)")  # fmt: skip
    parser.add_argument("--calibration-images", type=int, default=128, help="images after the measured ones that "
                        "calibrate int8 (0 leaves int8 out)")  # fmt: skip
    parser.add_argument("--ceiling", action="store_true", help="also measure the fp32 default's convolutions against "
                        "the CPU's matrix-product rate: how fast any fp32 path could be here")  # fmt: skip
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()
    if args.images < 4:
        parser.error("--images must be 4 or more: the FID compares two halves of 2 or more images each")
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = machine(torch.get_num_threads())
    print(f"# {cpu}; torch {torch.__version__}; {args.images} CIFAR-10 test images (32x32), batch {args.batch}")
    loaded = load_images(Path(args.data), args.images + args.calibration_images)
    images, extra = loaded[: args.images], loaded[args.images :]
    calibration = [resize_for_fid(extra[i : i + args.batch], "pytorch-fid") for i in range(0, len(extra), args.batch)]
    model = realistic_fid_model(args.calibration_passes)
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "weights.pth"
        torch.save(model.state_dict(), weights)
        runners = contenders(model, weights, calibration)
    features = {}
    for name, (_, _, extract) in runners.items():  # warm-up, and the features for the FID
        features[name] = features_of(extract, images, args.batch)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.repeats):
        for name, (_, _, extract) in runners.items():
            start = time.perf_counter()
            features_of(extract, images, args.batch)
            times[name].append(time.perf_counter() - start)
    half = len(images) // 2

    @functools.cache  # each contender's FID once: the table compares most of them with the same two references
    def fid(name: str) -> float:
        feats = features[name].double()
        return frechet_distance(feats[:half], feats[half:])

    mode_reference = {"pytorch-fid": "pytorch-fid", "tf": "torch-fidelity", "clean": "clean-fid"}
    speeds = {name: len(images) / statistics.median(values) for name, values in times.items()}
    peers = [name for name, (library, _, _) in runners.items() if library != "inceptionzoo"]
    fastest_peer = max(peers, key=speeds.get) if peers else None
    rows = []
    header = (
        f"{'contender':<40} {'img/s':>7} {'x fastest peer':>15} {'FID':>12} {'vs pytorch-fid':>15} {'vs mode ref':>12}"
    )
    print(header)
    for name, (library, mode, _) in runners.items():
        value = fid(name)
        against_pytorch_fid = value / fid("pytorch-fid") - 1 if "pytorch-fid" in runners else float("nan")
        reference = mode_reference.get(mode)
        against_mode = value / fid(reference) - 1 if reference in runners else float("nan")
        reference = reference or "-"
        ratio = speeds[name] / speeds[fastest_peer] if fastest_peer else float("nan")
        rows.append({
            "contender": name, "library": library, "resize_mode": mode, "images_per_second": round(speeds[name], 2),
            "ratio_to_fastest_peer": round(ratio, 3), "fastest_peer": fastest_peer, "fid": value,
            "drift_vs_pytorch_fid": against_pytorch_fid, "drift_vs_mode_reference": against_mode,
            "mode_reference": reference, "images": len(images), "batch": args.batch,
        })  # fmt: skip
        print(f"{name:<40} {speeds[name]:>7.2f} {ratio:>15.2f} {value:>12.6g} {against_pytorch_fid:>15.2e} "
              f"{against_mode:>12.2e}")  # fmt: skip
    if args.ceiling:
        found = fp32_ceiling(model, images[: args.batch])
        bound = found["images_per_second_convolutions_only"]
        print(f"fp32 ceiling: convolutions take {found['convolution_share']:.0%} of the default's forward pass and "
              f"run at {found['convolution_flops'] / 1e9:.0f} GFLOP/s, against {found['fp32_matmul_flops'] / 1e9:.0f} "
              f"for a 2048x2048 fp32 matrix product ({found['bf16_matmul_flops'] / 1e9:.0f} in bf16); with no time "
              f"outside them it would reach {bound:.2f} img/s"
              + (f", {bound / speeds[fastest_peer]:.2f}x {fastest_peer}" if fastest_peer else ""))  # fmt: skip
        rows.append({"contender": "fp32 ceiling (convolutions only)", "images_per_second": round(bound, 2),
                     **{key: round(value, 4) for key, value in found.items()}})  # fmt: skip
    if args.csv:
        write_csv(args.csv, rows, cpu)


if __name__ == "__main__":
    main()
