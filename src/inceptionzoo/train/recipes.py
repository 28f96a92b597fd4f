"""The papers' training recipes as data, and the optimizer, schedule, loss and weight averaging they imply.

Every piece is built by a library factory (timm's ``create_optimizer_v2``, ``create_scheduler_v2`` and
``ModelEmaV3``; torch's ``CrossEntropyLoss(label_smoothing=...)``), so nothing here reimplements training maths.
"""

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
    "recipe_for",
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
    """

    name: str
    description: str
    optimizer: str
    lr: float
    batch_size: int
    epochs: int
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
}


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
    from timm.optim import create_optimizer_v2

    kwargs = dict(recipe.optimizer_kwargs)
    if recipe.eps is not None:
        kwargs["eps"] = recipe.eps
    return create_optimizer_v2(
        model,
        opt=recipe.optimizer,
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        momentum=recipe.momentum,
        layer_decay=layer_decay,
        **kwargs,
    )


def create_scheduler(
    optimizer: torch.optim.Optimizer, recipe: Recipe, epochs: int | None = None, updates_per_epoch: int = 0
) -> Any:
    """The recipe's learning-rate schedule, from timm's factory.

    Without ``updates_per_epoch`` call ``scheduler.step(epoch)`` once per epoch; with it the rate moves every step
    (``scheduler.step_update(num_updates)``), which matters when a run is only a few epochs long.
    """
    from timm.scheduler import create_scheduler_v2

    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched=recipe.schedule,
        num_epochs=epochs or recipe.epochs,
        decay_epochs=recipe.decay_epochs,
        decay_rate=recipe.decay_rate,
        warmup_epochs=recipe.warmup_epochs,
        warmup_lr=recipe.lr * 0.01,
        step_on_epochs=updates_per_epoch == 0,
        updates_per_epoch=updates_per_epoch,
    )
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
