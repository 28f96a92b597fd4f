"""Training utilities (the ``train`` extra). Imported only when asked for: ``import inceptionzoo`` never loads them.

So far: the papers' training recipes as data, built into optimizers, schedulers, EMA and losses with timm's and
torch's own factories (:mod:`inceptionzoo.train.recipes`), and CIFAR-style data as in-memory tensors with batch
augmentation (:mod:`inceptionzoo.train.data`), and one training epoch / one evaluation pass
(:mod:`inceptionzoo.train.engine`).
"""

from .recipes import RECIPES, Recipe, create_ema, create_loss, create_optimizer, create_scheduler, recipe_for

__all__ = ["RECIPES", "Recipe", "create_ema", "create_loss", "create_optimizer", "create_scheduler", "recipe_for"]
