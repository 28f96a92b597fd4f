"""``inceptionzoo train`` / ``python -m inceptionzoo.train``: the training loop from the command line.

For several processes launch it with torchrun, e.g.
``torchrun --nproc_per_node 2 -m inceptionzoo.train --model inception_v1_cifar --data cifar10-jpeg.tar.gz``.
"""

import argparse
import json
import os
import shlex
import sys
import typing
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from timm.utils import ParseKwargs

from .loop import TrainConfig, TrainingInterrupted, fit

__all__ = ["build_parser", "config_from_args", "main", "resume_command"]

_HELP = {
    "model": "registered model name, optionally with a weight tag (e.g. inception_v3.tv_in1k); default: %(default)s",
    "model_kwargs": "builder arguments for the model, as key=value pairs (values read as Python literals, else as "
    "strings), e.g. --model-kwargs factorize_nxn=False width_multiplier=0.5 or stem_stride=1 stem_pool=False; "
    "recorded in the saved model's config.json, which rebuilds the same architecture (create_model's keyword "
    "arguments; default none)",
    "data": "a folder with train/<class>/<images> (and val/ or test/), a folder with train/*.tar shards in the "
    "webdataset layout (and val/ or test/), a .tar.gz of an ImageFolder tree, or torchvision:ROOT for torchvision's "
    "CIFAR10 under ROOT",
    "output": "folder for checkpoints, metrics.csv/.jsonl, metrics.png, summary.json and the final model/ "
    "(default: a new runs/<model>-<date>-<time>)",
    "pretrained": "start from the model's pretrained weights (the classifier is replaced to fit the data's classes, "
    "images are resized to the weights' input size)",
    "pretrained_file": "start from the weights in this local file (safetensors or a PyTorch checkpoint, e.g. one "
    "copied from a machine with network access), loaded as published weights are: the classifier is replaced to fit "
    "the data's classes; implies --pretrained (create_model's pretrained_file=)",
    "download": "with --data torchvision:ROOT, download CIFAR-10 into ROOT if it is not there",
    "cache_dir": "where decoded datasets, shard indexes and --freeze features are cached (default: "
    "$INCEPTIONZOO_CACHE, else ~/.cache/inceptionzoo/datasets)",
    "recipe": "training recipe (momentum_sgd, rmsprop, rmsprop_label_smoothing, googlenet, cifar, cifar_fast); "
    "default: the one the model's paper row or MODEL_RECIPES names",
    "epochs": "epochs to train, whole or fractional (9.9 ends with a partial pass; default: the recipe's)",
    "batch_size": "images per process and step (default: the recipe's)",
    "lr": "peak learning rate (default: the recipe's, scaled linearly with the global batch size)",
    "weight_decay": "weight decay, not applied to norms and biases (default: the recipe's)",
    "label_smoothing": "label smoothing of the training loss (default: the recipe's)",
    "warmup_epochs": "epochs of linear learning-rate warm-up (default: the recipe's)",
    "decay_epochs": "the step schedule's decay interval in epochs, fractions too (the rate moves every step); only "
    "for recipes with a step schedule (default: the recipe's)",
    "ema_decay": "decay of the weight average (EMA) that is evaluated and saved (default: the recipe's)",
    "ema": "keep a weight average (EMA) and evaluate and save it; --no-ema uses the trained weights themselves "
    "(default on when the recipe has one)",
    "clip_grad": "clip the gradient norm to this value (default: the recipe's)",
    "val_size": "validation each epoch: N images carved out of train/, class-balanced, or 0 for none (default: "
    "val/ or validation/ when the folder has one, else about 10%% of train/ carved out, at most 5000, none when a "
    "class has fewer than 5 images; tar shards validate on val/ shards)",
    "eval_test": "evaluate test/ once, after the last epoch (report this figure once; tune on validation)",
    "subset": "use a random class-balanced N images of train/ (and at most N of test/), for quick runs",
    "image_size": "train and evaluate at this size (default: the model's input size, 299 for ImageNet weights)",
    "amp": "autocast dtype: auto (inceptionzoo.precision.choose_precision's: bf16 on a GPU that has it, else fp16; "
    "on a CPU bf16 where it runs faster than fp32, else none), bf16, fp16 or none",
    "channels_last": "keep images and weights in channels_last memory layout (default on)",
    "compile": "run the training step through torch.compile, after minutes of compiling: faster for some models, "
    "slower for others (docs/performance.md; default off)",
    "sync_bn": "synchronise BatchNorm statistics across processes (torchrun only)",
    "flip_tta": "average each evaluated image's logits with its mirror's (default on)",
    "seed": "random seed; every epoch's shuffling, crops, flips and dropout derive from it (default: %(default)s)",
    "threads": "CPU threads per process (default: torch's choice)",
    "device": "auto (CUDA when present), cuda or cpu",
    "resume": "continue the run whose output folder (or checkpoint folder) this is, exactly where it stopped",
    "keep_checkpoints": "how many epoch checkpoints to keep, 1 or more (default: %(default)s)",
    "progress": "show progress: a tqdm bar on a terminal, else one line every --log-every steps (default on)",
    "data_mode": "auto (in memory when every image has one size and the split fits --memory-budget-gb, else "
    "streamed), memory or stream (default: %(default)s)",
    "memory_budget_gb": "the most decoded images the in-memory path may hold, in GiB (default: %(default)s)",
    "workers": "DataLoader worker processes per process that decode and augment streamed images (default: the "
    "cores per process less one, at most 8)",
    "skip_bad_images": "skip unreadable or truncated images and count them in the epoch summary, instead of "
    "stopping with an error naming the file",
    "train_crop": "training crop: inception (random-resized crop of 8-100%% of the area, aspect 3/4-4/3), pad (CIFAR: "
    "4 pixels of padding and a random crop) or auto (pad for inputs of 64 pixels or less) (default: %(default)s)",
    "color_jitter": "colour jitter strength for brightness, contrast and saturation (default off)",
    "auto_augment": "timm auto-augment policy, e.g. rand-m9-mstd0.5 for RandAugment (default off)",
    "random_erasing": "probability of random erasing per image (default: %(default)s)",
    "mixup": "mixup alpha, timm's Mixup (default off)",
    "cutmix": "cutmix alpha, timm's Mixup (default off)",
    "grad_accum": "batches whose gradients are summed per optimizer step: the effective batch is "
    "--batch-size x this x processes (default: %(default)s)",
    "layer_decay": "layer-wise learning-rate decay for fine-tuning, e.g. 0.75: each layer group below the top gets "
    "that factor once more (timm's optimizer factory, the model's group_matcher; default off)",
    "freeze": "train only the classifier: the frozen backbone computes every image's features once (cached), "
    "then the classifier trains on them (a linear probe)",
    "unfreeze_after": "train only the classifier for the first N epochs, then the whole network (default off)",
    "log_every": "without a terminal, print one progress line every N steps (default: %(default)s)",
    "momentum": "SGD / RMSProp momentum (default: the recipe's)",
    "whiten_stem": "set the first convolution to whiten the training images' patches (their covariance's "
    "eigenvectors) and freeze it (default: the recipe's; on in cifar_fast)",
    "freeze_norm_scale": "keep every norm layer's scale at 1 (default: the recipe's; on in cifar_fast)",
    "norm_bias_lr_scale": "learning-rate factor for the norm layers' biases (default: the recipe's; 64 in cifar_fast)",
    "lookahead": "lookahead weight averaging every 5 steps, ending on the averaged weights (default: the recipe's)",
    "translate": "the CIFAR crop's padding in pixels, reflected at the border (default: the recipe's; none: 4 "
    "pixels of zeros at 32x32)",
    "alternate_flip": "flip each image in every other epoch instead of at random (in-memory data; default: the "
    "recipe's)",
    "translate_tta": "evaluation also averages views shifted by this many pixels (default: the recipe's; 1 in "
    "cifar_fast)",
    "muon_lr": "train the convolution filters with Muon at this rate (timm's, as airbench94_muon: each filter "
    "normalized before its step), every other parameter with the recipe's optimizer (default: the recipe's; off)",
    "aux_logits": "train with the auxiliary heads, their losses weighted by the recipe (default: on for the papers' "
    "recipes from scratch, off for the cifar recipe and for pretrained weights, which have no aux head weights)",
}


class KeyValuePairs(ParseKwargs):
    """timm's ``--model-kwargs`` parsing (``key=value``, values through ``ast.literal_eval``, else the text), with a
    usage error instead of a traceback for a pair without ``=``; ``train`` and ``ablate`` read their pairs with it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option_string: Any = None) -> None:
        bad = [value for value in values if value and "=" not in value]
        if bad:
            parser.error(f"{option_string} takes key=value pairs, got {bad[0]!r}")
        super().__call__(parser, namespace, values, option_string)


def whole_or_fractional(text: str) -> int | float:
    """An option's number as an ``int`` when it is whole (``3``), else a ``float`` (``9.9``)."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _value_type(annotation: Any) -> Any:
    """``int`` for ``int | None`` and so on: the type argparse converts an option's text to (``int | float``: a
    whole or fractional number)."""
    options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if options[:2] == [int, float]:
        return whole_or_fractional
    return options[0] if options else annotation


def build_parser(
    defaults: TrainConfig | None = None, prog: str | None = None, epilog: str | None = None
) -> argparse.ArgumentParser:
    """The argument parser; ``defaults`` (and ``epilog``) let a script (like the CIFAR-10 example) change the
    defaults (and add a closing note to the help)."""
    library_defaults = TrainConfig()
    defaults = defaults or library_defaults
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train or fine-tune an inceptionzoo model on an image-classification dataset: a folder of "
        "images, tar shards, a .tar.gz or torchvision's CIFAR-10. Run it under torchrun for distributed data-parallel "
        "training.",
        epilog=epilog,
    )
    for field in fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        help_text = _HELP[field.name].replace("%(default)s", str(default))
        if default != getattr(library_defaults, field.name) and "%(default)s" not in _HELP[field.name]:
            help_text += f" [default here: {default}]"  # a script's own default, which the text above cannot name
        kind = _value_type(field.type)
        if typing.get_origin(field.type) is dict:
            parser.add_argument(flag, nargs="*", action=KeyValuePairs, default=dict(default), help=help_text,
                                metavar="KEY=VALUE")  # fmt: skip
        elif kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=default, help=help_text, metavar=field.name.upper())
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A ``TrainConfig`` from parsed arguments."""
    return TrainConfig(**{field.name: getattr(args, field.name) for field in fields(TrainConfig)})


def resume_command(program: str, argv: Sequence[str], output: str, resume: bool = True) -> str:
    """The command line that goes on with an interrupted run: ``argv`` (the settings must match) with
    ``--output OUTPUT --resume OUTPUT`` in place of its own ``--output`` / ``--resume`` (only ``--output`` when
    ``resume`` is False: no epoch was saved, the run starts again)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--output", "--resume"):
            skip = True
        elif not arg.startswith(("--output=", "--resume=")):
            kept.append(arg)
    tail = ["--output", output, *(["--resume", output] if resume else [])]
    return " ".join([program, shlex.join([*kept, *tail])])


def _report_interrupt(stop: TrainingInterrupted, prog: str | None, argv: Sequence[str]) -> None:
    name = prog or "inceptionzoo train"
    program = f"python {sys.argv[0]}" if name.endswith(".py") else name
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return
    if stop.output is None:
        print(f"{name}: interrupted (Ctrl-C) before the run began", file=sys.stderr, flush=True)
    elif stop.checkpoint is None:
        print(f"{name}: interrupted (Ctrl-C) before the first epoch was saved: nothing to resume. Start again "
              f"with:\n  {resume_command(program, argv, str(stop.output), resume=False)}",
              file=sys.stderr, flush=True)  # fmt: skip
    else:
        print(f"{name}: interrupted (Ctrl-C); the last complete checkpoint is {stop.checkpoint}. Continue the run "
              f"with:\n  {resume_command(program, argv, str(stop.output))}", file=sys.stderr, flush=True)  # fmt: skip


def main(
    argv: Sequence[str] | None = None,
    defaults: TrainConfig | None = None,
    prog: str | None = None,
    epilog: str | None = None,
) -> int:
    """Parse ``argv``, train, and print the summary as JSON on the last line. Ctrl-C stops the run within a step,
    prints the command that resumes it and returns 130 (as a shell reports a SIGINT)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(defaults, prog=prog, epilog=epilog).parse_args(argv)
    try:
        summary = fit(config_from_args(args))
    except TrainingInterrupted as stop:
        _report_interrupt(stop, prog, argv)
        return 130
    except (ValueError, RuntimeError, FileNotFoundError, FileExistsError) as error:
        # the loop's own errors are written for people: show them plainly, without a traceback
        print(f"{prog or 'inceptionzoo train'}: error: {error}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 reports
        print(json.dumps({k: summary[k] for k in ("model", "train_seconds", "wall_seconds") if k in summary}))
    return 0
