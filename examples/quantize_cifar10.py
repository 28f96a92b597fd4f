"""What int8 costs in accuracy: a CIFAR-10 model trained by ``finetune_cifar10.py``, run on the 10,000 test images
in fp32, bf16, int8 (``inceptionzoo.quantize``, eager-mode x86) and int8 through ONNX Runtime, each calibrated on
training images only; prints each one's test top-1 and how often its top class agrees with fp32.

    python examples/finetune_cifar10.py --epochs 2 --val-size 0 --output runs/cifar-int8
    python examples/quantize_cifar10.py runs/cifar-int8/model
"""

import argparse
import json
import sys
from pathlib import Path

import torch

import inceptionzoo
from inceptionzoo.train.data.in_memory import load_dataset
from inceptionzoo.train.data.loaders import TensorLoader

SHARED_COPY = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz").resolve()


def predictions(model: torch.nn.Module, loader: TensorLoader) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-1 classes and targets over the whole loader (no test-time augmentation)."""
    classes, targets = [], []
    with torch.inference_mode():
        for images, labels in loader.epoch(0):
            classes.append(model(images).argmax(1))
            targets.append(labels)
    return torch.cat(classes), torch.cat(targets)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", help="a trained model folder (config.json + model.safetensors)")
    parser.add_argument("--data", default=str(SHARED_COPY))
    parser.add_argument("--calibration-images", type=int, default=512, help="training images the int8 ranges see")
    parser.add_argument("--json", default="", help="also write the figures to this file")
    args = parser.parse_args()
    folder = Path(args.model_dir)
    config = json.loads((folder / "config.json").read_text())
    model = inceptionzoo.create_model(
        config["architecture"], num_classes=config["num_classes"], pretrained_file=str(folder / "model.safetensors")
    ).eval()
    cfg = model.pretrained_cfg
    mean, std = tuple(cfg["mean"]), tuple(cfg["std"])
    cache = Path.home() / ".cache" / "inceptionzoo" / "datasets"
    train, test = load_dataset(args.data, "train", cache_dir=cache), load_dataset(args.data, "test", cache_dir=cache)
    batch_size = min(256, args.calibration_images, len(train))
    batches = TensorLoader(train, batch_size, mean, std, train=True).epoch(0)  # shuffled (cropped, flipped) images
    count = max(1, args.calibration_images // batch_size)
    calibration = [x for _, (x, _) in zip(range(count), batches, strict=False)]
    loader = TensorLoader(test, 500, mean, std)
    engines = {
        "fp32": inceptionzoo.optimize_for_inference(model, dtype=torch.float32),
        "bf16": inceptionzoo.optimize_for_inference(model, dtype=torch.bfloat16),
        "int8 (inceptionzoo.quantize, x86)": inceptionzoo.quantize(model, calibration),
        "int8 (ONNX Runtime)": inceptionzoo.optimize_for_inference(
            model, engine="onnxruntime", dtype="int8", calibration_batches=calibration
        ),
    }
    reference, targets = predictions(engines["fp32"], loader)
    figures = {}
    for name, engine in engines.items():
        classes = reference if name == "fp32" else predictions(engine, loader)[0]
        figures[name] = {
            "test_top1": round(100 * (classes == targets).float().mean().item(), 2),
            "agreement_with_fp32": round(100 * (classes == reference).float().mean().item(), 2),
        }
        print(f"{name:<36} test top-1 {figures[name]['test_top1']:6.2f}%  "
              f"agrees with fp32 on {figures[name]['agreement_with_fp32']:6.2f}% of {len(targets)} images")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"model": config["architecture"], **figures}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
