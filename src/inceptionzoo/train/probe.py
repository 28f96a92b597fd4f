"""``--freeze``: train only the classifier, on the frozen backbone's pooled features.

A linear probe needs no backward pass through the backbone: its features are computed once (evaluation mode, no
augmentation) and cached on disk, keyed by the weights, the preprocessing and the data; the classifier then trains
with the recipe's optimizer, schedule and averaging. The saved model is the whole network.
"""

import copy
import hashlib
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import CheckpointError, read_pickled
from .data.cache import cache_key, file_stamps, read_entry, write_entry
from .distributed import epoch_seed, wrap_ddp
from .engine import EpochStats, autocast, evaluate, split_outputs, train_one_epoch, unwrap_model
from .recipes import create_ema, create_loss, create_optimizer, create_scheduler, pass_updates, training_length

__all__ = ["extract_features", "feature_batches", "fit_frozen"]


@torch.no_grad()
def extract_features(
    model: nn.Module,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    autocast_dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    count: int | None = None,
    fast: bool = True,
    chunk: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features, labels)``: the pooled, pre-classifier features of every batch (what ``forward_head(...,
    pre_logits=True)`` returns), float32 on the CPU, computed in evaluation mode.

    ``fast`` runs a copy of the backbone through ``inceptionzoo.optimize_for_inference`` (BatchNorm folded,
    fused, in ``autocast_dtype``), ``chunk`` images at a time; ``count`` (the images to expect) lets the result be
    one tensor filled in place instead of a list of small ones, which on glibc fragments memory over a long pass.
    """
    from ..deploy import optimize_for_inference

    device = torch.device(device)
    backbone = copy.deepcopy(unwrap_model(model)).eval()
    backbone.reset_classifier(0)  # the network up to and including global pooling
    net = optimize_for_inference(backbone, dtype=autocast_dtype) if fast else backbone
    width = backbone.num_features
    features = torch.empty(count or 0, width)
    labels = torch.empty(count or 0, dtype=torch.int64)
    filled = 0
    for images, targets in batches:
        for start in range(0, len(targets), chunk):
            part = images[start : start + chunk].to(device)
            with autocast(device, None if fast else autocast_dtype):
                pooled = split_outputs(net(part))[0].float().cpu()
            end = filled + len(pooled)
            if end > len(features):  # more images than expected (or no count given): grow
                features = torch.cat([features, torch.empty(max(end - len(features), len(features)), width)])
                labels = torch.cat([labels, torch.empty(len(features) - len(labels), dtype=torch.int64)])
            features[filled:end] = pooled
            labels[filled:end] = targets[start : start + chunk]
            filled = end
    return features[:filled].clone(), labels[:filled].clone()


def feature_batches(
    features: torch.Tensor, labels: torch.Tensor, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of cached features; shuffled and without the last partial batch when ``generator`` is given."""
    if generator is None:
        for start in range(0, len(labels), batch_size):
            yield features[start : start + batch_size], labels[start : start + batch_size]
        return
    order = torch.randperm(len(labels), generator=generator)
    for start in range(0, len(labels) - len(labels) % batch_size, batch_size):
        index = order[start : start + batch_size]
        yield features[index], labels[index]


def _fingerprint(model: nn.Module) -> str:
    """A digest of the backbone's weights (a strided sample of each tensor): cached features are reused only for
    the same weights."""
    classifier = model.pretrained_cfg.get("classifier", "fc")
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if not name.startswith(f"{classifier}."):
            values = tensor.detach().flatten()
            digest.update(name.encode() + values[:: max(1, values.numel() // 256)].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def _data_fingerprint(loader: Any) -> list[Any]:
    """What a split's features are made from: each image file with its label and stamp (streamed folders), the
    shard index with the shards' stamps (shards), or a digest of the labels and images (in memory)."""
    dataset = getattr(loader, "dataset", None)
    if hasattr(dataset, "samples"):
        samples = list(dataset.samples)
        stamps = file_stamps(path for path, _ in samples)
        return ["folder", [[*stamp, label] for stamp, (_, label) in zip(stamps, samples, strict=True)]]
    if hasattr(dataset, "index"):
        index = dataset.index
        return ["shards", list(index.shards), list(index.counts), list(index.classes), file_stamps(index.shards)]
    data = getattr(loader, "data", None)
    if hasattr(data, "images") and hasattr(data, "labels"):
        digest = hashlib.sha256()
        for tensor in (data.labels, data.images):
            digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.detach().cpu().contiguous().numpy())  # the buffer itself, no copy
        return ["memory", list(data.classes), digest.hexdigest()]
    raise TypeError(f"--freeze cannot tell what data a {type(loader).__name__} holds, so cannot cache its features")


def _cached_features(run: Any, split_name: str, loader: Any) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Features of one split from the cache, or computed (and cached) now; also the seconds it took."""
    config, env = run.config, run.env
    began = time.perf_counter()
    preprocessing = {k: run.model.pretrained_cfg.get(k) for k in ("mean", "std", "crop_pct", "crop_mode",
                                                                  "interpolation")}  # fmt: skip
    key = cache_key("features", config.model, config.pretrained, _fingerprint(run.model), split_name, run.size,
                    preprocessing, list(run.splits.classes), env.rank, env.world_size,
                    _data_fingerprint(loader),
                    # builder arguments can change the features and not the weights (a stem stride); none keeps
                    # the keys of the runs before --model-kwargs
                    *([config.model_kwargs] if config.model_kwargs else []))  # fmt: skip
    cache = Path(run.cache_dir) / f"{key}.pt"
    if read_entry(cache):
        try:
            saved = read_pickled(cache)
            return saved["features"], saved["labels"], time.perf_counter() - began
        except (CheckpointError, KeyError, TypeError):
            pass  # an unreadable entry is computed again and replaced
    features, labels = extract_features(run.model, loader.epoch(0), run.autocast_dtype, env.device, count=loader.images)
    write_entry(cache, lambda path: torch.save({"features": features, "labels": labels}, path))
    return features, labels, time.perf_counter() - began


def fit_frozen(run: Any) -> dict[str, Any]:
    """Train ``run.model``'s classifier on cached backbone features; returns the run's summary. ``run`` is the
    loop's ``Run``: its set-up, restore, announce, save and finish steps."""
    config, env, recipe = run.config, run.env, run.recipe
    model = run.model.to(env.device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    head = model.get_classifier()
    if not isinstance(head, nn.Module) or not list(head.parameters()):
        raise ValueError(f"{config.model} has no classifier to train (num_classes=0?); --freeze trains only it")
    for parameter in head.parameters():
        parameter.requires_grad_(True)

    extracted: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    feature_seconds = 0.0
    for name in ("train", "val", "test"):
        loader = getattr(run.splits, name)
        if loader is not None:
            features, labels, seconds = _cached_features(run, name, loader)
            extracted[name] = (features.to(env.device), labels.to(env.device))
            feature_seconds += seconds
    if env.is_main:
        print(f"features: {sum(len(v[1]) for v in extracted.values()):,} images through the frozen backbone in "
              f"{feature_seconds:.1f} s (cached for the next run)", flush=True)  # fmt: skip

    train_features, train_labels = extracted["train"]
    updates_per_epoch = len(train_labels) // recipe.batch_size
    if updates_per_epoch == 0:
        raise ValueError(f"batch size {recipe.batch_size} is larger than the {len(train_labels)} training images")
    optimizer = create_optimizer(head, recipe)
    ema = create_ema(head, recipe)
    passes, total_updates = training_length(recipe.epochs, updates_per_epoch)
    scheduler = create_scheduler(optimizer, recipe, epochs=total_updates / updates_per_epoch,
                                 updates_per_epoch=updates_per_epoch)  # fmt: skip
    resolved = {**asdict(config), "recipe": recipe.name, "resolved_recipe": asdict(recipe)}
    start_epoch, train_seconds = 0, 0.0
    if config.resume is not None:
        start_epoch, train_seconds = run.restore_into(model, resolved, optimizer, scheduler, None, ema)
    scheduler.step_update(num_updates=start_epoch * updates_per_epoch)
    metrics = run.announce(resolved, start_epoch)
    net = wrap_ddp(head, env)
    loss_fn = create_loss(recipe)
    row = run.last_row(metrics, start_epoch)

    def evaluate_features(name: str) -> EpochStats:
        features, labels = extracted[name]
        return evaluate(ema.module if ema is not None else head, feature_batches(features, labels, 1024),
                        autocast_dtype=None, device=env.device)  # fmt: skip

    for epoch in range(start_epoch, passes):
        epoch_start = time.perf_counter()
        generator = torch.Generator().manual_seed(epoch_seed(config.seed, epoch, env.rank))
        batches = feature_batches(train_features, train_labels, recipe.batch_size, generator)
        stats = train_one_epoch(
            net, batches, optimizer, loss_fn, recipe, ema=ema, autocast_dtype=None, device=env.device,
            scheduler=scheduler, num_updates=epoch * updates_per_epoch,
            max_steps=pass_updates(epoch, updates_per_epoch, total_updates),
        )  # fmt: skip
        row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "train_loss": stats.loss,
               "train_top1": stats.top1, "train_top5": stats.top5}  # fmt: skip
        if "val" in extracted:
            val = evaluate_features("val")
            row.update(val_loss=val.loss, val_top1=val.top1, val_top5=val.top5)
        train_time = time.perf_counter() - epoch_start
        train_seconds += train_time
        row.update(train_images_per_s=stats.images / train_time, epoch_s=train_time, elapsed_s=train_seconds)
        if env.is_main:
            run.save_epoch(metrics, row, resolved, optimizer, scheduler, None, ema, train_seconds, model=model)
        env.barrier()

    test_stats = evaluate_features("test") if "test" in extracted else None
    if ema is not None:  # the averaged classifier is the one evaluated and saved
        head.load_state_dict(ema.module.state_dict())
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    extra = {"freeze": True, "feature_seconds": feature_seconds, "head_seconds": train_seconds}
    return run.finish(row, metrics, None, train_seconds, extra=extra, test_stats=test_stats)
