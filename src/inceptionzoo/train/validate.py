"""``inceptionzoo validate`` / ``validate(...)``: top-1, top-5, loss and images per second of a model on a dataset.

Any model name, Hub repo, checkpoint or training run's folder, on any data ``inceptionzoo train`` reads, with the
weights' own preprocessing; the result is a row in timm's ``validate.py`` results layout plus loss and speed. Under
torchrun the ranks share the images. A run's folder is evaluated with that run's ``--amp`` unless ``amp`` is given.
"""

import argparse
import csv
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data.sources import open_eval_split
from .distributed import Distributed, default_workers
from .engine import autocast_dtype, evaluate

__all__ = ["check_class_order", "main", "resolve_model_source", "run_amp", "validate"]

SYNSET = re.compile(r"^n\d{8}$")


def resolve_model_source(model: str) -> tuple[str, bool]:
    """``(name for create_model, whether it names weights)``: a run folder becomes ``local-dir:<run>/model``."""
    path = Path(model)
    if path.is_dir():
        for folder in (path / "model", path):
            if (folder / "config.json").is_file():
                return f"local-dir:{folder}", True
        raise FileNotFoundError(f"{path} is a folder but neither it nor {path / 'model'} holds a config.json")
    return model, model.startswith(("hf-hub:", "local-dir:"))


def run_amp(model: str) -> str | None:
    """The ``--amp`` a training run used, when ``model`` is its output folder or its ``model/`` folder."""
    path = Path(model)
    for folder in (path, path.parent) if path.name == "model" else (path,):
        try:
            saved = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(saved, dict) and isinstance(saved.get("amp"), str) and "resolved_recipe" in saved:
            return saved["amp"]
    return None


def check_class_order(model: nn.Module, classes: Sequence[str], where: str) -> None:
    """Raise a ValueError unless ``model``'s outputs mean ``classes``, in that order.

    A run's saved model names its classes (``pretrained_cfg["label_names"]``); 1000-class ImageNet weights expect
    the WordNet synset folders (``n01440764``, ...) in sorted order, as ImageNet's val/ folders are laid out.
    """
    classes = list(classes)
    if model.num_classes != len(classes):
        raise ValueError(
            f"the model has {model.num_classes} classes, but {where} has {len(classes)} class folders; validate on "
            "data with the classes the model was trained on"
        )
    expected = model.pretrained_cfg.get("label_names")
    if expected is None and len(classes) == 1000 and all(SYNSET.match(name) for name in classes):
        from timm.data import ImageNetInfo

        expected = list(ImageNetInfo().label_names())
    if expected is not None and list(expected) != classes:
        differ = [f"{i}: model {a!r}, data {b!r}" for i, (a, b) in enumerate(zip(expected, classes, strict=False))
                  if a != b][:5]  # fmt: skip
        raise ValueError(
            f"the classes of {where} are not the model's, in the model's order (first differences: "
            f"{'; '.join(differ) or 'different counts'}); rename or reorder the class folders to match"
        )


def validate(
    model: str | nn.Module,
    data: str,
    split: str | None = None,
    pretrained: bool = False,
    checkpoint: str | None = None,
    batch_size: int = 64,
    workers: int | None = None,
    amp: str | None = None,
    channels_last: bool = True,
    optimize: bool = False,
    image_size: int | None = None,
    device: str = "auto",
    flip_tta: bool = False,
    subset: int | None = None,
    skip_bad_images: bool = False,
    cache_dir: str | None = None,
    check_classes: bool = True,
) -> dict[str, Any]:
    """Evaluate ``model`` on a split of ``data`` (``val/``, else ``test/``); returns timm's results row.

    ``amp`` None is the training run's own setting when ``model`` is a run's folder, else ``none``."""
    from .. import create_model
    from ..complexity import count_parameters
    from ..deploy import optimize_for_inference
    from .data.cache import default_cache_dir

    if amp is None:
        amp = (run_amp(model) if isinstance(model, str) else None) or "none"

    env = Distributed(device)
    try:
        if isinstance(model, nn.Module):
            net, name = model, getattr(model, "pretrained_cfg", {}).get("architecture", type(model).__name__)
        else:
            name, names_weights = resolve_model_source(model)
            # a checkpoint's classifier is sized for its data: built below, once the split's classes are known
            net = create_model(name, pretrained=(pretrained or names_weights) and checkpoint is None)
        cfg = net.pretrained_cfg
        size = image_size or cfg["input_size"][-1]
        loader, classes, where = open_eval_split(
            data, net, batch_size, size, split=split,
            workers=workers if workers is not None else default_workers(env.world_size), rank=env.rank,
            world_size=env.world_size, channels_last=channels_last, cache_dir=cache_dir or str(default_cache_dir()),
            skip_bad=skip_bad_images, subset_size=subset,
        )  # fmt: skip
        if checkpoint is not None and not isinstance(model, nn.Module):
            net = create_model(name, checkpoint_path=checkpoint, num_classes=len(classes))
        if check_classes:
            check_class_order(net, classes, where)
        dtype = autocast_dtype(amp, env.device)
        parameters = count_parameters(net)
        net = net.to(env.device).eval()
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        if optimize:
            net = optimize_for_inference(net, dtype=dtype)
            dtype = None  # the optimized copy runs in its own dtype
        began = time.perf_counter()
        stats = evaluate(net, loader.epoch(0), nn.CrossEntropyLoss(), flip_tta, dtype, env.device)
        seconds = time.perf_counter() - began
    finally:
        env.close()
    return {
        "model": name,
        "top1": round(stats.top1, 4),
        "top1_err": round(100 - stats.top1, 4),
        "top5": round(stats.top5, 4),
        "top5_err": round(100 - stats.top5, 4),
        "param_count": round(parameters / 1e6, 2),
        "img_size": size,
        "crop_pct": cfg.get("crop_pct"),
        "interpolation": cfg.get("interpolation"),
        "loss": round(stats.loss, 6),
        "images": stats.images,
        "images_per_s": round(stats.images / seconds, 2),
        "skipped_images": loader.skipped,
        "amp": amp,
        "data": where,
    }


def write_results(results: dict[str, Any], path: str | os.PathLike) -> None:
    """Append ``results`` to a CSV (with a header when new) or write it as JSON, by the file's suffix."""
    path = Path(path)
    if path.suffix == ".json":
        path.write_text(json.dumps(results, indent=2) + "\n")
        return
    new = not path.is_file()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(results))
        if new:
            writer.writeheader()
        writer.writerow(results)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Top-1, top-5, loss and images/s of a model on a dataset, with the weights' own preprocessing "
        "(timm's validate.py results layout). Run it under torchrun to share the images among processes.",
    )
    add = parser.add_argument
    add("--model", required=True, help="a model name (e.g. inception_v3.tv_in1k), hf-hub:ORG/REPO, "
        "local-dir:FOLDER, or a training run's output folder")  # fmt: skip
    add("--data", required=True, help="a folder with val/<class>/ or test/<class>/ (or the class folders "
        "themselves), tar shards, a .tar.gz of an ImageFolder tree, or torchvision:ROOT")  # fmt: skip
    add("--split", default=None, help="the split folder to evaluate (default: val, else test)")
    add("--pretrained", action="store_true", help="load the model's published weights")
    add("--checkpoint", default=None, help="a .safetensors or .pth checkpoint to load into the model (its classifier "
        "sized for the data's classes)")  # fmt: skip
    add("--batch-size", type=int, default=64, help="images per batch (default: %(default)s)")
    add("--workers", type=int, default=None, help="DataLoader workers that decode the images (default: cores - 1)")
    add("--amp", default=None, help="autocast dtype: none, bf16, fp16 (CUDA) or auto (default: a training run's "
        "own setting for its folder, else none)")  # fmt: skip
    add("--channels-last", action=argparse.BooleanOptionalAction, default=True, help="channels_last layout")
    add("--optimize", action="store_true", help="run optimize_for_inference's copy (BN folded, fused, merged)")
    add("--image-size", type=int, default=None, help="evaluate at this size (default: the weights')")
    add("--device", default="auto", help="auto, cuda or cpu")
    add("--flip-tta", action="store_true", help="average each image's logits with its mirror's")
    add("--subset", type=int, default=None, help="a class-balanced N images of the split, for a quick look")
    add("--cache-dir", default=None, help="where decoded datasets and shard indexes are cached (default: "
        "$INCEPTIONZOO_CACHE, else ~/.cache/inceptionzoo/datasets)")  # fmt: skip
    add("--skip-bad-images", action="store_true", help="skip unreadable images (counted) instead of stopping")
    add("--no-class-check", action="store_true", help="do not check the data's classes against the model's")
    add("--results-file", default=None, help="append the row to this CSV, or write it to this .json")
    return parser


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        results = validate(
            args.model, args.data, split=args.split, pretrained=args.pretrained, checkpoint=args.checkpoint,
            batch_size=args.batch_size, workers=args.workers, amp=args.amp, channels_last=args.channels_last,
            optimize=args.optimize, image_size=args.image_size, device=args.device, flip_tta=args.flip_tta,
            subset=args.subset, skip_bad_images=args.skip_bad_images, cache_dir=args.cache_dir,
            check_classes=not args.no_class_check,
        )  # fmt: skip
    except (ValueError, RuntimeError, FileNotFoundError, TypeError) as error:
        print(f"{prog or 'inceptionzoo validate'}: error: {error}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{results['model']}: top-1 {results['top1']:.3f}%  top-5 {results['top5']:.3f}%  loss "
              f"{results['loss']:.4f}  {results['images']:,} images at {results['images_per_s']:.1f} img/s",
              file=sys.stderr)  # fmt: skip
        if args.results_file:
            write_results(results, args.results_file)
        print(json.dumps(results))
    return 0
