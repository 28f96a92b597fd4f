"""The papers' training recipes as data, and the optimizer, schedule, loss and weight averaging they imply.

Every piece is built by a library factory (timm's ``create_optimizer_v2``, ``create_scheduler_v2`` and
``ModelEmaV3``; torch's ``CrossEntropyLoss(label_smoothing=...)``), so nothing here reimplements training maths.
"""

import math
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

__all__ = [
    "MODEL_RECIPES",
    "RECIPES",
    "Recipe",
    "create_ema",
    "create_loss",
    "create_optimizer",
    "create_scheduler",
    "finish_lookahead",
    "freeze_norm_scales",
    "pass_updates",
    "recipe_for",
    "set_lookahead_alpha",
    "training_length",
]


@dataclass(frozen=True)
class Recipe:
    """One training recipe. Learning rates are for ``batch_size``; scale them if you change it.

    Attributes:
        optimizer: a timm optimizer name (``rmsproptf`` is RMSProp with TensorFlow's epsilon inside the root).
        optimizer_kwargs: extra optimizer arguments (RMSProp's decay ``alpha``, SGD's ``nesterov``).
        schedule: a timm scheduler name; ``step`` decays by ``decay_rate`` every ``decay_epochs``.
        aux_logits: train with the auxiliary heads on (the papers' recipes) when the model has them and starts from
            scratch; their losses are weighted by ``aux_weight``.
        aux_weight: the weight of each auxiliary head's loss.
        clip_grad: gradient-norm clipping threshold, or None.
        ema_decay: decay of the running average of the parameters used for evaluation, or None.
        warmup_fraction: the warm-up as a share of the epochs (overrides ``warmup_epochs``; the ``triangle``
            schedule's peak), ``warmup_lr_scale`` and ``min_lr_scale`` the start and end rates as shares of ``lr``.
        norm_bias_lr_scale: learning-rate factor for the norm layers' biases (airbench: 64).
        freeze_norm_scale: keep the norm layers' scales at 1 (airbench, Page).
        lookahead: timm's Lookahead every 5 steps, its step size 1 - 0.95^5 (t/T)^3 over the run, the slow weights
            kept at the end (airbench's weight averaging).
        whiten_stem: set the first convolution to whiten the training images' patches and freeze it.
        translate: the CIFAR crop's padding in pixels, reflected (None: an eighth of the size, zeros).
        alternate_flip: flip each image in every other epoch instead of at random.
        translate_tta: evaluation also averages views shifted by this many pixels (with ``flip_tta``, mirrored too).
        muon_lr: when set, the convolution filters train with timm's Muon at this rate (normalized each step, 3
            Newton-Schulz steps, as airbench94_muon) and every other parameter with ``optimizer``.
        muon_momentum: Muon's Nesterov momentum.
    """

    name: str
    description: str
    optimizer: str
    lr: float
    batch_size: int
    epochs: int | float
    momentum: float = 0.9
    weight_decay: float = 4e-5
    eps: float | None = None
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    schedule: str = "step"
    decay_epochs: float = 2.0
    decay_rate: float = 0.94
    warmup_epochs: float = 0
    label_smoothing: float = 0.0
    aux_weight: float = 0.4
    clip_grad: float | None = None
    ema_decay: float | None = None
    aux_logits: bool = True
    warmup_fraction: float | None = None
    warmup_lr_scale: float = 0.01
    min_lr_scale: float = 0.0
    norm_bias_lr_scale: float = 1.0
    freeze_norm_scale: bool = False
    lookahead: bool = False
    whiten_stem: bool = False
    translate: int | None = None
    alternate_flip: bool = False
    translate_tta: int = 0
    muon_lr: float | None = None
    muon_momentum: float = 0.6


_INCEPTION_V3 = {
    "lr": 0.045,
    "batch_size": 32,  # per replica in the paper (50 replicas)
    "epochs": 100,
    "decay_epochs": 2.0,
    "decay_rate": 0.94,
    "aux_weight": 0.4,
    "clip_grad": 2.0,
    "ema_decay": 0.9999,
}

RECIPES: dict[str, Recipe] = {
    # Table 3, rows 1-4 and BN-Inception: momentum SGD
    "momentum_sgd": Recipe(
        name="momentum_sgd",
        description="Momentum SGD, the Table 3 rows before RMSProp (lr 0.045 decayed by 0.94 every 2 epochs).",
        optimizer="momentum",
        momentum=0.9,
        **_INCEPTION_V3,
    ),
    # Table 3, row 5: RMSProp with decay 0.9 and epsilon 1.0 (TensorFlow semantics)
    "rmsprop": Recipe(
        name="rmsprop",
        description="Section 8: RMSProp (decay 0.9, epsilon 1.0), lr 0.045 x 0.94 every 2 epochs, clipping 2.0.",
        optimizer="rmsproptf",
        eps=1.0,
        optimizer_kwargs={"alpha": 0.9},
        **_INCEPTION_V3,
    ),
    # Table 3, row 6 on: plus label smoothing 0.1 (Section 7)
    "rmsprop_label_smoothing": Recipe(
        name="rmsprop_label_smoothing",
        description="The Inception-v3 recipe: RMSProp as above plus label smoothing 0.1 and parameter averaging.",
        optimizer="rmsproptf",
        eps=1.0,
        optimizer_kwargs={"alpha": 0.9},
        label_smoothing=0.1,
        **_INCEPTION_V3,
    ),
    # GoogLeNet (2014): momentum 0.9, lr down 4% every 8 epochs, two aux losses at 0.3, Polyak averaging
    "googlenet": Recipe(
        name="googlenet",
        description="GoogLeNet 2014: momentum 0.9, lr decreased 4% every 8 epochs, aux losses weighted 0.3.",
        optimizer="momentum",
        lr=0.01,
        batch_size=32,
        epochs=250,
        weight_decay=2e-4,
        decay_epochs=8.0,
        decay_rate=0.96,
        aux_weight=0.3,
        ema_decay=0.9999,
    ),
    # a modern recipe for the CIFAR-size models
    "cifar": Recipe(
        name="cifar",
        description="CIFAR: Nesterov SGD lr 0.2 at batch 256, cosine with 1 warmup epoch, wd 5e-4, smoothing 0.1, EMA.",
        optimizer="sgd",
        optimizer_kwargs={"nesterov": True},
        lr=0.2,
        batch_size=256,
        epochs=15,
        weight_decay=5e-4,
        schedule="cosine",
        warmup_epochs=1,
        label_smoothing=0.1,
        aux_weight=0.3,
        ema_decay=0.999,
        aux_logits=False,
    ),
    # airbench94's recipe (Jordan 2024) in mean-loss terms: its lr 11.5 and decay 0.0153 "per 1024 examples" are
    # 1.5 and 0.0153 / 11.5 here; a triangle from 0.2 to 1 at 23% of the run and down to 0.07
    "cifar_fast": Recipe(
        name="cifar_fast",
        description="Fast CIFAR (airbench94's tricks): Nesterov lr 1.5 at batch 1024, momentum 0.85, triangle "
        "schedule, smoothing 0.2, whitened stem, frozen norm scales, norm biases at 64x, lookahead, translate 2, "
        "alternating flip, flip + translate TTA.",
        optimizer="sgd",
        optimizer_kwargs={"nesterov": True},
        momentum=0.85,
        lr=1.5,
        batch_size=1024,
        epochs=22,
        weight_decay=0.0153 / 11.5,
        schedule="triangle",
        warmup_fraction=0.23,
        warmup_lr_scale=0.2,
        min_lr_scale=0.07,
        label_smoothing=0.2,
        aux_logits=False,
        norm_bias_lr_scale=64.0,
        freeze_norm_scale=True,
        lookahead=True,
        whiten_stem=True,
        translate=2,
        alternate_flip=True,
        translate_tta=1,
    ),
}
# airbench94_muon's changes to it (Jordan 2024): the filters trained by Muon, the rest by the same SGD, and a linear
# decay from the peak to zero instead of the triangle and lookahead
RECIPES["cifar_fast_muon"] = replace(
    RECIPES["cifar_fast"],
    name="cifar_fast_muon",
    description="cifar_fast with the convolution filters trained by Muon (lr 0.24, Nesterov momentum 0.6, filters "
    "normalized each step, airbench94_muon) and the rest by its SGD; the rate decays linearly from the peak to zero, "
    "no lookahead.",
    muon_lr=0.24,
    warmup_fraction=0.0,
    min_lr_scale=0.0,
    lookahead=False,
)


# which recipe trained which network: Table 3's rows (momentum SGD before row 5, RMSProp from row 5, label smoothing
# from row 6), GoogLeNet's own 2014 recipe, and the CIFAR recipe for the CIFAR-size networks
MODEL_RECIPES: dict[str, str] = {
    "inception_v1": "googlenet",
    "inception_v1_bn": "momentum_sgd",
    "inception_v1_tv": "momentum_sgd",
    "bn_inception": "momentum_sgd",
    "bn_inception_caffe": "momentum_sgd",
    "inception_v2": "momentum_sgd",
    "inception_v2_rmsprop": "rmsprop",
    "inception_v2_ls": "rmsprop_label_smoothing",
    "inception_v2_f7x7": "rmsprop_label_smoothing",
    "inception_v3": "rmsprop_label_smoothing",
    "inception_v3_rf151": "rmsprop_label_smoothing",
    "inception_v3_rf79": "rmsprop_label_smoothing",
    "inception_v1_cifar": "cifar",
    "inception_v3_cifar": "cifar",
    "inception_fast_cifar": "cifar_fast",
}


def recipe_for(model: nn.Module | str, **overrides: Any) -> Recipe:
    """The recipe a model (or a model name, ``arch`` or ``arch.tag``) was trained with, from ``MODEL_RECIPES``,
    with overrides. A model not in the table (one you registered) gets the CIFAR recipe if its input is 64 pixels or
    smaller, else the Inception-v3 recipe."""
    if isinstance(model, str):
        arch, cfg = model.split(".")[0], {}
    else:
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        arch = cfg.get("architecture", "")
    name = MODEL_RECIPES.get(arch)
    if name is None:
        small = tuple(cfg.get("input_size", (3, 224, 224)))[-1] <= 64
        name = "cifar" if small else "rmsprop_label_smoothing"
    return replace(RECIPES[name], **overrides) if overrides else RECIPES[name]


def create_optimizer(model: nn.Module, recipe: Recipe, layer_decay: float | None = None) -> torch.optim.Optimizer:
    """The recipe's optimizer, from timm's factory (no weight decay on norms and biases).

    ``layer_decay`` scales each layer group's learning rate by ``layer_decay ** (depth from the top)``, the groups
    coming from the model's ``group_matcher`` (timm's layer-wise decay for fine-tuning).
    """
    from timm.optim import Lookahead, create_optimizer_v2, param_groups_weight_decay

    from .optimizers import SplitOptimizer, filter_parameters

    kwargs = dict(recipe.optimizer_kwargs)
    if recipe.eps is not None:
        kwargs["eps"] = recipe.eps
    parameters: Any = model
    filters = filter_parameters(model) if recipe.muon_lr is not None else []
    if recipe.norm_bias_lr_scale != 1.0 or filters:
        if layer_decay is not None:
            raise ValueError("a norm-bias learning-rate factor or Muon and layer-wise decay cannot be combined")
        # timm's split (no decay on norms and biases), without the filters Muon takes, and with the norm layers'
        # biases in a group of their own whose rate timm's schedulers multiply by its lr_scale
        norm_biases = set()
        if recipe.norm_bias_lr_scale != 1.0:
            norm_biases = {id(m.bias) for m in model.modules() if isinstance(m, _NORM_TYPES) and m.bias is not None}
        taken = {id(p) for p in filters}
        parameters = []
        for group in param_groups_weight_decay(model, recipe.weight_decay):
            kept = [p for p in group["params"] if id(p) not in taken]
            scaled = [p for p in kept if id(p) in norm_biases]
            rest = [p for p in kept if id(p) not in norm_biases]
            if scaled:
                parameters.append({**group, "params": scaled, "lr_scale": recipe.norm_bias_lr_scale})
            if rest:
                parameters.append({**group, "params": rest})
    optimizer = create_optimizer_v2(
        parameters,
        opt=recipe.optimizer,
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        momentum=recipe.momentum,
        layer_decay=layer_decay,
        **kwargs,
    )
    if filters:
        try:
            from timm.optim import Muon
        except ImportError as error:  # timm added Muon in 1.0.21; the rest of this module needs 1.0.12
            import timm

            raise ImportError(
                f"the {recipe.name} recipe trains its filters with timm's Muon, which timm {timm.__version__} lacks: "
                "pip install 'timm>=1.0.21'"
            ) from error
        muon = Muon(
            filters, lr=recipe.muon_lr, momentum=recipe.muon_momentum, nesterov=True, weight_decay=0.0,
            ns_steps=3, ns_coefficients="original", adjust_lr_fn=None,
        )  # fmt: skip
        optimizer = SplitOptimizer(optimizer, muon)
    return Lookahead(optimizer, alpha=1.0, k=LOOKAHEAD_STEPS) if recipe.lookahead else optimizer


LOOKAHEAD_STEPS = 5
_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def set_lookahead_alpha(optimizer: torch.optim.Optimizer, num_updates: int, total_updates: int) -> None:
    """airbench's lookahead schedule: the slow weights move ``1 - 0.95^5 (t/T)^3`` of the way to the fast ones every
    5 steps (all the way early on, a quarter at the end); ``num_updates == total_updates`` keeps the slow weights."""
    progress = min(num_updates / max(total_updates, 1), 1.0)
    alpha = 0.0 if num_updates >= total_updates else 1.0 - 0.95**LOOKAHEAD_STEPS * progress**3
    for group in optimizer.param_groups:
        group["lookahead_alpha"] = alpha


def finish_lookahead(optimizer: torch.optim.Optimizer) -> None:
    """Leave the model with the slow (averaged) weights at the end of a lookahead run."""
    if hasattr(optimizer, "sync_lookahead"):
        for group in optimizer.param_groups:
            group["lookahead_alpha"] = 0.0
        optimizer.sync_lookahead()


def freeze_norm_scales(model: nn.Module) -> int:
    """Freeze the scale (``weight``) of every norm layer at its current value (1 from initialisation), as airbench
    and Page's fast trainers do; returns how many were frozen."""
    frozen = 0
    for module in model.modules():
        if isinstance(module, _NORM_TYPES) and getattr(module, "weight", None) is not None:
            module.weight.requires_grad_(False)
            frozen += 1
    return frozen


def training_length(epochs: int | float, updates_per_epoch: int) -> tuple[int, int]:
    """The passes over the data and the optimizer updates that ``epochs`` come to. A fractional count (airbench's
    9.9) ends with a partial pass: its updates are rounded to whole steps, at least one."""
    if not epochs > 0:
        raise ValueError(f"--epochs must be a positive number of epochs (9.9 trains nine and a part), got {epochs}")
    total_updates = max(1, round(epochs * updates_per_epoch))
    return math.ceil(total_updates / updates_per_epoch), total_updates


def pass_updates(epoch: int, updates_per_epoch: int, total_updates: int) -> int:
    """The optimizer updates of pass ``epoch`` (from 0): a whole epoch's, or in a fractional count's last pass the
    ones left to ``total_updates``."""
    return min(updates_per_epoch, total_updates - epoch * updates_per_epoch)


def create_scheduler(
    optimizer: torch.optim.Optimizer, recipe: Recipe, epochs: int | float | None = None, updates_per_epoch: int = 0
) -> Any:
    """The recipe's learning-rate schedule, from timm's factory.

    Without ``updates_per_epoch`` call ``scheduler.step(epoch)`` once per epoch; with it the rate moves every step
    (``scheduler.step_update(num_updates)``), which matters when a run is only a few epochs long, and a fractional
    ``decay_epochs`` decays at the first step at or after each multiple of it.
    """
    from timm.scheduler import create_scheduler_v2

    epochs = epochs or recipe.epochs
    warmup = recipe.warmup_epochs if recipe.warmup_fraction is None else recipe.warmup_fraction * epochs
    schedule, decay_rate, num_epochs, prefix = recipe.schedule, recipe.decay_rate, epochs, False
    if schedule == "triangle":  # timm's polynomial decay of power 1 after a linear warm-up: a triangle
        schedule, decay_rate, num_epochs, prefix = "poly", 1.0, epochs - warmup, True
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched=schedule,
        num_epochs=num_epochs,
        decay_epochs=recipe.decay_epochs,
        decay_rate=decay_rate,
        warmup_epochs=warmup,
        warmup_lr=recipe.lr * recipe.warmup_lr_scale,
        warmup_prefix=prefix,
        min_lr=recipe.lr * recipe.min_lr_scale,
        step_on_epochs=updates_per_epoch == 0,
        updates_per_epoch=updates_per_epoch,
    )
    if schedule == "step" and updates_per_epoch:
        # timm's interval in steps is decay_epochs x updates_per_epoch in floating point, which can land just above a
        # whole number (1.1 x 50 = 55.00000000000001) and decay a step late; a whole number of steps is kept whole
        steps = recipe.decay_epochs * updates_per_epoch
        if math.isclose(steps, round(steps)):
            scheduler.decay_t = round(steps)
    return scheduler


def create_loss(recipe: Recipe) -> nn.Module:
    """Cross-entropy with the recipe's label smoothing (torch's own option)."""
    return nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)


def create_ema(model: nn.Module, recipe: Recipe) -> nn.Module | None:
    """timm's ``ModelEmaV3`` running average of the weights (the papers' parameter averaging), or None.

    Pass the step count to ``ema.update(model, step=...)`` for the warm-up to apply.
    """
    if recipe.ema_decay is None:
        return None
    from timm.utils import ModelEmaV3

    # with warm-up the averaging horizon grows with the step count (decay 0.99 at 1k steps, capped at ema_decay),
    # so short runs are not dominated by their random initial weights
    return ModelEmaV3(model, decay=recipe.ema_decay, use_warmup=True)
