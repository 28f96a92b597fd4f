"""Ablation studies: arms (a model spec and a recipe) trained side by side under one budget, N seeds each, on any
data ``train`` accepts, through ``fit`` itself. Each (arm, seed) run is a run folder of its own, so a study cut by a
crash or Ctrl-C goes on with the unfinished runs only; under torchrun every run is distributed over the processes.

The Table 3 study of "Rethinking the Inception Architecture" (Szegedy et al. 2016) is built in (``TABLE3``): its
eight rows, each adding one change to the row above, the architectural ones in the model and the training ones in
the recipe.
"""

import ast
import json
import math
import os
import re
import statistics
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from itertools import chain, count, islice
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .config import TrainConfig
from .data.cache import write_atomically
from .distributed import Distributed, wrap_ddp
from .recipes import RECIPES, recipe_for
from .study_report import ArmResult, write_report

__all__ = [
    "ADAPTATIONS",
    "STUDIES",
    "TABLE3",
    "Arm",
    "Study",
    "arm_from_spec",
    "collect_results",
    "load_study_file",
    "parse_model_spec",
    "run_config",
    "run_study",
]


@dataclass(frozen=True)
class Arm:
    """One arm of a study.

    Attributes:
        name: the arm's name in the report and its folder.
        model: a registered model name.
        model_kwargs: builder arguments (``InceptionV3Config`` / ``GoogLeNetConfig`` fields and the like).
        recipe: a recipe of ``inceptionzoo.train.RECIPES``, or None for the model's own (``MODEL_RECIPES``).
        settings: other ``TrainConfig`` fields for this arm (``label_smoothing``, ``batch_size``...).
        change: what this arm changes against the previous one, for the report.
        paper: the paper's figures for this arm (``top1_error``, ``top5_error`` in %, ``cost`` in Bn ops).
    """

    name: str
    model: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    recipe: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    change: str = ""
    paper: dict[str, float | None] | None = None


def _paper(top1: float, top5: float | None, cost: float) -> dict[str, float | None]:
    return {"top1_error": top1, "top5_error": top5, "cost": cost}


# Table 3 of the Inception-v3 paper, each row adding its change to the row above. Rows 1-4 share the momentum-SGD
# recipe (lr 0.045 x 0.94 every 2 epochs, clipping 2.0, parameter averaging), so their differences are the networks';
# rows 5-6 change the recipe only (RMSProp with TensorFlow's epsilon 1.0, then label smoothing 0.1); rows 7-8 change
# the network only.
TABLE3: tuple[Arm, ...] = (
    Arm("1 GoogLeNet", "inception_v1", recipe="momentum_sgd", change="GoogLeNet (2014): LRN, 5x5 branches",
        paper=_paper(29.0, 9.2, 1.5)),
    Arm("2 BN-GoogLeNet", "inception_v1_bn", recipe="momentum_sgd",
        change="+ BatchNorm after every convolution, LRN removed", paper=_paper(26.8, None, 1.5)),
    Arm("3 BN-Inception", "bn_inception", recipe="momentum_sgd",
        change="+ BN-Inception's modules: 5x5 -> two 3x3, module 3c, stride-2 modules, no dropout",
        paper=_paper(25.2, 7.8, 2.0)),
    Arm("4 Inception-v2", "inception_v2", recipe="momentum_sgd",
        change="+ the v2 network: factorized modules (figs. 5-7), parallel grid reductions, 7x7 stem",
        paper=_paper(23.4, None, 3.8)),
    Arm("5 + RMSProp", "inception_v2_rmsprop", recipe="rmsprop",
        change="+ RMSProp (decay 0.9, epsilon 1.0 inside the root)", paper=_paper(23.1, 6.3, 3.8)),
    Arm("6 + Label Smoothing", "inception_v2_ls", recipe="rmsprop_label_smoothing",
        change="+ label smoothing 0.1", paper=_paper(22.8, 6.1, 3.8)),
    Arm("7 + Factorized 7x7", "inception_v2_f7x7", recipe="rmsprop_label_smoothing",
        change="+ the 7x7 stem convolution -> three 3x3", paper=_paper(21.6, 5.8, 4.8)),
    Arm("8 + BN-auxiliary", "inception_v3", recipe="rmsprop_label_smoothing",
        change="+ BatchNorm in the aux head's fully connected layer (= Inception-v3)", paper=_paper(21.2, 5.6, 4.8)),
)  # fmt: skip

STUDIES: dict[str, tuple[Arm, ...]] = {"table3": TABLE3}

# the small-scale adaptation applied to every arm alike: Section 9 of the paper trains Inception-v3 on low-resolution
# input with the first convolution at stride 1 and no max pool after it; every network keeps its own stem, and the
# auxiliary heads pool whatever grid they get to the map their fully connected layer covers at full resolution
ADAPTATIONS: dict[str, dict[str, Any]] = {
    "none": {},
    "section9": {"stem_stride": 1, "stem_pool": False, "aux_pool": "adaptive"},
}

# TrainConfig fields a study sets for each run itself, which neither arms nor --set may give
_OWNED = ("model", "model_kwargs", "output", "seed", "resume", "epochs", "data", "recipe")


def _literal(text: str) -> Any:
    """A builder argument's value: a Python literal (``False``, ``0.5``, ``(0, 1, 0)``), else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _split_top_level(text: str) -> list[str]:
    """``text`` split at the commas outside brackets (a tuple value keeps its commas)."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def parse_model_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"inception_v3:factorize_nxn=False,nxn=5"`` -> ``("inception_v3", {"factorize_nxn": False, "nxn": 5})``."""
    name, _, arguments = spec.partition(":")
    kwargs: dict[str, Any] = {}
    for part in _split_top_level(arguments):
        key, equals, value = part.partition("=")
        if not equals or not key.strip().isidentifier():
            raise ValueError(f"model spec {spec!r}: {part!r} is not key=value (e.g. inception_v3:factorize_nxn=False)")
        kwargs[key.strip()] = _literal(value.strip())
    return name.strip(), kwargs


def arm_from_spec(spec: str, recipe: str | None = None, change: str = "") -> Arm:
    """An arm from a model spec given on the command line, named by the spec."""
    model, kwargs = parse_model_spec(spec)
    return Arm(spec, model, kwargs, recipe=recipe, change=change)


@dataclass
class Study:
    """A study: its arms, where they train, the budget (``epochs``, or ``budget_minutes`` of training per run, turned
    into epochs per arm from its measured speed), the seeds, the adaptation every arm shares (``model_kwargs``,
    ``settings``) and whether step schedules are compressed to the budget.

    ``compress_schedule`` keeps a step schedule's shape at any budget: a recipe that decays by 0.94 every 2 of its 100
    epochs decays every ``epochs / 50`` epochs, so the rate ends where the paper's did (exactly the paper's at 100).
    """

    arms: list[Arm]
    data: str
    output: str
    seeds: int = 2
    epochs: int | float | None = None
    budget_minutes: float | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    compress_schedule: bool = True
    title: str = ""

    def __post_init__(self) -> None:
        if not self.arms:
            raise ValueError("a study needs at least one arm")
        names = [arm.name for arm in self.arms]
        folders = [_folder_name(name) for name in names]
        if len(set(folders)) != len(folders):
            raise ValueError(f"arm names must be distinct (also as folder names): {names}")
        if (self.epochs is None) == (self.budget_minutes is None):
            raise ValueError("give the budget as epochs or as budget_minutes (wall-clock minutes of training per run)")
        if self.epochs is not None and not self.epochs > 0:
            raise ValueError(f"epochs must be a positive number (9.9 ends with a partial pass), got {self.epochs}")
        if self.seeds < 1:
            raise ValueError(f"seeds must be 1 or more, got {self.seeds}")
        for where, settings in [("settings", self.settings)] + [(f"arm {a.name!r}", a.settings) for a in self.arms]:
            _check_settings(where, settings)
        if self.settings.get("val_size") == 0 and not self.settings.get("eval_test"):
            raise ValueError("val_size=0 without eval_test leaves no held-out images to measure the arms on")

    def definition(self) -> dict[str, Any]:
        """What a restarted study must share with the one that made its folder (the seeds may grow)."""
        return {
            "arms": [asdict(arm) for arm in self.arms],
            "data": _data_name(self.data),
            "epochs": self.epochs,
            "budget_minutes": self.budget_minutes,
            "model_kwargs": self.model_kwargs,
            "settings": self.settings,
            "compress_schedule": self.compress_schedule,
        }


def _data_name(data: str) -> str:
    """The data as a study folder records it for matching: its file or folder name (a study copied to a machine where
    the data lies elsewhere goes on), or the ``torchvision:`` name."""
    return data if data.startswith("torchvision:") else Path(_data_path(data)).name


def _data_path(data: str) -> str:
    return data if data.startswith("torchvision:") else str(Path(data).resolve())


def _check_settings(where: str, settings: dict[str, Any]) -> None:
    from .._validation import check_known_names

    known = {f.name for f in fields(TrainConfig)} - set(_OWNED)
    owned = sorted(set(settings) & set(_OWNED))
    if owned:
        raise ValueError(f"{where}: {', '.join(owned)} are set by the study itself (model spec, recipe, budget, seeds)")
    try:
        check_known_names(where, settings, known, what="training setting")
    except TypeError as error:
        raise ValueError(str(error)) from None


def _folder_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("_") or "arm"


def run_folder(study: Study, arm: Arm, seed: int) -> Path:
    """``<output>/runs/<arm>/seed<N>``: one ``fit`` run folder."""
    return Path(study.output) / "runs" / _folder_name(arm.name) / f"seed{seed}"


def _base_recipe(arm: Arm) -> Any:
    if arm.recipe is None:
        return recipe_for(arm.model)
    if arm.recipe not in RECIPES:
        raise ValueError(f"arm {arm.name!r}: unknown recipe {arm.recipe!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[arm.recipe]


def run_config(study: Study, arm: Arm, seed: int, epochs: int | float) -> TrainConfig:
    """The ``TrainConfig`` of one (arm, seed) run: the study's shared settings, then the arm's own."""
    # one checkpoint is enough to resume a cut run; a study's many finished runs need no more
    settings = {"progress": False, "keep_checkpoints": 1, **study.settings, **arm.settings}
    recipe = _base_recipe(arm)
    if study.compress_schedule and recipe.schedule == "step" and "decay_epochs" not in settings:
        settings["decay_epochs"] = recipe.decay_epochs * epochs / recipe.epochs
    return TrainConfig(
        model=arm.model,
        model_kwargs={**study.model_kwargs, **arm.model_kwargs},
        data=study.data,
        output=str(run_folder(study, arm, seed)),
        recipe=arm.recipe,
        epochs=epochs,
        seed=seed,
        **settings,
    )


def _run_state(folder: Path, epochs: int | float) -> str:
    """``finished`` (its summary says all epochs trained), ``partial`` (a checkpoint to resume) or ``new``."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
        if summary["final"]["epoch"] >= epochs:
            return "finished"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return "partial" if (folder / "checkpoints" / "latest").exists() else "new"


def _held_out(summary: dict[str, Any]) -> tuple[str, float, float] | None:
    """(split, top-1 error, top-5 error) of a finished run, from the accuracy its saved model reports (the test
    split when it was evaluated, else the last validation)."""
    from .loop import Run

    accuracy = Run._accuracy(summary, summary.get("final", {}))
    return None if accuracy is None else (accuracy[0], 100.0 - accuracy[1], 100.0 - accuracy[2])


class _StudyFile:
    """``<output>/study.json``: the study's definition (a restart must match it) and each arm's epochs."""

    def __init__(self, study: Study) -> None:
        self.path = Path(study.output) / "study.json"
        self.study = study
        self.state: dict[str, Any] = {
            "definition": study.definition(),
            "seeds": study.seeds,
            "arm_epochs": {},
            "data_path": _data_path(study.data),
        }
        if self.path.is_file():
            saved = json.loads(self.path.read_text())
            if not isinstance(saved, dict) or "definition" not in saved:
                raise ValueError(f"{self.path} is not a study file")
            # compared as the folder stores it: JSON has no tuples, so a tuple argument comes back a list
            old, new = dict(saved["definition"]), json.loads(json.dumps(self.state["definition"]))
            old["data"] = _data_name(str(old.get("data", "")))  # older folders recorded the whole path
            differs = sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))
            if differs:
                details = "; ".join(f"{key}: folder {old.get(key)!r}, now {new.get(key)!r}" for key in differs)
                raise ValueError(
                    f"{study.output} holds a study with other settings ({details}). Rerun it with the same "
                    "settings to go on (--seeds may grow), or choose another --output"
                )
            self.state["arm_epochs"] = saved.get("arm_epochs", {})
            self.state["seeds"] = max(study.seeds, saved.get("seeds", 0))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.state, indent=2) + "\n"
        write_atomically(self.path, lambda partial: partial.write_text(text))


def _broadcast(value: Any, env: Distributed) -> Any:
    """Rank 0's ``value`` on every rank (decisions about the study's files are rank 0's)."""
    if env.world_size == 1:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def _on_main(make: Callable[[], Any], env: Distributed) -> Any:
    """``make()`` on rank 0, its result (or its error, raised on every rank) shared with the others."""
    result, error = None, None
    if env.is_main:
        try:
            result = make()
        except ValueError as problem:
            error = str(problem)
    result, error = _broadcast((result, error), env)
    if error is not None:
        raise ValueError(error)
    return result


def measure_epochs(
    config: TrainConfig, minutes: float, env: Distributed, steps: int = 12, warmup: int = 4
) -> dict[str, Any]:
    """The epochs that fit ``minutes`` of training for this run's model, recipe and data, to a hundredth (the last
    pass of a fractional count is partial): ``steps`` training steps are timed one by one on the real data after
    ``warmup`` steps, and an epoch's time is its steps times the median step's."""
    from .engine import train_one_epoch
    from .loop import Run
    from .recipes import create_loss, create_optimizer, freeze_norm_scales

    run = Run(replace(config, epochs=1, output=str(Path(config.output).parent / ".timing")), env, time.perf_counter())
    try:
        model = run.model.to(env.device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if run.recipe.freeze_norm_scale:
            freeze_norm_scales(model)  # as the run will: frozen scales have no gradients to compute
        optimizer, loss_fn = create_optimizer(model, run.recipe), create_loss(run.recipe)
        if len(run.splits.train) == 0:
            raise ValueError(f"{config.model}: too few training images to time a step")
        # as many epochs as the steps need (a small dataset has fewer than warm-up and timed steps together)
        batches = chain.from_iterable(run.splits.train.epoch(epoch) for epoch in count())
        net = wrap_ddp(model, env)  # the run's gradient all-reduce is timed too

        def train(number: int) -> tuple[float, int]:
            started = time.perf_counter()
            stats = train_one_epoch(net, islice(batches, number), optimizer, loss_fn, run.recipe,
                                    autocast_dtype=run.autocast_dtype, device=env.device)  # fmt: skip
            return time.perf_counter() - started, stats.images

        train(warmup)  # the first steps allocate and pick kernels
        timed = [train(1) for _ in range(steps)]  # images: every rank's, summed (the totals are all-reduced)
        train_images = run.splits.train_images
    finally:
        run.close_data()
    # the median step: a step slowed by a collection or a neighbour's burst does not set the budget
    images_per_second = statistics.median(images / seconds for seconds, images in timed)
    epochs = max(1, math.floor(100 * minutes * 60 * images_per_second / train_images) / 100)
    return {"epochs": epochs, "images_per_second": images_per_second, "train_images": train_images}


def _arm_epochs(study: Study, arm: Arm, state: _StudyFile, env: Distributed, say: Callable[[str], None]) -> int | float:
    if study.epochs is not None:
        return study.epochs
    known = state.state["arm_epochs"].get(arm.name)
    if known is None:
        measured = measure_epochs(run_config(study, arm, 0, 1), study.budget_minutes or 0, env)
        known = _broadcast(measured, env)
        state.state["arm_epochs"][arm.name] = known
        if env.is_main:
            state.save()
            say(f"{arm.name}: {known['images_per_second']:.0f} img/s measured -> {known['epochs']:g} epochs in "
                f"{study.budget_minutes:g} min")  # fmt: skip
    return known["epochs"]


def run_study(study: Study, say: Callable[[str], None] | None = None) -> list[ArmResult]:
    """Train every (arm, seed) run that is not finished, seed by seed, and write the report after each; returns the
    arms' results. Finished runs are never trained again; a run cut short resumes from its last checkpoint."""
    from .loop import fit

    env = Distributed(study.settings.get("device", "auto"))
    say = say or (lambda line: print(line, flush=True))
    talk = say if env.is_main else (lambda line: None)
    try:
        state = _on_main(lambda: _StudyFile(study), env)
        if env.is_main:
            state.save()
        seeds = state.state["seeds"]
        # seed by seed: every arm's first seed before any arm's second, so a study cut short already compares them all
        plan = [(arm, seed) for seed in range(seeds) for arm in study.arms]
        for number, (arm, seed) in enumerate(plan, start=1):
            epochs = _arm_epochs(study, arm, state, env, talk)
            config = run_config(study, arm, seed, epochs)
            folder = Path(config.output)
            status = _broadcast(_run_state(folder, epochs) if env.is_main else None, env)
            head = f"[{number}/{len(plan)}] {arm.name} seed {seed}"
            if status == "finished":
                talk(f"{head}: finished earlier, kept")
                continue
            talk(f"{head}: {'resuming' if status == 'partial' else 'training'} {epochs:g} epochs in {folder}")
            summary = fit(replace(config, resume=str(folder) if status == "partial" else None))
            held_out = _held_out(summary)
            figures = f"top-1 error {held_out[1]:.2f}% ({held_out[0]})" if held_out else "no held-out split"
            talk(f"{head}: {figures}, {summary['train_seconds'] / 60:.1f} min of training")
            if env.is_main:
                write_report(collect_results(study, seeds), study.output, study.title)
        results = collect_results(study, seeds) if env.is_main else []
        if env.is_main:
            paths = write_report(results, study.output, study.title)
            talk(f"report: {', '.join(str(p) for p in paths.values())}")
        return results
    finally:
        env.close()


def collect_results(study: Study, seeds: int | None = None) -> list[ArmResult]:
    """The finished runs of every arm, read from their summaries (each (arm, seed) folder counted once), with each
    arm's parameters and multiply-adds counted on its trained model."""
    saved_file = Path(study.output) / "study.json"
    saved = json.loads(saved_file.read_text()) if saved_file.is_file() else {}
    arm_epochs = saved.get("arm_epochs", {})
    seeds = seeds or max(study.seeds, saved.get("seeds", 0))  # a study's seeds may have grown since it began
    results = []
    for arm in study.arms:
        epochs = study.epochs or (arm_epochs.get(arm.name) or {}).get("epochs")
        result = ArmResult(arm.name, arm.change, _spec(arm), arm.recipe or _base_recipe(arm).name,
                           seeds_planned=seeds, epochs=epochs, paper=arm.paper)  # fmt: skip
        for seed in range(seeds):
            folder = run_folder(study, arm, seed)
            if epochs is None or _run_state(folder, epochs) != "finished":
                continue
            summary = json.loads((folder / "summary.json").read_text())
            held_out = _held_out(summary)
            if held_out is None:
                continue
            result.split, top1, top5 = held_out
            result.top1_errors.append(top1)
            result.top5_errors.append(top5)
            result.train_minutes.append(summary["train_seconds"] / 60)
            result.seeds_done.append(seed)
            if result.parameters is None:
                result.parameters, result.macs = _costs(arm, study, folder / "model", summary["image_size"])
        results.append(result)
    return results


def _spec(arm: Arm) -> str:
    if not arm.model_kwargs:
        return arm.model
    return arm.model + ":" + ",".join(f"{key}={value!r}" for key, value in arm.model_kwargs.items())


def _costs(arm: Arm, study: Study, model_folder: Path, size: int) -> tuple[int | None, int | None]:
    """Parameters and multiply-adds of an arm's network as evaluated (no aux head), with the classes its run saved,
    at its image size."""
    from .. import create_model
    from ..complexity import count_macs, count_parameters

    try:
        num_classes = json.loads((model_folder / "config.json").read_text())["num_classes"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, None
    model = create_model(arm.model, num_classes=num_classes, **{**study.model_kwargs, **arm.model_kwargs})
    in_chans = model.pretrained_cfg.get("input_size", (3,))[0]
    return count_parameters(model), count_macs(model, (in_chans, size, size))


_FILE_KEYS = ("title", "arms", "seeds", "epochs", "budget_minutes", "model_kwargs", "settings", "compress_schedule")
_ARM_KEYS = ("name", "model", "recipe", "change", "settings", "model_kwargs", "paper")


def load_study_file(path: str | os.PathLike) -> dict[str, Any]:
    """A study from a TOML file: ``[[arms]]`` tables (``model`` a spec such as ``"inception_v3:nxn=5"``; optional
    ``name``, ``recipe``, ``change``, ``settings``) and optional top-level ``title``, ``seeds``, ``epochs``,
    ``budget_minutes``, ``model_kwargs`` and ``settings``. Returns ``Study`` keyword arguments (``arms`` as Arms)."""
    from .._validation import check_known_names

    path = Path(path)
    try:
        content = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML ({error})") from None
    try:
        check_known_names(str(path), content, _FILE_KEYS, what="key")
        arms = []
        for index, table in enumerate(content.get("arms", []), start=1):
            check_known_names(f"{path}, arm {index}", table, _ARM_KEYS, what="key")
            if "model" not in table:
                raise ValueError(f'{path}, arm {index}: no model (a registered name, e.g. "inception_v3:nxn=5")')
            model, kwargs = parse_model_spec(table["model"])
            arms.append(Arm(table.get("name", table["model"]), model, {**kwargs, **table.get("model_kwargs", {})},
                            recipe=table.get("recipe"), settings=table.get("settings", {}),
                            change=table.get("change", ""), paper=table.get("paper")))  # fmt: skip
    except TypeError as error:
        raise ValueError(str(error)) from None
    if not arms:
        raise ValueError(f"{path}: no [[arms]] tables")
    return {**{key: content[key] for key in _FILE_KEYS if key in content and key != "arms"}, "arms": arms}


def study_arms(names: Sequence[str]) -> list[Arm]:
    """The arms of a built-in study by name (``STUDIES``)."""
    arms: list[Arm] = []
    for name in names:
        if name not in STUDIES:
            raise ValueError(f"unknown study {name!r}; built in: {', '.join(STUDIES)} (or a .toml file)")
        arms.extend(STUDIES[name])
    return arms
