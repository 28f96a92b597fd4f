"""Training utilities (the ``train`` extra). Imported only when asked for: ``import inceptionzoo`` never loads them.

- ``recipes``: the papers' recipes as data, built with timm's and torch's factories.
- ``data``: the data sources: folders and tar shards streamed through DataLoader workers,
  CIFAR-style splits as in-memory tensors with augmentation on whole batches.
- ``engine``: one training epoch and one evaluation pass.
- ``resume``: atomic training checkpoints and exact resume.
- ``reporting``: metrics as CSV / JSON lines, a PNG plot and the progress display.
- ``config``: ``TrainConfig``, recipe resolution and the rules for resuming a run.
- ``distributed``: the processes of a run (torchrun), each epoch's seed, DDP and what the ranks share.
- ``loop``: ``fit(TrainConfig(...))``, a run as named steps, and ``command``, its command line
  (``inceptionzoo train``).
- ``probe``: ``--freeze``, the classifier trained on cached backbone features.
- ``validate``: ``inceptionzoo validate``, accuracy and speed of any model on any data.
"""

from .config import TrainConfig
from .loop import fit
from .recipes import RECIPES, Recipe, create_ema, create_loss, create_optimizer, create_scheduler, recipe_for

__all__ = [
    "RECIPES",
    "Recipe",
    "TrainConfig",
    "create_ema",
    "create_loss",
    "create_optimizer",
    "create_scheduler",
    "fit",
    "recipe_for",
]
