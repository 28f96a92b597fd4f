"""The fast-CIFAR recipe with each trick removed in turn (docs/results.md's ablation table): short runs with one
budget for all (``--epochs``, default 3), trained on 45,000 images and measured on the 5,000-image validation split
carved out of train/, never on test/. The test-time augmentations cost no training, so they are measured on the
full recipe's weights.

    python examples/ablate_cifar10.py --epochs 3 --output runs/ablation      # about 40 minutes on 2 cores
"""

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

import inceptionzoo
from inceptionzoo.train import RECIPES, TrainConfig, fit
from inceptionzoo.train.data.in_memory import load_dataset, split_validation
from inceptionzoo.train.data.loaders import TensorLoader
from inceptionzoo.train.engine import evaluate

# the recipe with the standard CIFAR crop (4 pixels of zeros) instead of its translate crop: a recipe of this script's
RECIPES["cifar_fast_standard_crop"] = replace(RECIPES["cifar_fast"], name="cifar_fast_standard_crop", translate=None)

SHARED_COPY = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz").resolve()

# each trick and the setting that removes it (the standard choice it replaced)
REMOVALS = {
    "whitened stem": {"whiten_stem": False},
    "frozen norm scales": {"freeze_norm_scale": False},
    "norm biases at 64x lr": {"norm_bias_lr_scale": 1.0},
    "lookahead": {"lookahead": False},
    "translate 2 (reflect) crop -> 4-pixel zero-pad crop": {"recipe": "cifar_fast_standard_crop"},
    "alternating flip -> random flip": {"alternate_flip": False},
    "label smoothing 0.2 -> 0": {"label_smoothing": 0.0},
    "identity (Dirac) init": {"model_kwargs": {"identity_init": False}},
    "Inception modules -> plain 3x3 convolutions (airbench's layers)": {
        "model_kwargs": {"branch_fractions": (0, 1, 0)}
    },
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED_COPY))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--output", default="runs/ablation")
    parser.add_argument("--only", nargs="*", help="run only these rows (by their number, 0 = the full recipe)")
    args = parser.parse_args()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    results_file = output / "ablation.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    base = TrainConfig(model="inception_fast_cifar", recipe="cifar_fast", data=args.data, epochs=args.epochs,
                       val_size=5000, progress=False)  # fmt: skip
    rows = {"full recipe": {}, **REMOVALS}
    for number, (name, change) in enumerate(rows.items()):
        if (args.only and str(number) not in args.only) or name in results:
            continue
        change = dict(change)
        model_kwargs = change.pop("model_kwargs", {})
        config = replace(base, output=str(output / f"row{number}"), **change)
        if model_kwargs:  # an architecture change: a registered model with other config values
            config = replace(config, model=_variant(number, model_kwargs))
        summary = fit(config)
        results[name] = {"val_top1": summary["final"]["val_top1"], "train_seconds": summary["train_seconds"]}
        if number == 0:
            results.update(_tta_rows(args.data, output / "row0" / "model"))
        results_file.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps({name: results[name]}), flush=True)
    print(json.dumps(results, indent=2))
    return 0


# timm's convention, which register_model follows: a builder's module names its pretrained configs here
default_cfgs: dict = {}


def _variant(number: int, model_kwargs: dict) -> str:
    """Register ``inception_fast_cifar`` with other config values under a name of its own, for ``fit``; it shares
    the base model's pretrained config (its preprocessing and first convolution, which the whitened stem sets)."""
    from inceptionzoo import register_model
    from inceptionzoo.models import inception_fast
    from inceptionzoo.models.inception_fast import inception_fast_cifar

    name = f"inception_fast_cifar_ablation{number}"
    default_cfgs[name] = inception_fast.default_cfgs["inception_fast_cifar"]

    def builder(pretrained: bool = False, **kwargs):
        return inception_fast_cifar(pretrained, **{**model_kwargs, **kwargs})

    builder.__name__ = name
    register_model(builder, override=True)
    return name


def _tta_rows(data: str, model_dir: Path) -> dict:
    """The full recipe's weights on the validation split with flip + translate, flip only, and no TTA."""
    model = inceptionzoo.create_model("inception_fast_cifar", pretrained_file=str(model_dir / "model.safetensors"))
    train = load_dataset(data, "train", cache_dir=Path.home() / ".cache" / "inceptionzoo" / "datasets")
    _, val = split_validation(train, 5000, seed=0)
    cfg = model.pretrained_cfg
    loader = TensorLoader(val, 1000, tuple(cfg["mean"]), tuple(cfg["std"]))
    rows = {}
    for name, flip, translate in (("TTA flip + translate -> flip only", True, 0), ("TTA -> none", False, 0)):
        stats = evaluate(model, loader.epoch(0), torch.nn.CrossEntropyLoss(), flip, torch.bfloat16, "cpu",
                         translate_tta=translate)  # fmt: skip
        rows[name] = {"val_top1": stats.top1, "train_seconds": None}
    return rows


if __name__ == "__main__":
    sys.exit(main())
