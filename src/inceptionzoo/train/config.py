"""``TrainConfig``, a run's settings, and the rules that turn them into a recipe or refuse a resume."""

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from torch import nn

from .recipes import RECIPES, recipe_for
from .resume import find_checkpoint, run_folder_of

__all__ = [
    "RECIPE_OVERRIDES",
    "RESUME_MUST_MATCH",
    "TrainConfig",
    "check_resume_matches",
    "refuse_finished_run",
    "resolve_recipe",
    "saved_setting",
]


@dataclass
class TrainConfig:
    """Everything a run needs; ``None`` means "the recipe's value" (see ``inceptionzoo.train.recipes``)."""

    model: str = "inception_v1_cifar"
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # builder arguments for every create_model call
    data: str = ""
    output: str = ""
    pretrained: bool = False
    pretrained_file: str | None = None
    download: bool = False
    cache_dir: str | None = None
    recipe: str | None = None
    epochs: int | float | None = None  # a fractional count ends with a partial pass (airbench's 9.9)
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    label_smoothing: float | None = None
    warmup_epochs: float | None = None
    decay_epochs: float | None = None
    ema_decay: float | None = None
    ema: bool = True
    clip_grad: float | None = None
    val_size: int | None = None  # None: val/ when the folder has one, else about 10% carved out of train/
    eval_test: bool = False
    subset: int | None = None
    image_size: int | None = None
    amp: str = "auto"
    channels_last: bool = True
    compile: bool = False
    sync_bn: bool = False
    flip_tta: bool = True
    seed: int = 0
    threads: int | None = None
    device: str = "auto"
    resume: str | None = None
    keep_checkpoints: int = 2
    progress: bool = True
    data_mode: str = "auto"
    memory_budget_gb: float = 4.0
    workers: int | None = None
    skip_bad_images: bool = False
    train_crop: str = "auto"
    color_jitter: float | None = None
    auto_augment: str | None = None
    random_erasing: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    grad_accum: int = 1
    layer_decay: float | None = None
    freeze: bool = False
    unfreeze_after: int | None = None
    log_every: int = 50
    aux_logits: bool | None = None
    momentum: float | None = None
    whiten_stem: bool | None = None
    freeze_norm_scale: bool | None = None
    norm_bias_lr_scale: float | None = None
    lookahead: bool | None = None
    translate: int | None = None
    alternate_flip: bool | None = None
    translate_tta: int | None = None
    muon_lr: float | None = None


# settings that must match when a run is resumed (others, such as --progress or --threads, may change)
RESUME_MUST_MATCH = (
    "model", "pretrained", "pretrained_file", "recipe", "epochs", "batch_size", "lr", "val_size", "subset", "seed",
    "grad_accum", "image_size", "freeze", "unfreeze_after", "layer_decay", "mixup", "cutmix", "aux_logits",
    "whiten_stem", "lookahead", "model_kwargs", "decay_epochs", "muon_lr",
)  # fmt: skip

# settings that override the recipe's value of the same name when given
RECIPE_OVERRIDES = (
    "epochs", "batch_size", "weight_decay", "label_smoothing", "warmup_epochs", "decay_epochs", "clip_grad", "momentum",
    "whiten_stem", "freeze_norm_scale", "norm_bias_lr_scale", "lookahead", "translate", "alternate_flip",
    "translate_tta", "muon_lr",
)  # fmt: skip


STEP_RECIPES = tuple(name for name, recipe in RECIPES.items() if recipe.schedule == "step")


def resolve_recipe(config: TrainConfig, model: nn.Module, world_size: int) -> Any:
    """The recipe this run trains with: ``--recipe`` (else the model's own) with the settings given on top, the
    learning rate scaled linearly with the global batch unless ``--lr`` is given."""
    overrides = {name: getattr(config, name) for name in RECIPE_OVERRIDES if getattr(config, name) is not None}
    if config.warmup_epochs is not None:
        overrides["warmup_fraction"] = None  # an explicit warm-up in epochs replaces the recipe's share
    if config.ema_decay is not None:
        overrides["ema_decay"] = config.ema_decay
    if not config.ema:
        overrides["ema_decay"] = None
    if config.recipe is not None:
        if config.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {config.recipe!r}; choose one of {', '.join(RECIPES)}")
        base = RECIPES[config.recipe]
    else:
        base = recipe_for(model)
    recipe = replace(base, **overrides)
    if config.decay_epochs is not None:
        if not config.decay_epochs > 0:
            raise ValueError(f"--decay-epochs must be a positive number of epochs, got {config.decay_epochs}")
        if recipe.schedule != "step":
            raise ValueError(
                f"--decay-epochs sets the step schedule's decay interval, but the {recipe.name} recipe's schedule is "
                f"{recipe.schedule}; choose a step recipe with --recipe ({', '.join(STEP_RECIPES)}) or leave it out"
            )
    # learning rates scale linearly with the global batch (Goyal et al., 2017) unless --lr is given
    lr = config.lr if config.lr is not None else base.lr * recipe.batch_size * world_size / base.batch_size
    return replace(recipe, lr=lr)


def refuse_finished_run(resume: str) -> None:
    """A ``--resume`` of a run that trained all its epochs and wrote its summary is an error saying so."""
    run_folder = run_folder_of(resume)
    try:
        summary = json.loads((run_folder / "summary.json").read_text())
        done, epochs = summary["final"]["epoch"], summary["epochs"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no (readable) summary: the run did not finish
    if done >= epochs:
        raise ValueError(
            f"{run_folder} is a finished run: all {epochs} epochs trained, its model saved in "
            f"{run_folder / 'model'}; there is nothing to resume. To train on, start a new run (with more --epochs, "
            "or fine-tuning that model)"
        )


def saved_setting(resume: str, name: str) -> Any:
    """The value of setting ``name`` in the config.json of the run that ``resume`` names (None when unreadable)."""
    try:
        saved = json.loads((run_folder_of(resume) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return saved.get(name) if isinstance(saved, dict) else None


def check_resume_matches(saved: dict[str, Any], resolved: dict[str, Any], resume: str) -> None:
    """Raise a ValueError naming every ``RESUME_MUST_MATCH`` setting in which the checkpoint's saved config
    (``saved``) and this run's (``resolved``) differ. A setting that a checkpoint predates has its default."""
    defaults = asdict(TrainConfig())
    saved = {k: saved.get(k, defaults.get(k)) for k in RESUME_MUST_MATCH}
    differs = [k for k in RESUME_MUST_MATCH if saved[k] != resolved.get(k)]
    if differs:
        details = ", ".join(f"{k}: checkpoint {saved[k]!r}, now {resolved.get(k)!r}" for k in differs)
        raise ValueError(f"cannot resume {find_checkpoint(resume)} with different settings ({details})")
