"""The training loop, ``fit(TrainConfig(...))``, for one process or many (torchrun): a run as named steps, set up,
then per epoch train, validate and checkpoint, then test and save. Only rank 0 writes files.
"""

import json
import signal
import sys
import threading
import time
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..checkpoint import CheckpointError
from .config import TrainConfig, check_resume_matches, refuse_finished_run, resolve_recipe, saved_setting
from .data.cache import default_cache_dir
from .data.sources import DataOptions, Splits, open_splits, source_kind
from .data.transforms import Augmentation
from .distributed import (
    Distributed,
    all_ranks_sum,
    average_batchnorm_statistics,
    default_workers,
    epoch_seed,
    replicas_identical,
    wrap_ddp,
)
from .engine import EpochStats, autocast_dtype, evaluate, train_one_epoch, unwrap_model
from .recipes import (
    create_ema,
    create_loss,
    create_optimizer,
    create_scheduler,
    finish_lookahead,
    freeze_norm_scales,
    pass_updates,
    set_lookahead_alpha,
    training_length,
)
from .reporting import MetricsLog, Progress, plot_metrics, rate
from .resume import (
    LATEST,
    RunFolderLockedError,
    RunLock,
    find_checkpoint,
    load_training_state,
    remove_stale_partials,
    save_training_state,
)

__all__ = ["Run", "TrainConfig", "TrainingInterrupted", "describe_trained_model", "fit"]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run. ``output`` is its folder (None when it stopped before choosing one), ``checkpoint``
    the last complete checkpoint (None before the first epoch was saved): ``--resume output`` goes on from there."""

    def __init__(self, output: Path | None, checkpoint: Path | None) -> None:
        super().__init__(f"interrupted; last checkpoint {checkpoint}")
        self.output, self.checkpoint = output, checkpoint


def _interrupted(output: str) -> TrainingInterrupted:
    if not output:
        return TrainingInterrupted(None, None)
    try:
        checkpoint = find_checkpoint(output)
    except (OSError, CheckpointError):
        checkpoint = None
    return TrainingInterrupted(Path(output), checkpoint)


class StopBetweenSteps:
    """Ctrl-C during the training steps asks the loop to stop after the step under way (``check`` raises
    ``KeyboardInterrupt`` between steps); a second Ctrl-C, or one outside the steps, stops at once. The handler is
    installed on the main thread only, and the previous one restored on exit."""

    def __init__(self, announce: bool = True) -> None:
        self.requested = self.stepping = False
        self.announce = announce
        self.previous: Any = None

    def __enter__(self) -> "StopBetweenSteps":
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested or not self.stepping:
            raise KeyboardInterrupt
        self.requested = True
        if self.announce:
            print("\nCtrl-C: stopping after this step (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt


def _new_run_folder(model: str, env: Distributed) -> str:
    """``runs/<model>-<date>-<time>``, as timm names runs; rank 0's choice is shared with the other ranks."""
    name = [f"runs/{model.replace('/', '_').replace(':', '_')}-{time.strftime('%Y%m%d-%H%M%S')}"]
    if env.world_size > 1:
        dist.broadcast_object_list(name, src=0)
    return name[0]


def fit(config: TrainConfig) -> dict[str, Any]:
    """Train ``config.model`` on ``config.data``; returns the summary also written to ``<output>/summary.json``."""
    started = time.perf_counter()
    env = Distributed(config.device)
    lock = run = None
    try:
        if not config.output:
            config = replace(config, output=_new_run_folder(config.model, env))
        lock = _lock_output(Path(config.output), env)
        run = Run(config, env, started)
        if config.freeze:
            from .probe import fit_frozen

            return fit_frozen(run)
        return run.train()
    except KeyboardInterrupt as error:  # Ctrl-C: say where the run stands, without a traceback (command.main)
        if isinstance(error, TrainingInterrupted):
            raise
        raise _interrupted(config.output) from None
    finally:
        if run is not None:
            run.close_data()  # DataLoader workers shut down now, not at exit
        if lock is not None:
            lock.release()
        env.close()


def _lock_output(output: Path, env: Distributed) -> RunLock | None:
    """Rank 0 locks the output folder for the run (the other ranks share its lock); every rank stops when it is
    held by another run, with the error naming that run."""
    lock, refused = None, [""]
    if env.is_main:
        try:
            lock = RunLock(output)
        except RunFolderLockedError as error:
            refused = [str(error)]
    if env.world_size > 1:
        dist.broadcast_object_list(refused, src=0)
    if refused[0]:
        raise RunFolderLockedError(refused[0])
    for note in lock.notes if lock is not None else []:
        print(note, flush=True)
    return lock


def describe_trained_model(
    cfg: dict[str, Any],
    *,
    pretrained: bool,
    size: int,
    classes: tuple[str, ...] | list[str],
    dataset: str,
    accuracy: tuple[str, float, float] | None,
    freeze: bool = False,
) -> dict[str, Any]:
    """The ``pretrained_cfg`` of a model this run trained: its own data, classes, image size and accuracy
    (``(split, top1, top5)``), none of the published weights' claims (tag, accuracy, description, origin)."""
    arch = cfg.get("architecture") or "model"
    source = f"{arch}.{cfg['tag']}" if pretrained and cfg.get("tag") else arch
    if freeze:
        how = f"a classifier trained on {source}'s frozen features"
    else:
        how = f"fine-tuned from {source}" if pretrained else "trained from scratch"
    in_chans = (cfg.get("input_size") or (3,))[0]
    notes = (f"top1/top5 measured on the {accuracy[0]} split of {dataset} at {size}x{size}",) if accuracy else None
    return {
        **cfg,
        "tag": None,
        "url": None, "file": None, "hf_hub_id": None, "hf_hub_filename": None, "origin_url": None,
        "description": f"{arch} {how} on {dataset} by inceptionzoo.",
        "dataset": dataset,
        "fine_tuned_from": source if pretrained else None,
        "top1": accuracy[1] if accuracy else None,
        "top5": accuracy[2] if accuracy else None,
        "notes": notes,
        "input_size": (in_chans, size, size),
        "test_input_size": (in_chans, size, size),
        "test_crop_pct": cfg.get("crop_pct"),  # the evaluation crop this run used
        "num_classes": len(classes),
        "label_names": list(classes),
    }  # fmt: skip


# builder arguments the loop passes itself, each from its own setting
_LOOP_MODEL_ARGUMENTS = {
    "pretrained": "--pretrained",
    "pretrained_file": "--pretrained-file",
    "num_classes": "the data's class folders",
    "aux_logits": "--aux-logits / --no-aux-logits",
}
_JSON_SCALARS = (str, int, float, bool, type(None))


def _kwargs_text(kwargs: dict[str, Any]) -> str:
    return " ".join(f"{key}={value!r}" for key, value in kwargs.items())


def _json_ready(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return all(_json_ready(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _json_ready(item) for key, item in value.items())
    return isinstance(value, _JSON_SCALARS)


def _check_model_kwargs(kwargs: Any) -> None:
    """``--model-kwargs`` is a dict of builder arguments that the run's config.json and checkpoints can record
    (numbers, strings, booleans, None, lists and dicts of them), none of which the loop sets from its own flags."""
    if not isinstance(kwargs, dict) or not all(isinstance(key, str) for key in kwargs):
        raise ValueError(f"--model-kwargs must be a dict of argument names to values, got {kwargs!r}")
    taken = [f"{key} (set by {_LOOP_MODEL_ARGUMENTS[key]})" for key in kwargs if key in _LOOP_MODEL_ARGUMENTS]
    if taken:
        raise ValueError(f"--model-kwargs cannot set {', '.join(taken)}")
    odd = [f"{key}={value!r}" for key, value in kwargs.items() if not _json_ready(value)]
    if odd:
        raise ValueError(
            f"--model-kwargs values must be numbers, strings, booleans, None, or lists and dicts of them, so that the "
            f"run's config.json records them; got {', '.join(odd)} (name a layer by its string, e.g. "
            "norm_layer='batchnorm2d')"
        )


class Run:
    """One training run, as named steps: set up (model, data, recipe, optimizer, restore), then per epoch train,
    validate and checkpoint, then test and save. ``probe.fit_frozen`` runs ``--freeze`` through the same steps."""

    def __init__(self, config: TrainConfig, env: Distributed, started: float) -> None:
        from .. import create_model

        if config.threads:
            torch.set_num_threads(config.threads)
        if config.sync_bn and env.world_size > 1 and env.device.type != "cuda":
            raise ValueError(
                "--sync-bn needs CUDA devices: torch's SyncBatchNorm does not run on CPU. Without it each CPU process "
                "normalises with its own batches' statistics, and the running statistics are averaged after every "
                "epoch"
            )
        if config.grad_accum < 1:
            raise ValueError(f"--grad-accum must be 1 or more, got {config.grad_accum}")
        if config.keep_checkpoints < 1:
            raise ValueError(f"--keep-checkpoints must be 1 or more (resuming needs the latest), got "
                             f"{config.keep_checkpoints}")  # fmt: skip
        if not config.data:
            raise ValueError(
                "no data: pass --data PATH (an ImageFolder folder, a folder of tar shards, or a .tar.gz) or "
                "--data torchvision:ROOT"
            )
        self.env, self.started = env, started
        self.output = Path(config.output or _new_run_folder(config.model, env))
        self.config = config = replace(config, output=str(self.output))
        self.checkpoints = self.output / "checkpoints"
        self.cache_dir = str(config.cache_dir or default_cache_dir())
        if config.pretrained_file is not None and not config.pretrained:
            self.config = config = replace(config, pretrained=True)  # a local file of weights is a pretrained start
        if config.resume is not None:
            refuse_finished_run(config.resume)
            if config.val_size is None:  # the resumed run's own validation choice (5000 in runs before the default)
                self.config = config = replace(config, val_size=saved_setting(config.resume, "val_size"))
        if config.resume is None and (self.checkpoints / LATEST).exists():
            raise FileExistsError(
                f"{self.output} already holds a run; pass --resume {self.output} to continue it, or choose another "
                "--output"
            )
        _check_model_kwargs(config.model_kwargs)
        # the model first (its input size and preprocessing decide the transforms), then the data
        with torch.device("meta"):  # its config only: no weights initialised, the real model is built below
            try:
                probe_model = create_model(config.model, pretrained=False, **config.model_kwargs)
            except (TypeError, ValueError) as error:
                if not config.model_kwargs:
                    raise
                # create_model's own words (the unknown name, the accepted ones), with the arguments given and as a
                # ValueError, which the command line shows without a traceback
                given = _kwargs_text(config.model_kwargs)
                raise ValueError(f"cannot build {config.model} with --model-kwargs {given}: {error}") from error
        self.size = self._image_size(probe_model)
        self.recipe = resolve_recipe(config, probe_model, env.world_size)
        self.splits = self._open_data(probe_model)
        if self._fit_batch_to_data(probe_model):
            notes = self.splits.notes
            self.splits = self._open_data(probe_model)
            self.splits.notes.append(notes[-1])
        aux = {}
        if hasattr(probe_model, "aux_logits"):  # the papers' recipes train from scratch with the auxiliary heads
            wanted = config.aux_logits
            default = self.recipe.aux_logits and not (config.pretrained or config.freeze)
            aux["aux_logits"] = default if wanted is None else wanted
            if aux["aux_logits"]:
                self._check_aux_size(config.model, default=wanted is None)
        elif config.aux_logits:
            raise ValueError(f"--aux-logits: {config.model} has no auxiliary heads")
        torch.manual_seed(config.seed)
        weights = {"pretrained_file": config.pretrained_file} if config.pretrained_file is not None else {}
        self.model = create_model(
            config.model, pretrained=config.pretrained, num_classes=len(self.splits.classes), **aux, **weights,
            **config.model_kwargs,
        )  # fmt: skip
        self.model.pretrained_cfg = {**self.model.pretrained_cfg, "label_names": list(self.splits.classes)}
        self.autocast_dtype = autocast_dtype(config.amp, env.device)

    def _image_size(self, model: nn.Module) -> int:
        native = model.pretrained_cfg["input_size"][-1]
        size = self.config.image_size or native
        minimum = model.pretrained_cfg["min_input_size"][-1]
        if size < minimum:
            raise ValueError(f"--image-size {size} is below {self.config.model}'s minimum input of {minimum} pixels")
        return size

    def _fit_batch_to_data(self, model: nn.Module) -> bool:
        """Without ``--batch-size``, a recipe's batch larger than the training images of a process (a folder of a
        few dozen photos, and a recipe made for ImageNet) gives way to the largest power of two up to half of them
        (the learning rate scaled with it); True when the batch changed and the data must be opened again."""
        config = self.config
        if config.batch_size is not None or config.freeze or len(self.splits.train) // config.grad_accum:
            return False
        images = self.splits.train.images // config.grad_accum
        batch = 2 ** max(1, (images // 2).bit_length() - 1)
        if batch >= self.recipe.batch_size or images < 2:
            return False
        self.recipe = resolve_recipe(replace(config, batch_size=batch), model, self.env.world_size)
        self.splits.notes.append(f"batch size {batch} instead of the recipe's, which is larger than the {images} "
                                 f"training images of a process (learning rate {self.recipe.lr:g}, scaled with it; "
                                 "--batch-size to choose)")  # fmt: skip
        self.close_data()
        return True

    def close_data(self) -> None:
        """Shut the data loaders' worker processes down."""
        for loader in (self.splits.train, self.splits.val, self.splits.test):
            if loader is not None:
                loader.close()

    def _check_aux_size(self, name: str, default: bool) -> None:
        """The auxiliary heads need a larger input than the rest of the network (``min_input_size`` with them):
        an image size below it is an error naming the heads and ``--no-aux-logits``."""
        from .. import create_model

        with torch.device("meta"):
            with_aux = create_model(name, aux_logits=True, **self.config.model_kwargs)
        minimum, features = with_aux.min_input_size[-1], with_aux.features_min_size[-1]
        if self.size < minimum:
            why = f"on by default from scratch with the {self.recipe.name} recipe" if default else "--aux-logits"
            raise ValueError(
                f"--image-size {self.size} is below the {minimum}x{minimum} pixels that {name}'s auxiliary head "
                f"({why}) needs; pass --no-aux-logits to train without it (the rest of the network takes "
                f"{features}x{features} and more), or an --image-size of {minimum} or more"
            )

    def _open_data(self, model: nn.Module) -> Splits:
        config, env = self.config, self.env
        augmentation = Augmentation(
            crop=config.train_crop, color_jitter=config.color_jitter, auto_augment=config.auto_augment,
            random_erasing=config.random_erasing, mixup=config.mixup, cutmix=config.cutmix,
            translate=self.recipe.translate, alternate_flip=self.recipe.alternate_flip,
        )  # fmt: skip
        options = DataOptions(
            source=config.data, mode=config.data_mode, memory_budget_gb=config.memory_budget_gb,
            workers=config.workers if config.workers is not None else default_workers(env.world_size),
            cache_dir=self.cache_dir, download=config.download, subset=config.subset,
            val_size=config.val_size, eval_test=config.eval_test, seed=config.seed,
            skip_bad=config.skip_bad_images, augmentation=augmentation,
        )  # fmt: skip
        return open_splits(
            options, model, self.recipe.batch_size, self.size, rank=env.rank, world_size=env.world_size,
            channels_last=config.channels_last, pin_memory=env.device.type == "cuda", barrier=env.barrier,
            augment_train=not config.freeze,
        )  # fmt: skip

    # -- training ------------------------------------------------------------------------------------------------

    def train(self) -> dict[str, Any]:
        config, env, recipe, model = self.config, self.env, self.recipe, self.model
        if config.sync_bn and env.world_size > 1:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = model.to(env.device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        if config.unfreeze_after:
            self._set_backbone_trainable(False)
        self._whiten_stem(model)
        if recipe.freeze_norm_scale:
            freeze_norm_scales(model)
        optimizer = create_optimizer(model, recipe, layer_decay=config.layer_decay)
        ema = create_ema(model, recipe)
        grad_scaler = torch.amp.GradScaler("cuda") if self.autocast_dtype == torch.float16 else None
        updates_per_epoch = len(self.splits.train) // config.grad_accum
        if updates_per_epoch == 0:
            raise ValueError(
                f"batch size {recipe.batch_size} x --grad-accum {config.grad_accum} is larger than this process's "
                f"{self.splits.train.images} training images; lower --batch-size or raise --subset"
            )
        passes, total_updates = training_length(recipe.epochs, updates_per_epoch)
        scheduler = create_scheduler(optimizer, recipe, epochs=total_updates / updates_per_epoch,
                                     updates_per_epoch=updates_per_epoch)  # fmt: skip
        mixup = self._mixup()
        resolved = {**asdict(self.config), "recipe": recipe.name, "resolved_recipe": asdict(recipe)}
        start_epoch, train_seconds = self.restore_into(model, resolved, optimizer, scheduler, grad_scaler, ema)
        scheduler.step_update(num_updates=start_epoch * updates_per_epoch)
        loss_fn = create_loss(recipe)
        metrics = self.announce(resolved, start_epoch)

        net = self._wrap(model)
        lookahead = partial(set_lookahead_alpha, optimizer, total_updates=total_updates) if recipe.lookahead else None
        row: dict[str, Any] = self.last_row(metrics, start_epoch)
        with StopBetweenSteps(announce=env.is_main) as stop:
            for epoch in range(start_epoch, passes):
                epoch_start = time.perf_counter()
                unfreeze = config.unfreeze_after and epoch >= config.unfreeze_after
                if unfreeze and self._set_backbone_trainable(True):
                    net = self._wrap(model)  # DDP registers the trainable parameters when it wraps the model
                # dropout and any other draws of this epoch
                torch.manual_seed(epoch_seed(config.seed, epoch, env.rank))
                loader = self.splits.train.epoch(epoch)
                # the last pass of a fractional epoch count stops at the run's last update
                updates = pass_updates(epoch, updates_per_epoch, total_updates)
                last_steps = updates * config.grad_accum if updates < updates_per_epoch else None
                steps = last_steps or len(self.splits.train)
                progress = Progress(steps, f"epoch {epoch + 1}/{recipe.epochs:g}",
                                    env.is_main and config.progress, config.log_every, env.world_size)  # fmt: skip
                stop.stepping = True  # a Ctrl-C from here on stops after the step under way
                stats = train_one_epoch(
                    net, loader, optimizer, loss_fn, recipe, ema=ema, autocast_dtype=self.autocast_dtype,
                    device=env.device, scheduler=scheduler, num_updates=epoch * updates_per_epoch,
                    grad_scaler=grad_scaler, on_step=progress, grad_accum=config.grad_accum, mixup=mixup,
                    after_update=lookahead, between_steps=stop.check,
                    max_steps=last_steps,
                )  # fmt: skip
                stop.stepping = False
                progress.close()
                if lookahead is not None and epoch + 1 == passes:
                    finish_lookahead(optimizer)  # the last epoch is validated, tested and saved with the slow weights
                average_batchnorm_statistics([self.model, ema.module if ema is not None else None], env.world_size)
                train_time = time.perf_counter() - epoch_start
                row = {
                    "epoch": epoch,
                    # the schedule's rate, without a group's lr_scale (layer decay, norm biases)
                    "lr": optimizer.param_groups[0]["lr"] / optimizer.param_groups[0].get("lr_scale", 1.0),
                    "train_loss": stats.loss,
                    "train_top1": stats.top1,
                    "train_top5": stats.top5,
                    "train_images_per_s": stats.images / train_time,
                }
                skipped = all_ranks_sum(self.splits.train.skipped, env)
                if skipped:
                    row["skipped_images"] = skipped
                if self.splits.val is not None:
                    val_stats = self.evaluate(self.splits.val, ema)
                    row.update(val_loss=val_stats.loss, val_top1=val_stats.top1, val_top5=val_stats.top5,
                               val_images=val_stats.images)  # fmt: skip
                train_seconds += time.perf_counter() - epoch_start
                row.update(epoch_s=time.perf_counter() - epoch_start, elapsed_s=train_seconds)
                if env.is_main:
                    self.save_epoch(metrics, row, resolved, optimizer, scheduler, grad_scaler, ema, train_seconds)
                env.barrier()
        return self.finish(row, metrics, ema, train_seconds)

    def _whiten_stem(self, model: nn.Module) -> None:
        """The recipe's patch whitening of the first convolution, from 5,000 of this rank's training images (DDP
        then gives every rank rank 0's filters). Weights from a checkpoint or the Hub are left as they are."""
        if not self.recipe.whiten_stem:
            return
        if self.config.pretrained or self.config.resume is not None:
            if self.config.whiten_stem and self.config.pretrained:
                raise ValueError("--whiten-stem replaces the first convolution's weights; it cannot start from "
                                 "--pretrained weights")  # fmt: skip
            if self.config.resume is not None:  # the checkpoint holds the filters; they stay frozen
                self._stem_conv(model).weight.requires_grad_(False)
            return
        from .whitening import init_patch_whitening_

        images, count = [], 0
        for batch, _ in self.splits.train.epoch(0):
            images.append(batch)
            count += len(batch)
            if count >= 5000:
                break
        init_patch_whitening_(self._stem_conv(model), torch.cat(images)[:5000].to(self.env.device))
        if self.env.is_main:
            print(f"first convolution set to whiten {self.size}x{self.size} images' patches, and frozen", flush=True)

    def _stem_conv(self, model: nn.Module) -> nn.Conv2d:
        name = model.pretrained_cfg.get("first_conv") or ""
        layer = model.get_submodule(name) if name else None
        if not isinstance(layer, nn.Conv2d):
            raise ValueError(f"--whiten-stem needs the model's first convolution; {self.config.model}'s "
                             f"pretrained_cfg names {name!r}")  # fmt: skip
        return layer

    def _mixup(self) -> Any:
        config = self.config
        if not (config.mixup or config.cutmix):
            return None
        if self.recipe.batch_size % 2:
            raise ValueError(f"--mixup/--cutmix mix pairs of images: the batch size must be even, got "
                             f"{self.recipe.batch_size}")  # fmt: skip
        from timm.data import Mixup

        # the loss applies the recipe's label smoothing to the mixed targets, so Mixup adds none of its own
        return Mixup(mixup_alpha=config.mixup, cutmix_alpha=config.cutmix, label_smoothing=0.0,
                     num_classes=len(self.splits.classes))  # fmt: skip

    def _set_backbone_trainable(self, trainable: bool) -> bool:
        """Freeze or unfreeze every parameter outside the classifier; True when anything changed."""
        classifier = {id(p) for p in unwrap_model(self.model).get_classifier().parameters()}
        changed = False
        for parameter in self.model.parameters():
            if id(parameter) not in classifier and parameter.requires_grad != trainable:
                parameter.requires_grad_(trainable)
                changed = True
        if changed and self.env.is_main and not trainable:
            print(f"backbone frozen for the first {self.config.unfreeze_after} epoch(s)", flush=True)
        return changed

    def _wrap(self, model: nn.Module) -> nn.Module:
        net = wrap_ddp(model, self.env)
        if self.config.compile:  # the training step only; evaluation runs the plain modules (no second compilation)
            net = torch.compile(net)
        return net

    def restore_into(
        self, model: nn.Module, resolved: dict, optimizer: Any, scheduler: Any, grad_scaler: Any, ema: Any
    ) -> tuple[int, float]:
        """Load ``--resume``'s checkpoint; the run goes on at the next epoch (an epoch cut short is run again from
        its start, with the same data order and augmentation as an uninterrupted run)."""
        if self.config.resume is None:
            return 0, 0.0
        resume = self.config.resume

        def same_settings(state: dict[str, Any]) -> None:  # before the weights: a setting named, not a tensor
            check_resume_matches(state["config"], resolved, resume)

        state = load_training_state(resume, model, ema.module if ema is not None else None, check_state=same_settings)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if grad_scaler is not None and "grad_scaler" in state:
            grad_scaler.load_state_dict(state["grad_scaler"])
        return state["epoch"] + 1, state["train_seconds"]

    @staticmethod
    def last_row(metrics: MetricsLog | None, start_epoch: int) -> dict[str, Any]:
        """The metrics of the epoch before ``start_epoch``: what ``finish`` reports when no epoch is left to run (a
        run stopped after its last checkpoint, before its summary)."""
        if metrics is not None and metrics.rows:
            return dict(metrics.rows[-1])
        return {"epoch": start_epoch - 1}

    def announce(self, resolved: dict, start_epoch: int) -> MetricsLog | None:
        if not self.env.is_main:
            return None
        config, env, recipe, splits = self.config, self.env, self.recipe, self.splits
        self.output.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(self.output)  # temporary files of a run killed mid-write
        (self.output / "config.json").write_text(json.dumps(resolved, indent=2) + "\n")
        validation = f"{splits.val_images:,} validation" if splits.val is not None else "no validation"
        print(
            f"{config.model}: {splits.train_images:,} training images ({splits.kind}) at {self.size}x{self.size}, "
            f"{validation}; {env.world_size} process(es) on {env.device}, {torch.get_num_threads()} "
            f"threads, autocast {self.autocast_dtype}, recipe {recipe.name} (lr {recipe.lr:g}, batch "
            f"{recipe.batch_size}{f' x {config.grad_accum} accumulated' if config.grad_accum > 1 else ''}), epochs "
            f"{start_epoch + 1}-{recipe.epochs:g}",
            flush=True,
        )
        native = self.model.pretrained_cfg["input_size"][-1]
        if self.size != native:
            cost = (self.size / native) ** 2
            whose, scale = "the model's", ""
            if config.pretrained:
                whose, scale = "the weights'", ", and the pretrained weights meet objects at another scale"
            print(f"image size {self.size} instead of {whose} {native}: about {cost:.2f}x the compute per image"
                  f"{scale}", flush=True)  # fmt: skip
        for note in splits.notes:
            print(f"data: {note}", flush=True)
        return MetricsLog(self.output, start_epoch=start_epoch)

    def evaluate(self, loader: Any, ema: Any = None) -> EpochStats:
        eval_model = ema.module if ema is not None else self.model
        return evaluate(eval_model, loader.epoch(0), nn.CrossEntropyLoss(), self.config.flip_tta, self.autocast_dtype,
                        self.env.device, translate_tta=self.recipe.translate_tta)  # fmt: skip

    def save_epoch(
        self, metrics, row, resolved, optimizer, scheduler, grad_scaler, ema, train_seconds, model=None
    ) -> None:
        metrics.append(row)
        plot_metrics(metrics.rows, self.output / "metrics.png", title=self.config.model)
        state = {
            "epoch": row["epoch"],
            "train_seconds": train_seconds,
            "config": resolved,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
        }
        if grad_scaler is not None:
            state["grad_scaler"] = grad_scaler.state_dict()
        # the folder is named by the epochs completed (epoch_0001 after the first), as the logs count them
        save_training_state(self.checkpoints, row["epoch"] + 1, model if model is not None else self.model, state,
                            ema=ema.module if ema is not None else None, keep=self.config.keep_checkpoints)  # fmt: skip
        shown = f"  val top-1 {row['val_top1']:.2f}%" if "val_top1" in row else ""
        skipped = f"  {row['skipped_images']} unreadable images skipped" if row.get("skipped_images") else ""
        print(
            f"epoch {row['epoch'] + 1}/{self.recipe.epochs:g}: train loss {row['train_loss']:.4f} top-1 "
            f"{row['train_top1']:.2f}%{shown}  {row['epoch_s']:.0f} s ({rate(row['train_images_per_s'])} img/s), "
            f"{train_seconds / 60:.1f} min in all{skipped}",
            flush=True,
        )

    def finish(
        self,
        row: dict,
        metrics: MetricsLog | None,
        ema: Any,
        train_seconds: float,
        extra: dict | None = None,
        test_stats: EpochStats | None = None,
    ) -> dict[str, Any]:
        """Evaluate the test split once (unless ``test_stats`` has it), save the final model in the Hub layout and
        write the summary. ``row`` is the last epoch's; ``metrics`` holds every epoch's on the main process (None on
        the others)."""
        env, splits = self.env, self.splits
        validation = {"source": splits.val_source, "images": splits.val_images} if splits.val is not None else None
        summary: dict[str, Any] = {
            "model": self.config.model,
            "epochs": self.recipe.epochs,
            "train_images": self.splits.train_images,
            "image_size": self.size,
            "data": self.splits.kind,
            "validation": validation,
            "train_seconds": train_seconds,
            "final": {**row, "epoch": row["epoch"] + 1},  # epochs completed, as "epochs" counts them
            "world_size": env.world_size,
            "device": str(env.device),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            **(extra or {}),
        }
        if self.splits.test is not None:
            test_stats = test_stats or self.evaluate(self.splits.test, ema)
            summary["test"] = {"images": test_stats.images, "loss": test_stats.loss, "top1": test_stats.top1,
                               "top5": test_stats.top5, "flip_tta": self.config.flip_tta,
                               "translate_tta": self.recipe.translate_tta,
                               "skipped_images": all_ranks_sum(self.splits.test.skipped, env)}  # fmt: skip
        if env.world_size > 1:
            summary["replicas_identical"] = replicas_identical(self.model)
        summary["wall_seconds"] = time.perf_counter() - self.started
        if env.is_main:
            from ..hub import save_pretrained

            saved = unwrap_model(ema.module if ema is not None else self.model)
            saved.pretrained_cfg = describe_trained_model(
                saved.pretrained_cfg, pretrained=self.config.pretrained, size=self.size, classes=self.splits.classes,
                dataset=self.dataset_name(), accuracy=self._accuracy(summary, row), freeze=self.config.freeze,
            )  # fmt: skip
            save_pretrained(saved, self.output / "model")
            (self.output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            if "test" in summary and metrics is not None:  # the curve gets the headline figure
                test_top1 = summary["test"]["top1"]
                plot_metrics(metrics.rows, self.output / "metrics.png", self.config.model, test_top1=test_top1)
                skipped = summary["test"]["skipped_images"]
                print(f"test: top-1 {summary['test']['top1']:.2f}%  top-5 {summary['test']['top5']:.2f}%"
                      f"{f'  ({skipped} unreadable images skipped)' if skipped else ''}", flush=True)  # fmt: skip
            print(f"done in {summary['wall_seconds'] / 60:.1f} min; weights in {self.output / 'model'}", flush=True)
        # every rank leaves together, once rank 0 has written the run: no rank tears the process group down while
        # another still uses it
        env.barrier()
        return summary

    def dataset_name(self) -> str:
        """What the model was trained on, as its saved config names it: ``--data``'s name and kind."""
        data = self.config.data
        if data.startswith("torchvision:"):
            return "CIFAR-10 (torchvision)"
        return f"{Path(data).resolve().name} ({source_kind(data)})"

    @staticmethod
    def _accuracy(summary: dict[str, Any], row: dict[str, Any]) -> tuple[str, float, float] | None:
        if "test" in summary:
            return "test", summary["test"]["top1"], summary["test"]["top5"]
        if "val_top1" in row:
            return "val", row["val_top1"], row["val_top5"]
        return None
