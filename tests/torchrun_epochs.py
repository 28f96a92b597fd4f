"""Run by the tests under torchrun: the images each rank is given in two training epochs and one test pass, read
back from the loaders the training loop builds (images whose grey level is their number; centre pixel decoded).

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/torchrun_epochs.py OUT MODE:DATA ...

writes ``OUT/seen.json``: for each ``MODE:DATA``, each rank's ``{"train0": [...], "train1": [...], "test": [...]}``.
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from inceptionzoo.train.distributed import Distributed
from inceptionzoo.train.loop import Run, TrainConfig


def numbers(images: torch.Tensor, mean: float, std: float) -> list[int]:
    centre = images[:, 0, images.shape[-2] // 2, images.shape[-1] // 2].float()
    return ((centre * std + mean) * 255).round().long().tolist()


def main(output: Path, sources: list[str]) -> None:
    env = Distributed("cpu")
    results = {}
    for number, source in enumerate(sources):
        mode, data = source.split(":", 1)
        config = TrainConfig(data=data, data_mode=mode, output=str(output / f"run{number}"), batch_size=4,
                             val_size=0, eval_test=True, workers=2, progress=False,
                             cache_dir=str(output / "cache"))  # fmt: skip
        run = Run(config, env, 0.0)
        mean, std = run.model.pretrained_cfg["mean"][0], run.model.pretrained_cfg["std"][0]
        seen = {f"train{epoch}": [n for x, _ in run.splits.train.epoch(epoch) for n in numbers(x, mean, std)]
                for epoch in (0, 1)}  # fmt: skip
        seen["test"] = [n for x, _ in run.splits.test.epoch(0) for n in numbers(x, mean, std)]
        gathered: list = [None] * env.world_size
        dist.all_gather_object(gathered, seen)
        results[source] = gathered
    if env.is_main:
        (output / "seen.json").write_text(json.dumps(results))
    env.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
