"""The training loop, for one process or many: ``fit(TrainConfig(...))``.

Started by ``torchrun`` it runs DistributedDataParallel (gloo on CPU, nccl on CUDA) with each rank training on its
share of every epoch (torch's ``DistributedSampler``), metrics all-reduced, optional SyncBatchNorm, and only rank 0
writing files. Each epoch's randomness (shuffling, crops, flips, dropout) is derived from ``(seed, epoch, rank)``,
so a run resumed from a checkpoint draws the same numbers as one that was never interrupted.
"""

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .checkpoint import find_checkpoint, load_training_state, save_training_state
from .data import ImageTensors, batches, load_dataset, split_validation, subset
from .engine import EpochStats, evaluate, train_one_epoch, unwrap_model
from .recipes import RECIPES, create_ema, create_loss, create_optimizer, create_scheduler, recipe_for
from .reporting import MetricsLog, plot_metrics

__all__ = ["TrainConfig", "fit"]


@dataclass
class TrainConfig:
    """Everything a run needs; ``None`` means "the recipe's value" (see :mod:`inceptionzoo.train.recipes`)."""

    model: str = "inception_v1_cifar"
    data: str = ""
    output: str = ""
    pretrained: bool = False
    download: bool = False
    cache_dir: str | None = None
    recipe: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    label_smoothing: float | None = None
    warmup_epochs: float | None = None
    ema_decay: float | None = None
    ema: bool = True
    clip_grad: float | None = None
    val_size: int = 5000
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


# settings that must match when a run is resumed (others, such as --progress or --threads, may change)
_RESUME_MUST_MATCH = ("model", "pretrained", "recipe", "epochs", "batch_size", "lr", "val_size", "subset", "seed")


def _default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "inceptionzoo" / "datasets"


class _Distributed:
    """Rank, world size and device of this process; sets up the process group when launched by torchrun."""

    def __init__(self, device: str) -> None:
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        if use_cuda and not torch.cuda.is_available():
            raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
        self.device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
        if use_cuda:
            torch.cuda.set_device(self.device)
        self.owns_group = False
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
            self.owns_group = True

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group:
            dist.destroy_process_group()


def _autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "none":
        return None
    if amp == "fp16":
        if device.type != "cuda":
            raise ValueError("--amp fp16 needs a CUDA device (it relies on a gradient scaler); use bf16 on CPU")
        return torch.float16
    if amp == "bf16":
        return torch.bfloat16
    if amp != "auto":
        raise ValueError(f"--amp must be auto, bf16, fp16 or none, got {amp!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None


def _seed(config: TrainConfig, epoch: int, rank: int) -> int:
    return config.seed * 1_000_003 + epoch * 1_009 + rank


def _resolve_recipe(config: TrainConfig, model: nn.Module, world_size: int) -> Any:
    overrides = {
        name: getattr(config, name)
        for name in ("epochs", "batch_size", "weight_decay", "label_smoothing", "warmup_epochs", "clip_grad")
        if getattr(config, name) is not None
    }
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
    # learning rates scale linearly with the global batch (Goyal et al., 2017) unless --lr is given
    lr = config.lr if config.lr is not None else base.lr * recipe.batch_size * world_size / base.batch_size
    return replace(recipe, lr=lr)


def _load_data(config: TrainConfig, env: _Distributed) -> tuple[ImageTensors, ImageTensors | None, ImageTensors | None]:
    if not config.data:
        raise ValueError("no data: pass --data PATH (an ImageFolder folder or .tar.gz) or --data torchvision:ROOT")
    cache = config.cache_dir or _default_cache_dir()
    # rank 0 decodes and caches first; the other ranks then read its cache
    for turn in (True, False):
        if env.is_main == turn:
            train = load_dataset(config.data, "train", cache_dir=cache, download=config.download)
            test = None
            if config.eval_test:
                test = load_dataset(config.data, "test", cache_dir=cache, download=config.download)
        env.barrier()
    if config.subset:
        train = subset(train, config.subset, seed=config.seed)
        test = subset(test, config.subset, seed=config.seed) if test is not None else None
    val = None
    if config.val_size:
        if config.val_size >= len(train):
            raise ValueError(f"--val-size {config.val_size} leaves no training images (only {len(train)} in train/)")
        train, val = split_validation(train, config.val_size, seed=config.seed)
    return train, val, test


def _new_run_folder(model: str, env: _Distributed) -> str:
    """``runs/<model>-<date>-<time>``, as timm names runs; rank 0's choice is shared with the other ranks."""
    name = [f"runs/{model.replace('/', '_').replace(':', '_')}-{time.strftime('%Y%m%d-%H%M%S')}"]
    if env.world_size > 1:
        dist.broadcast_object_list(name, src=0)
    return name[0]


def _progress_bar(total: int, description: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, disable=not enabled, leave=False, dynamic_ncols=True, file=sys.stderr)


def _replicas_identical(model: nn.Module) -> bool:
    """True when every rank holds exactly rank 0's weights and buffers."""
    same = torch.ones(1)
    for tensor in model.state_dict().values():
        reference = tensor.detach().clone()
        dist.broadcast(reference, src=0)
        if not torch.equal(reference, tensor):
            same.zero_()
    same = same.to(next(model.parameters()).device)
    dist.all_reduce(same, op=dist.ReduceOp.MIN)
    return bool(same.item())


def fit(config: TrainConfig) -> dict[str, Any]:
    """Train ``config.model`` on ``config.data``; returns the summary also written to ``<output>/summary.json``."""
    from .. import create_model

    started = time.perf_counter()
    env = _Distributed(config.device)
    try:
        return _fit(config, env, create_model, started)
    finally:
        env.close()


def _fit(config: TrainConfig, env: _Distributed, create_model: Any, started: float) -> dict[str, Any]:
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.sync_bn and env.world_size > 1 and env.device.type != "cuda":
        raise ValueError(
            "--sync-bn needs CUDA devices: torch's SyncBatchNorm does not run on CPU. Without it each CPU process "
            "normalises with its own batches' statistics, and the running statistics are averaged after every epoch"
        )
    output = Path(config.output or _new_run_folder(config.model, env))
    config = replace(config, output=str(output))
    checkpoints = output / "checkpoints"
    if config.resume is None and (checkpoints / "latest").exists():
        raise FileExistsError(
            f"{output} already holds a run; pass --resume {output} to continue it, or choose another --output"
        )
    train, val, test = _load_data(config, env)
    torch.manual_seed(config.seed)
    model = create_model(config.model, pretrained=config.pretrained, num_classes=len(train.classes))
    recipe = _resolve_recipe(config, model, env.world_size)
    data_cfg = model.pretrained_cfg
    size = config.image_size or data_cfg["input_size"][-1]
    mean, std = tuple(data_cfg["mean"]), tuple(data_cfg["std"])
    autocast_dtype = _autocast_dtype(config.amp, env.device)
    if config.sync_bn and env.world_size > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(env.device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = create_optimizer(model, recipe)
    ema = create_ema(model, recipe)
    grad_scaler = torch.amp.GradScaler("cuda") if autocast_dtype == torch.float16 else None
    sampler = torch.utils.data.DistributedSampler(
        range(len(train)), num_replicas=env.world_size, rank=env.rank, shuffle=True, seed=config.seed, drop_last=True
    )
    updates_per_epoch = len(sampler) // recipe.batch_size
    if updates_per_epoch == 0:
        raise ValueError(
            f"batch size {recipe.batch_size} is larger than this process's {len(sampler)} training images; "
            "lower --batch-size or raise --subset"
        )
    scheduler = create_scheduler(optimizer, recipe, epochs=recipe.epochs, updates_per_epoch=updates_per_epoch)
    resolved = {**asdict(config), "recipe": recipe.name, "resolved_recipe": asdict(recipe)}

    start_epoch, train_seconds = 0, 0.0
    if config.resume is not None:
        state = load_training_state(config.resume, model, ema.module if ema is not None else None)
        saved = state["config"]
        differs = [k for k in _RESUME_MUST_MATCH if saved.get(k) != resolved.get(k)]
        if differs:
            details = ", ".join(f"{k}: checkpoint {saved.get(k)!r}, now {resolved.get(k)!r}" for k in differs)
            raise ValueError(f"cannot resume {find_checkpoint(config.resume)} with different settings ({details})")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if grad_scaler is not None and "grad_scaler" in state:
            grad_scaler.load_state_dict(state["grad_scaler"])
        start_epoch, train_seconds = state["epoch"] + 1, state["train_seconds"]
    scheduler.step_update(num_updates=start_epoch * updates_per_epoch)

    net = model
    if env.world_size > 1:
        device_ids = [env.device.index] if env.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if config.compile:  # the training step only; evaluation runs the plain modules (no second compilation)
        net = torch.compile(net)
    loss_fn = create_loss(recipe)
    eval_loss = nn.CrossEntropyLoss()
    metrics = None
    if env.is_main:
        output.mkdir(parents=True, exist_ok=True)
        (output / "config.json").write_text(json.dumps(resolved, indent=2) + "\n")
        metrics = MetricsLog(output, start_epoch=start_epoch)
        line = (
            f"{config.model}: {len(train):,} training images at {size}x{size}, {len(val) if val else 0:,} validation; "
            f"{env.world_size} process(es) on {env.device}, {torch.get_num_threads()} threads, "
            f"autocast {autocast_dtype}, recipe {recipe.name} (lr {recipe.lr:g}, batch {recipe.batch_size}), "
            f"epochs {start_epoch + 1}-{recipe.epochs}"
        )
        print(line, flush=True)

    def shard(count: int) -> torch.Tensor:  # evaluation: every image exactly once across the ranks
        return torch.arange(env.rank, count, env.world_size)

    def evaluation(split: ImageTensors, flip_tta: bool) -> EpochStats:
        eval_model = ema.module if ema is not None else model
        loader = batches(split, 2 * recipe.batch_size, mean, std, channels_last=config.channels_last,
                         indices=shard(len(split)), size=size)  # fmt: skip
        return evaluate(eval_model, loader, eval_loss, flip_tta, autocast_dtype, env.device)

    row: dict[str, Any] = {}
    for epoch in range(start_epoch, recipe.epochs):
        epoch_start = time.perf_counter()
        torch.manual_seed(_seed(config, epoch, env.rank))  # dropout and any other draws of this epoch
        generator = torch.Generator().manual_seed(_seed(config, epoch, env.rank))  # crops and flips
        sampler.set_epoch(epoch)
        loader = batches(
            train, recipe.batch_size, mean, std, train=True, generator=generator, channels_last=config.channels_last,
            drop_last=True, indices=torch.tensor(list(sampler)), size=size,
        )  # fmt: skip
        bar = _progress_bar(updates_per_epoch, f"epoch {epoch + 1}/{recipe.epochs}", env.is_main and config.progress)

        def on_step(step: int, totals: torch.Tensor, bar: Any = bar, began: float = epoch_start) -> None:
            bar.update(1)
            if bar.disable or (step % 10 and step + 1 < updates_per_epoch):
                return
            loss, top1, _, seen = totals.tolist()  # a host sync, but only every 10 steps
            rate = seen * env.world_size / (time.perf_counter() - began)
            bar.set_postfix(loss=f"{loss / seen:.3f}", top1=f"{100 * top1 / seen:.1f}%", img_s=f"{rate:.0f}")

        stats = train_one_epoch(
            net, loader, optimizer, loss_fn, recipe, ema=ema, autocast_dtype=autocast_dtype, device=env.device,
            scheduler=scheduler, num_updates=epoch * updates_per_epoch, grad_scaler=grad_scaler, on_step=on_step,
        )  # fmt: skip
        bar.close()
        if env.world_size > 1:  # each rank's BatchNorm saw only its own batches: average the running statistics
            from timm.utils import distribute_bn

            for module in (model, ema.module if ema is not None else None):
                if module is not None:
                    distribute_bn(module, env.world_size, reduce=True)
        train_time = time.perf_counter() - epoch_start
        row = {
            "epoch": epoch,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": stats.loss,
            "train_top1": stats.top1,
            "train_top5": stats.top5,
            "train_images_per_s": stats.images / train_time,
        }
        if val is not None:
            val_stats = evaluation(val, config.flip_tta)
            row.update(val_loss=val_stats.loss, val_top1=val_stats.top1, val_top5=val_stats.top5)
        train_seconds += time.perf_counter() - epoch_start
        row.update(epoch_s=time.perf_counter() - epoch_start, elapsed_s=train_seconds)
        if env.is_main:
            metrics.append(row)
            plot_metrics(metrics.rows, output / "metrics.png", title=config.model)
            state = {
                "epoch": epoch,
                "train_seconds": train_seconds,
                "config": resolved,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
            }
            if grad_scaler is not None:
                state["grad_scaler"] = grad_scaler.state_dict()
            save_training_state(
                checkpoints, epoch, model, state, ema=ema.module if ema is not None else None,
                keep=config.keep_checkpoints,
            )  # fmt: skip
            shown = f"  val top-1 {row['val_top1']:.2f}%" if val is not None else ""
            print(
                f"epoch {epoch + 1}/{recipe.epochs}: train loss {stats.loss:.4f} top-1 {stats.top1:.2f}%{shown}  "
                f"{row['epoch_s']:.0f} s ({row['train_images_per_s']:.0f} img/s), {train_seconds / 60:.1f} min in all",
                flush=True,
            )
        env.barrier()

    summary: dict[str, Any] = {
        "model": config.model,
        "epochs": recipe.epochs,
        "train_images": len(train),
        "image_size": size,
        "train_seconds": train_seconds,
        "final": row,
        "world_size": env.world_size,
        "device": str(env.device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if test is not None:
        test_stats = evaluation(test, config.flip_tta)
        summary["test"] = {"images": test_stats.images, "loss": test_stats.loss, "top1": test_stats.top1,
                           "top5": test_stats.top5, "flip_tta": config.flip_tta}  # fmt: skip
    if env.world_size > 1:
        summary["replicas_identical"] = _replicas_identical(model)
    summary["wall_seconds"] = time.perf_counter() - started
    if env.is_main:
        from .._hub import save_pretrained

        save_pretrained(unwrap_model(ema.module if ema is not None else model), output / "model")
        (output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if test is not None:
            print(f"test: top-1 {summary['test']['top1']:.2f}%  top-5 {summary['test']['top5']:.2f}%", flush=True)
        print(f"done in {summary['wall_seconds'] / 60:.1f} min; weights in {output / 'model'}", flush=True)
    return summary


def config_fields() -> list[str]:
    """The names of :class:`TrainConfig`'s settings (the CLI's options)."""
    return [f.name for f in fields(TrainConfig)]
