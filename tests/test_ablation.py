"""Ablation studies (``inceptionzoo ablate``): arms run and report, a killed study resumes only what is missing, the
Table 3 study's eight arms carry exactly the paper's changes, the torchrun path, the statistics and the errors."""

import itertools
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, fields
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import inceptionzoo
from conftest import write_photo_shards, write_squares
from inceptionzoo.train import RECIPES, loop
from inceptionzoo.train import study as study_module
from inceptionzoo.train.ablate import main as ablate_main
from inceptionzoo.train.config import TrainConfig, resolve_recipe
from inceptionzoo.train.loop import TrainingInterrupted
from inceptionzoo.train.study import (
    ADAPTATIONS,
    TABLE3,
    Arm,
    Study,
    collect_results,
    load_study_file,
    parse_model_spec,
    run_config,
    run_study,
)
from inceptionzoo.train.study_report import difference, interval, t_quantile_975

TINY = "inception_v1_cifar"  # a CIFAR-size GoogLeNet: a step takes milliseconds at width 0.125


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> Path:
    return write_squares(tmp_path_factory.mktemp("squares"), {"train": 12, "test": 4})


def tiny_study(data: Path, output: Path, **changes) -> Study:
    arms = [
        Arm("narrow", TINY, {"width_multiplier": 0.125}, change="baseline"),
        Arm("wider", TINY, {"width_multiplier": 0.25}, change="x2 width"),
    ]
    settings = {"batch_size": 12, "threads": 1, "val_size": 0, "eval_test": True, "amp": "none",
                "cache_dir": str(output.parent / "cache")}  # fmt: skip
    return Study(**{"arms": arms, "data": str(data), "output": str(output), "seeds": 2, "epochs": 1,
                    "settings": settings, **changes})  # fmt: skip


def test_a_two_arm_study_runs_and_writes_its_table_and_plot(squares, tmp_path):
    lines: list[str] = []
    results = run_study(tiny_study(squares, tmp_path / "study"), say=lines.append)
    assert [r.name for r in results] == ["narrow", "wider"]
    assert all(r.seeds_done == [0, 1] and len(r.top1_errors) == 2 and r.split == "test" for r in results)
    assert results[0].parameters < results[1].parameters and results[0].macs < results[1].macs
    report = json.loads((tmp_path / "study" / "report.json").read_text())
    rows = report["arms"]
    assert rows[0]["delta_top1"] is None and rows[1]["delta_top1"]["half_width"] is not None
    expected = rows[1]["top1_error"]["mean"] - rows[0]["top1_error"]["mean"]
    assert math.isclose(rows[1]["delta_top1"]["mean"], expected)
    table = (tmp_path / "study" / "report.md").read_text()
    assert "| narrow | baseline | 2/2 |" in table and "| wider | x2 width | 2/2 |" in table
    assert (tmp_path / "study" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "study" / "report.csv").read_text().splitlines()[0].startswith("arm,change,model,recipe")
    progress = [line for line in lines if line.startswith("[")]
    assert len(progress) == 8 and progress[1].startswith("[1/4] narrow seed 0: top-1 error")  # start + end per run
    # the seeds are distinct runs: their own seed, their own folder
    configs = [json.loads(p.read_text()) for p in sorted((tmp_path / "study" / "runs").glob("*/seed*/config.json"))]
    assert progress[3].startswith("[2/4] wider seed 0: top-1 error")  # every arm's first seed comes first
    assert sorted((c["model_kwargs"]["width_multiplier"], c["seed"]) for c in configs) == [
        (0.125, 0), (0.125, 1), (0.25, 0), (0.25, 1)
    ]  # fmt: skip
    # a finished run keeps one checkpoint (enough to resume), not the training default of two
    assert all(c["keep_checkpoints"] == 1 for c in configs)


def test_a_study_killed_mid_run_resumes_only_what_is_missing(squares, tmp_path, monkeypatch):
    """Killed in the second run's second epoch: the rerun keeps the finished run (its files untouched), resumes the
    cut run from its checkpoint, trains the rest, and counts every run once. Runs go seed by seed."""
    study = tiny_study(squares, tmp_path / "study", epochs=2)
    calls: list[tuple[str, str | None]] = []
    real_fit = loop.fit

    def counting_fit(config):
        calls.append((Path(config.output).relative_to(tmp_path / "study").as_posix(), config.resume))
        return real_fit(config)

    monkeypatch.setattr(loop, "fit", counting_fit)
    real_save = loop.Run.save_epoch
    saved: list[int] = []

    def dies_in_the_second_run(self, metrics, row, *args, **kwargs):
        real_save(self, metrics, row, *args, **kwargs)
        saved.append(row["epoch"])
        if len(saved) == 3:  # run 1 saved epochs 0 and 1; run 2 saved epoch 0
            raise KeyboardInterrupt

    monkeypatch.setattr(loop.Run, "save_epoch", dies_in_the_second_run)
    with pytest.raises(TrainingInterrupted):
        run_study(study, say=lambda line: None)
    finished = tmp_path / "study" / "runs" / "narrow" / "seed0" / "summary.json"
    before = finished.stat().st_mtime_ns, finished.read_text()
    monkeypatch.setattr(loop.Run, "save_epoch", real_save)
    calls.clear()
    lines: list[str] = []
    results = run_study(study, say=lines.append)
    assert calls == [("runs/wider/seed0", str(tmp_path / "study" / "runs" / "wider" / "seed0")),
                     ("runs/narrow/seed1", None), ("runs/wider/seed1", None)]  # fmt: skip
    assert (finished.stat().st_mtime_ns, finished.read_text()) == before
    assert "[1/4] narrow seed 0: finished earlier, kept" in lines
    assert [len(r.top1_errors) for r in results] == [2, 2]
    resumed = tmp_path / "study" / "runs" / "wider" / "seed0"
    assert [json.loads(line)["epoch"] for line in (resumed / "metrics.jsonl").read_text().splitlines()] == [0, 1]
    calls.clear()
    run_study(study, say=lambda line: None)  # all done: nothing trains again
    assert calls == []


def test_a_restart_with_other_settings_is_refused_but_more_seeds_are_added(squares, tmp_path, monkeypatch):
    run_study(tiny_study(squares, tmp_path / "study", seeds=1, arms=[Arm("one", TINY, {"width_multiplier": 0.125})]),
              say=lambda line: None)  # fmt: skip
    with pytest.raises(ValueError, match="holds a study with other settings.*epochs: folder 1, now 2"):
        run_study(tiny_study(squares, tmp_path / "study", seeds=1, epochs=2,
                             arms=[Arm("one", TINY, {"width_multiplier": 0.125})]))  # fmt: skip
    with pytest.raises(ValueError, match="data: folder 'squares.*', now 'other'"):
        other = tmp_path / "other"
        shutil.copytree(squares, other)
        run_study(tiny_study(other, tmp_path / "study", seeds=1, arms=[Arm("one", TINY, {"width_multiplier": 0.125})]))
    # the same data in another place (a study folder copied to another machine) goes on, and more seeds are added;
    # also from a folder written before study files recorded the data's name instead of its whole path
    saved = json.loads((tmp_path / "study" / "study.json").read_text())
    saved["definition"]["data"] = f"/an/old/machine/{squares.name}"
    (tmp_path / "study" / "study.json").write_text(json.dumps(saved))
    moved = tmp_path / "elsewhere" / squares.name
    shutil.copytree(squares, moved)
    more_seeds = tiny_study(moved, tmp_path / "study", seeds=2, arms=[Arm("one", TINY, {"width_multiplier": 0.125})])
    results = run_study(more_seeds, say=lambda line: None)
    assert results[0].seeds_done == [0, 1]
    assert json.loads((tmp_path / "study" / "study.json").read_text())["data_path"] == str(moved.resolve())


def test_a_study_whose_arm_takes_a_tuple_goes_on_with_more_seeds(squares, tmp_path):
    # the folder stores the definition as JSON, where the tuple comes back a list: still the same study
    arm = Arm("fast", "inception_fast_cifar", {"widths": (8, 8, 8), "branch_fractions": (0.25, 0.75, 0)},
              recipe="cifar")  # fmt: skip
    run_study(tiny_study(squares, tmp_path / "study", seeds=1, arms=[arm]), say=lambda line: None)
    results = run_study(tiny_study(squares, tmp_path / "study", seeds=2, arms=[arm]), say=lambda line: None)
    assert results[0].seeds_done == [0, 1]


def test_a_wall_clock_budget_measures_each_arm_once_and_keeps_its_epochs(squares, tmp_path, monkeypatch):
    measured: list[str] = []
    real = study_module.measure_epochs

    def counting(config, minutes, env, steps=12):
        measured.append(config.model_kwargs["width_multiplier"])
        return real(config, minutes, env, steps=2)

    monkeypatch.setattr(study_module, "measure_epochs", counting)
    study = tiny_study(squares, tmp_path / "study", epochs=None, budget_minutes=0.01, seeds=1)
    results = run_study(study, say=lambda line: None)
    assert measured == [0.125, 0.25]
    saved = json.loads((tmp_path / "study" / "study.json").read_text())["arm_epochs"]
    assert set(saved) == {"narrow", "wider"} and all(
        v["epochs"] >= 1 and v["images_per_second"] > 0 for v in saved.values()
    )
    assert [r.epochs for r in results] == [saved["narrow"]["epochs"], saved["wider"]["epochs"]]
    run_study(study, say=lambda line: None)
    assert measured == [0.125, 0.25]  # not measured again: the arms keep the epochs they were given


def _config_fields(name: str, kwargs: dict) -> tuple[str, dict]:
    with torch.device("meta"):
        model = inceptionzoo.create_model(name, **kwargs)
    return type(model).__name__, asdict(model.config)


def _differences(a: dict, b: dict) -> dict:
    return {key: (a.get(key), b.get(key)) for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)}


def test_table3_builds_the_eight_rows_each_adding_exactly_the_papers_change(tmp_path):
    """Rows 1-4 change only the network under one momentum-SGD recipe, rows 5-6 only the recipe (RMSProp with
    TensorFlow's epsilon, then label smoothing), rows 7-8 only the network (the 7x7 stem factorized, then the BN
    auxiliary); the Section 9 adaptation is the same for every row and keeps each row's own stem."""
    adapt = {**ADAPTATIONS["section9"], "width_multiplier": 0.25}
    study = Study(list(TABLE3), data=str(tmp_path), output=str(tmp_path / "s"), epochs=10, model_kwargs=adapt)
    assert [arm.model for arm in TABLE3] == ["inception_v1", "inception_v1_bn", "bn_inception", "inception_v2",
                                             "inception_v2_rmsprop", "inception_v2_ls", "inception_v2_f7x7",
                                             "inception_v3"]  # fmt: skip
    built = []
    for arm in TABLE3:
        config = run_config(study, arm, seed=0, epochs=10)
        assert config.model_kwargs == adapt and config.epochs == 10
        assert config.decay_epochs == pytest.approx(2.0 * 10 / 100)  # the paper's 0.94 every 2 of 100 epochs
        with torch.device("meta"):
            model = inceptionzoo.create_model(arm.model, **config.model_kwargs)
        recipe = asdict(resolve_recipe(config, model, world_size=1))
        built.append((*_config_fields(arm.model, config.model_kwargs), recipe))
    for (_kind, cfg, _), row in zip(built, TABLE3, strict=True):
        assert cfg["stem_stride"] == 1 and cfg["stem_pool"] is False and cfg["width_multiplier"] == 0.25, row.name
    recipe_changes = [_differences(a[2], b[2]) for a, b in itertools.pairwise(built)]
    model_changes = [_differences(a[1], b[1]) if a[0] == b[0] else "family" for a, b in itertools.pairwise(built)]
    shared = {"name", "description"}
    # rows 1 -> 2 -> 3 -> 4: the network only
    assert model_changes[0] == {"norm": ("lrn", "batchnorm")}
    assert {"branch3", "modules", "stage_pools"} <= set(model_changes[1]) and model_changes[2] == "family"
    assert all(change == {} for change in recipe_changes[:3])
    # 4 -> 5: RMSProp (decay 0.9, epsilon 1.0 inside the root: timm's rmsproptf); 5 -> 6: label smoothing 0.1
    assert model_changes[3] == {} and model_changes[4] == {}
    assert set(recipe_changes[3]) - shared == {"optimizer", "eps", "optimizer_kwargs"}
    assert recipe_changes[3]["optimizer"] == ("momentum", "rmsproptf") and recipe_changes[3]["eps"] == (None, 1.0)
    assert recipe_changes[3]["optimizer_kwargs"] == ({}, {"alpha": 0.9})
    assert set(recipe_changes[4]) - shared == {"label_smoothing"} and recipe_changes[4]["label_smoothing"] == (0, 0.1)
    # 6 -> 7: the 7x7 stem factorized; 7 -> 8: the aux head's fully connected layer batch-normalized
    assert model_changes[5] == {"stem": ("conv_7x7", "factorized_7x7")} and recipe_changes[5] == {}
    assert model_changes[6] == {"aux_fc_norm": (False, True)} and recipe_changes[6] == {}
    # the paper's recipe throughout: lr 0.045 at batch 32, decay 0.94, clipping 2.0, parameter averaging
    for _, _, recipe in built:
        assert (recipe["lr"], recipe["batch_size"], recipe["decay_rate"], recipe["clip_grad"]) == (0.045, 32, 0.94, 2.0)
        assert recipe["ema_decay"] is not None and recipe["aux_logits"] is True


def test_table3_arms_train_at_32_pixels_with_their_aux_heads(tmp_path):
    """The adapted rows run a training step at CIFAR's 32x32 with their auxiliary heads, and the 7x7 stem stays a
    7x7 (rows 4-6) where rows 7-8 have three 3x3 convolutions."""
    adapt = {**ADAPTATIONS["section9"], "width_multiplier": 0.125}
    grids = {}
    for arm in TABLE3:
        model = inceptionzoo.create_model(arm.model, num_classes=10, aux_logits=True, **adapt)
        model.train()
        outputs = model(torch.randn(2, 3, 32, 32))
        assert outputs[0].shape == (2, 10) and all(aux.shape == (2, 10) for aux in outputs[1:]), arm.name
        first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        seven = arm.model in ("inception_v1", "inception_v1_bn", "bn_inception", "inception_v2",
                              "inception_v2_rmsprop", "inception_v2_ls")  # fmt: skip
        assert first.kernel_size == ((7, 7) if seven else (3, 3)) and first.stride == (1, 1), arm.name
        grids[arm.name] = [
            tuple(f.shape[-2:])
            for f in model.eval().forward_intermediates(torch.zeros(1, 3, 32, 32), intermediates_only=True)
        ]
    # the padded 7x7 at stride 1 gives the grid of the three 3x3 it stands for: rows 4-8 differ in nothing else
    assert len({tuple(grids[arm.name]) for arm in TABLE3[3:]}) == 1


def test_the_command_line_runs_a_study_file_and_rewrites_the_report(squares, tmp_path, capsys):
    study_file = tmp_path / "widths.toml"
    study_file.write_text(
        'title = "widths"\nseeds = 1\nepochs = 1\n[settings]\nbatch_size = 12\nval_size = 0\neval_test = true\n'
        'threads = 1\namp = "none"\n'
        f'cache_dir = "{tmp_path / "cache"}"\n'
        '[[arms]]\nname = "narrow"\nmodel = "inception_v1_cifar:width_multiplier=0.125"\nchange = "baseline"\n'
        '[[arms]]\nname = "narrow, no smoothing"\nmodel = "inception_v1_cifar:width_multiplier=0.125"\n'
        'change = "label smoothing 0"\n[arms.settings]\nlabel_smoothing = 0.0\n'
    )
    output = tmp_path / "out"
    assert ablate_main(["--study", str(study_file), "--data", str(squares), "--output", str(output)]) == 0
    report = json.loads((output / "report.json").read_text())
    assert report["title"] == "widths" and [row["arm"] for row in report["arms"]] == ["narrow", "narrow, no smoothing"]
    second = json.loads((output / "runs" / "narrow_no_smoothing" / "seed0" / "config.json").read_text())
    assert second["label_smoothing"] == 0.0 and second["model_kwargs"] == {"width_multiplier": 0.125}
    (output / "report.md").unlink()
    assert ablate_main(["--study", str(study_file), "--data", str(squares), "--output", str(output),
                        "--report-only"]) == 0  # fmt: skip
    assert "| narrow | baseline | 1/1 |" in (output / "report.md").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--arms", TINY, "--epochs", "1", "--set", "batch_sise=4"], "did you mean 'batch_size'"),
        (["--arms", TINY, "--epochs", "1", "--set", "seed=3"], "seed are set by the study itself"),
        (["--arms", TINY], "no budget"),
        (["--arms", TINY, "--epochs", "1", "--set", "batch_size"], "--set takes key=value pairs, got 'batch_size'"),
        (["--arms", "inception_v1_cifar:width"], "is not key=value"),
        (["--study", "table4", "--epochs", "1"], "unknown study 'table4'; built in: table3"),
        (["--arms", TINY, TINY, "--epochs", "1"], "arm names must be distinct"),
    ],
)
def test_command_line_mistakes_are_explained(squares, tmp_path, capsys, argv, message):
    try:
        code = ablate_main([*argv, "--data", str(squares), "--output", str(tmp_path / "s")])
    except SystemExit as exit_:  # argparse's usage errors exit with 2 as well
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_model_specs_parse_literals_and_tuples():
    assert parse_model_spec("inception_v3") == ("inception_v3", {})
    assert parse_model_spec("inception_v3:factorize_nxn=False, nxn=5") == (
        "inception_v3", {"factorize_nxn": False, "nxn": 5}
    )  # fmt: skip
    assert parse_model_spec("inception_fast_cifar:branch_fractions=(0, 1, 0),grid_reduction=pool_first") == (
        "inception_fast_cifar", {"branch_fractions": (0, 1, 0), "grid_reduction": "pool_first"}
    )  # fmt: skip


def test_the_example_study_files_build_their_arms():
    """Every study file under examples/studies loads, and each arm's model builds with its arguments."""
    files = sorted((Path(__file__).parents[1] / "examples" / "studies").glob("*.toml"))
    assert files
    for path in files:
        options = load_study_file(path)
        assert options["arms"], path
        for arm in options["arms"]:
            model = inceptionzoo.create_model(arm.model, **arm.model_kwargs)
            assert sum(p.numel() for p in model.parameters()) > 0, (path.name, arm.name)
            assert arm.recipe is None or arm.recipe in RECIPES, (path.name, arm.name)
            assert set(arm.settings) <= {f.name for f in fields(TrainConfig)}, (path.name, arm.name)


def test_a_study_file_with_an_unknown_key_names_it(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[[arms]]\nmodel = "inception_v3"\nrecipee = "rmsprop"\n')
    with pytest.raises(ValueError, match="unknown key.*recipee.*did you mean 'recipe'"):
        load_study_file(path)


def test_student_t_quantiles_and_intervals():
    assert t_quantile_975(1) == 12.706 and t_quantile_975(2.9) == 4.303 and t_quantile_975(1000) == 1.980
    single = interval([5.0])
    assert single.std is None and single.half_width is None
    three = interval([1.0, 2.0, 3.0])
    assert three.mean == 2.0 and three.std == 1.0 and three.half_width == pytest.approx(4.303 / math.sqrt(3))
    # Welch: equal variances and counts give df = 2 (n - 1)
    delta = difference(interval([1.0, 2.0, 3.0]), interval([2.0, 3.0, 4.0]))
    assert delta.mean == 1.0 and delta.half_width == pytest.approx(2.776 * math.sqrt(2 / 3))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 100), min_size=2, max_size=6), st.floats(-20, 20))
def test_a_shift_moves_the_difference_and_not_its_interval(values, shift):
    base = interval(values)
    moved = difference(base, interval([v + shift for v in values]))
    assert moved.mean == pytest.approx(shift, abs=1e-9)
    if base.std and base.std > 1e-6:
        assert moved.half_width == pytest.approx(
            t_quantile_975(2 * (len(values) - 1)) * base.std * math.sqrt(2 / len(values)), rel=1e-6
        )


def test_the_report_leaves_out_unfinished_runs(squares, tmp_path):
    study = tiny_study(squares, tmp_path / "study", seeds=1)
    run_study(study, say=lambda line: None)
    (tmp_path / "study" / "runs" / "wider" / "seed0" / "summary.json").unlink()
    results = collect_results(study)
    assert [len(r.top1_errors) for r in results] == [1, 0]


@pytest.mark.xdist_group("torchrun")  # one torchrun job at a time on the machine
@pytest.mark.slow
def test_a_study_under_torchrun_distributes_each_run_over_two_processes(squares, tmp_path):
    """Two processes, a wall-clock budget: each arm's speed is measured once over both ranks (on a clock that reads
    one second per timed call, so the figure is exact), and each run is distributed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    study = tmp_path / "ablate_with_a_fake_clock.py"
    study.write_text(
        "import itertools, sys, types\n"
        "import inceptionzoo.train.study as study\n"
        "ticks = itertools.count()\n"
        "study.time = types.SimpleNamespace(perf_counter=lambda: float(next(ticks)))\n"
        "from inceptionzoo.train.ablate import main\n"
        "sys.exit(main())\n"
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(study), "--arms", f"{TINY}:width_multiplier=0.125",
               f"{TINY}:width_multiplier=0.25", "--data", str(squares), "--output", str(tmp_path / "study"),
               "--budget-minutes", "0.06", "--seeds", "1", "--set", "batch_size=6", "val_size=0", "amp=none",
               f"cache_dir={tmp_path / 'cache'}", "--eval-test"]  # fmt: skip
    # the limit is a bound on a hang, not a speed claim
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in sorted((tmp_path / "study").glob("runs/*/seed0/summary.json"))]
    assert len(summaries) == 2
    assert all(s["world_size"] == 2 and s["replicas_identical"] is True for s in summaries)
    assert all(s["train_images"] == 36 and s["test"]["images"] == 12 for s in summaries)
    assert result.stdout.count("seed 0: top-1 error") == 2  # one line per run, from rank 0 only
    # 3 steps of 6 images per rank an epoch: 4 to warm up, then 12 timed one at a time, each 12 images (both ranks')
    # in one (fake) second; 0.06 minutes of 12 images/s is 1.2 epochs of 36 images (counting each rank's images
    # twice gave 2.4)
    measured = json.loads((tmp_path / "study" / "study.json").read_text())["arm_epochs"]
    assert [(m["images_per_second"], m["epochs"]) for m in measured.values()] == [(12.0, 1.2), (12.0, 1.2)]
    report = json.loads((tmp_path / "study" / "report.json").read_text())
    assert [len(row["top1_errors"]) for row in report["arms"]] == [1, 1]


@pytest.mark.xdist_group("torchrun")  # one torchrun job at a time on the machine
@pytest.mark.slow
def test_the_full_scale_table3_command_runs_end_to_end_on_tiny_shards(tmp_path):
    """docs/ablation.md's ImageNet command, on a tiny shard dataset: the eight full-size networks at their own input
    sizes (224 and 299), the paper's recipes, two processes, every run distributed and reported."""
    data = write_photo_shards(tmp_path / "shards", {"train": (4, 2), "val": (2, 2)})  # one step per rank
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "inceptionzoo.train.ablate", "--study", "table3", "--data", str(data),
               "--output", str(tmp_path / "study"), "--epochs", "1", "--seeds", "1", "--eval-test",
               "--set", "batch_size=2", "workers=0", f"cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    # the limit is a bound on a hang, not a speed claim
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted((tmp_path / "study" / "runs").glob("*/seed0"))
    assert len(runs) == 8
    for run, arm in zip(runs, TABLE3, strict=True):
        config = json.loads((run / "config.json").read_text())
        summary = json.loads((run / "summary.json").read_text())
        recipe = config["resolved_recipe"]
        assert config["model"] == arm.model and config["model_kwargs"] == {} and summary["world_size"] == 2
        assert summary["image_size"] == (224 if arm.model.startswith(("inception_v1", "bn_")) else 299)
        # the paper's recipe: lr 0.045 per 32 images (scaled to the global batch of 4), 0.94 every 2 of 100 epochs
        # (every 0.02 of this 1-epoch budget), clipping 2.0, parameter averaging, the aux heads trained
        assert recipe["lr"] == pytest.approx(0.045 * 4 / 32) and recipe["decay_epochs"] == pytest.approx(0.02)
        assert (recipe["decay_rate"], recipe["clip_grad"], recipe["ema_decay"]) == (0.94, 2.0, 0.9999)
        assert config["aux_logits"] is None and recipe["aux_logits"] is True
        assert recipe["optimizer"] == ("momentum" if arm.recipe == "momentum_sgd" else "rmsproptf")
    report = json.loads((tmp_path / "study" / "report.json").read_text())
    assert [row["arm"] for row in report["arms"]] == [arm.name for arm in TABLE3]
    assert all(len(row["top1_errors"]) == 1 and row["split"] == "test" for row in report["arms"])  # val/ as test/
