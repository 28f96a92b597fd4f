"""The training loop end to end: outputs, exact resume, atomic checkpoints, torchrun with two processes, the CLI,
and fine-tuning pretrained weights served by the loopback Hub on real CIFAR-10 images."""

import json
import os
import shlex
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import timm
import torch
from safetensors.torch import load_file, save
from torch import nn

import inceptionzoo
from conftest import crash_in_epoch, realistic_batchnorm, write_squares
from hub_server import HubServer
from inceptionzoo.train import command, loop
from inceptionzoo.train import resume as checkpoint_module
from inceptionzoo.train.config import RECIPE_OVERRIDES, RESUME_MUST_MATCH, check_resume_matches, refuse_finished_run
from inceptionzoo.train.loop import TrainConfig, fit
from inceptionzoo.train.resume import find_checkpoint, save_training_state
from inceptionzoo.train.validate import resolve_model_source

FOUR_COLOURS = ((200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40))
TIMING_FIELDS = {"train_images_per_s", "epoch_s", "elapsed_s"}


@pytest.fixture(scope="module")
def colours(tmp_path_factory) -> Path:
    """Four classes of noisy solid colours (24 train and 8 test images each): learnable in a few steps."""
    return write_squares(tmp_path_factory.mktemp("colours"), {"train": 24, "test": 8}, colours=FOUR_COLOURS)


def quick(data: Path, output: Path, **changes) -> TrainConfig:
    settings = dict(data=str(data), output=str(output), cache_dir=str(output.parent / "cache"), val_size=16,
                    epochs=3, batch_size=16, threads=1, progress=False)  # fmt: skip
    return TrainConfig(**{**settings, **changes})


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


@pytest.mark.lowest
def test_a_run_writes_metrics_plot_checkpoints_and_a_loadable_model(colours, tmp_path):
    summary = fit(quick(colours, tmp_path / "run", eval_test=True))
    run = tmp_path / "run"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    csv_lines = (run / "metrics.csv").read_text().splitlines()
    header = csv_lines[0].split(",")
    assert len(csv_lines) == 4 and {"train_loss", "train_top1", "val_top1", "val_top5", "lr"} <= set(header)
    assert float(csv_lines[-1].split(",")[header.index("val_top1")]) == pytest.approx(rows[-1]["val_top1"])
    assert (run / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]  # it learns
    assert summary["test"]["images"] == 32 and 0 <= summary["test"]["top1"] <= 100
    assert json.loads((run / "summary.json").read_text())["test"] == summary["test"]
    # named by the epochs completed, as the log lines count them
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_0002", "epoch_0003", "latest"]
    assert find_checkpoint(run) == run / "checkpoints" / "epoch_0003"
    model = inceptionzoo.create_model(f"local-dir:{run / 'model'}", pretrained=True)
    assert model.num_classes == 4
    saved_ema = load_file(str(run / "checkpoints" / "epoch_0003" / "ema.safetensors"))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved_ema.items())  # the EMA is what is saved


@pytest.mark.slow
def test_a_compiled_run_trains_and_saves_the_plain_model(colours, tmp_path, monkeypatch):
    """--compile runs the training step through torch.compile (its dropout draws differ from eager's, so the
    figures are not compared with an eager run); evaluation and the saved weights use the plain model."""
    compiled_modules = []

    def recording_compile(module, *args, **kwargs):
        compiled_modules.append(module)
        # dynamo's tracing and AOT autograd, as in the real run; inductor's code generation (about 100 s of C++
        # compiling here, and torch's to test) is left out
        return torch.compile(module, *args, **{**kwargs, "backend": "aot_eager"})

    monkeypatch.setattr(loop, "torch", SimpleNamespace(**{**vars(torch), "compile": recording_compile}))
    summary = fit(quick(colours, tmp_path / "run", compile=True, ema=False))
    assert len(compiled_modules) == 1 and isinstance(compiled_modules[0], nn.Module)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]  # it learns
    assert "val_top1" in summary["final"] and summary["epochs"] == 3  # evaluated with the plain model
    assert summary["final"]["epoch"] == 3  # epochs completed, counted as "epochs" counts them
    weights = read_weights(tmp_path / "run" / "model")
    assert not any("_orig_mod" in key for key in weights)  # saved as the plain model
    model = inceptionzoo.create_model(f"local-dir:{tmp_path / 'run' / 'model'}", pretrained=True)
    assert model.num_classes == 4


@pytest.mark.slow
def test_resume_ends_with_the_same_weights_as_an_uninterrupted_run(colours, tmp_path, monkeypatch):
    fit(quick(colours, tmp_path / "straight"))
    crash_in_epoch(monkeypatch, quick(colours, tmp_path / "interrupted"))
    checkpoints = tmp_path / "interrupted" / "checkpoints"
    assert find_checkpoint(tmp_path / "interrupted").name == "epoch_0001"
    # as an earlier version named it (folders numbered from 0): such a run resumes all the same
    (checkpoints / "epoch_0001").rename(checkpoints / "epoch_0000")
    (checkpoints / "latest").write_text(json.dumps({"checkpoint": "epoch_0000", "epoch": 0}))
    with pytest.raises(FileExistsError, match="--resume"):
        fit(quick(colours, tmp_path / "interrupted"))
    with pytest.raises(ValueError, match="lr"):
        fit(quick(colours, tmp_path / "interrupted", lr=0.5, resume=str(tmp_path / "interrupted")))
    fit(quick(colours, tmp_path / "interrupted", resume=str(tmp_path / "interrupted")))

    for name in ("model", "ema"):
        straight = load_file(str(tmp_path / "straight" / "checkpoints" / "epoch_0003" / f"{name}.safetensors"))
        resumed = load_file(str(tmp_path / "interrupted" / "checkpoints" / "epoch_0003" / f"{name}.safetensors"))
        assert straight.keys() == resumed.keys()
        assert all(torch.equal(straight[k], resumed[k]) for k in straight), name

    def metrics(run: str) -> list[dict]:
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k not in TIMING_FIELDS} for line in lines]

    assert metrics("interrupted") == metrics("straight")  # one row per epoch, same figures


def test_a_crash_while_writing_a_checkpoint_keeps_the_last_complete_one(tmp_path, monkeypatch):
    model = torch.nn.Linear(3, 2)
    save_training_state(tmp_path, 0, model, {"epoch": 0})
    real_save = torch.save

    def dies_mid_write(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"half a pickle")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", dies_mid_write)
    with torch.no_grad():
        model.weight.add_(1)
    with pytest.raises(OSError, match="disk full"):
        save_training_state(tmp_path, 1, model, {"epoch": 1})
    monkeypatch.setattr(checkpoint_module.torch, "save", real_save)
    latest = find_checkpoint(tmp_path)
    assert latest.name == "epoch_0000" and not (tmp_path / "epoch_0001").exists()
    assert torch.load(latest / "state.pt", weights_only=True) == {"epoch": 0}
    assert not torch.equal(read_weights(latest)["weight"], model.weight)  # the old weights, intact
    save_training_state(tmp_path, 1, model, {"epoch": 1})
    assert find_checkpoint(tmp_path).name == "epoch_0001"
    assert not list(tmp_path.glob(".*partial"))  # the broken attempt was cleaned up by the retry


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    # the limit is a bound on a hang, not a speed claim
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)


@pytest.mark.xdist_group("torchrun")  # one torchrun job at a time on the machine
@pytest.mark.slow
@pytest.mark.lowest
def test_two_process_torchrun_keeps_replicas_identical_and_writes_once(colours, tmp_path):
    run = tmp_path / "ddp"
    result = torchrun(
        "-m", "inceptionzoo.train", "--data", str(colours), "--output", str(run), "--cache-dir", str(tmp_path / "c"),
        "--val-size", "16", "--epochs", "2", "--batch-size", "8", "--eval-test", "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["replicas_identical"] is True
    assert summary["train_images"] == 80 and summary["test"]["images"] == 32  # every test image once, in all
    assert result.stdout.count("done in") == 1  # only rank 0 reports
    written = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    expected = [
        "checkpoints", "checkpoints/epoch_0001", *[f"checkpoints/epoch_0001/{f}" for f in ("ema.safetensors",
        "model.safetensors", "state.pt")], "checkpoints/epoch_0002", *[f"checkpoints/epoch_0002/{f}" for f in
        ("ema.safetensors", "model.safetensors", "state.pt")], "checkpoints/latest", "config.json", "metrics.csv",
        "metrics.jsonl", "metrics.png", "model", "model/README.md", "model/config.json", "model/model.safetensors",
        "summary.json",
    ]  # fmt: skip
    assert written == expected
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    refused = torchrun("-m", "inceptionzoo.train", "--data", str(colours), "--output", str(tmp_path / "sync"),
                       "--sync-bn", "--epochs", "1", "--no-progress", cwd=tmp_path)  # fmt: skip
    assert refused.returncode != 0 and "SyncBatchNorm does not run on CPU" in refused.stderr


@pytest.mark.slow
def test_pretrained_fine_tuning_from_the_loopback_hub(cifar_subset, tmp_path, monkeypatch):
    torch.manual_seed(0)
    source = realistic_batchnorm(timm.create_model("inception_v3", aux_logits=True), size=299, batch=2)
    served = {k: v.contiguous() for k, v in source.state_dict().items()}
    server = HubServer()
    server.add_repo("timm/inception_v3.tv_in1k", {"model.safetensors": save(served)})
    server.start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    try:
        # learning rate 0: what comes out must be the served weights, with a new 10-class classifier
        summary = fit(quick(cifar_subset, tmp_path / "finetune", model="inception_v3.tv_in1k", pretrained=True,
                            val_size=0, epochs=1, batch_size=10, lr=0.0, eval_test=True))  # fmt: skip
    finally:
        server.stop()
    assert summary["image_size"] == 299 and summary["train_images"] == 20 and summary["test"]["images"] == 10
    tuned = read_weights(tmp_path / "finetune" / "model")
    assert tuned["fc.weight"].shape == (10, 2048) and not any(k.startswith("AuxLogits") for k in tuned)
    for key in ("Conv2d_1a_3x3.conv.weight", "Mixed_6b.branch7x7_2.conv.weight", "Mixed_7c.branch_pool.conv.weight"):
        assert torch.equal(tuned[key], served[key]), key
    config = json.loads((tmp_path / "finetune" / "model" / "config.json").read_text())
    assert config["num_classes"] == 10 and config["pretrained_cfg"]["input_size"] == [3, 299, 299]


@pytest.mark.slow
@pytest.mark.parametrize("muon_lr", [None, 0.12], ids=["sgd", "muon"])
def test_the_fast_recipe_trains_with_every_trick_and_resumes_exactly(colours, tmp_path, monkeypatch, muon_lr):
    """cifar_fast end to end: the stem is whitened from the data and stays frozen, norm scales stay at 1, the run
    ends on lookahead's slow weights, and a run resumed after a crash (its optimizer state holding the slow
    weights) ends with the same weights, bit for bit, as one that was never interrupted; with --muon-lr too, where
    two optimizers' states are saved and restored as one."""
    settings = dict(model="inception_fast_cifar", batch_size=8, eval_test=True, muon_lr=muon_lr)
    full = fit(quick(colours, tmp_path / "straight", **settings))
    assert full["test"]["translate_tta"] == 1 and full["final"]["epoch"] == 3
    assert json.loads((tmp_path / "straight" / "config.json").read_text())["resolved_recipe"]["muon_lr"] == muon_lr
    weights = read_weights(tmp_path / "straight" / "model")
    stem = weights["features.0.weight"]
    assert not torch.equal(stem, inceptionzoo.create_model("inception_fast_cifar").features[0].weight)
    assert torch.equal(stem[12:], -stem[:12])  # whitening filters and their negatives, untouched by training
    norm_scales = [value for key, value in weights.items() if key.endswith("bn.weight")]
    assert norm_scales and all(torch.equal(v, torch.ones_like(v)) for v in norm_scales)

    crash_in_epoch(monkeypatch, quick(colours, tmp_path / "interrupted", **settings))
    resumed = fit(quick(colours, tmp_path / "interrupted", **settings, resume=str(tmp_path / "interrupted")))
    assert resumed["test"] == full["test"]
    again = read_weights(tmp_path / "interrupted" / "model")
    assert all(torch.equal(again[key], weights[key]) for key in weights)


def test_model_kwargs_build_every_model_of_a_run_and_its_saved_model(colours, tmp_path, monkeypatch):
    """--model-kwargs reach the model the run trains (figure 6's whole 7x7 convolutions instead of the 1x7 / 7x1
    pairs here), the run's config.json, the saved model that its folder reloads, and the resume check, which names
    them before any weights are compared."""
    kwargs = {"factorize_nxn": False}
    settings = dict(model="inception_v3_cifar", model_kwargs=kwargs, epochs=2, val_size=0)
    crash_in_epoch(monkeypatch, quick(colours, tmp_path / "run", **settings))
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["model_kwargs"] == kwargs
    with pytest.raises(ValueError, match=r"model_kwargs: checkpoint \{'factorize_nxn': False\}, now \{\}"):
        fit(quick(colours, run, **{**settings, "model_kwargs": {}}, resume=str(run)))
    fit(quick(colours, run, **settings, resume=str(run)))

    saved = json.loads((run / "model" / "config.json").read_text())
    assert saved["model_args"]["factorize_nxn"] is False
    reloaded = inceptionzoo.create_model(resolve_model_source(str(run))[0], pretrained=True)
    assert reloaded.config.factorize_nxn is False and reloaded.num_classes == 4
    assert reloaded.Mixed_6b.branch7x7_2.conv.kernel_size == (7, 7)  # one whole 7x7, not a 1x7 then a 7x1
    assert inceptionzoo.create_model("inception_v3_cifar").Mixed_6b.branch7x7_2.conv.kernel_size == (1, 7)
    weights = read_weights(run / "model")
    assert all(torch.equal(reloaded.state_dict()[k], v) for k, v in weights.items())


def test_model_kwargs_mistakes_are_named(colours, tmp_path, capsys):
    unknown = r"cannot build inception_v3_cifar with --model-kwargs factorise_nxn=False: .*did you mean 'factorize_nxn'"
    with pytest.raises(ValueError, match=unknown):
        fit(quick(colours, tmp_path / "a", model="inception_v3_cifar", model_kwargs={"factorise_nxn": False}))
    with pytest.raises(ValueError, match=r"cannot set num_classes \(set by the data's class folders\)"):
        fit(quick(colours, tmp_path / "b", model_kwargs={"num_classes": 3}))
    with pytest.raises(ValueError, match="config.json records them; got norm_layer=<class"):
        fit(quick(colours, tmp_path / "c", model_kwargs={"norm_layer": nn.BatchNorm2d}))
    argv = ["--model", "inception_v1_cifar", "--data", str(colours), "--model-kwargs", "widht_multiplier=0.5"]
    assert command.main([*argv, "--output", str(tmp_path / "d")]) == 2  # an error in words, no traceback
    assert "unknown argument(s) widht_multiplier (did you mean 'width_multiplier'" in capsys.readouterr().err


def test_model_kwargs_and_decay_epochs_on_the_command_line_and_in_the_resume_command():
    parser = command.build_parser()
    argv = ["--model", "inception_v3", "--model-kwargs", "stem_stride=1", "stem_pool=False", "stem=conv_7x7",
            "stem_widths=(16, 16, 32, 40, 96)", "--decay-epochs", "0.5", "--output", "old"]  # fmt: skip
    config = command.config_from_args(parser.parse_args(argv))
    assert config.model_kwargs == {"stem_stride": 1, "stem_pool": False, "stem": "conv_7x7",
                                   "stem_widths": (16, 16, 32, 40, 96)}  # fmt: skip
    assert config.decay_epochs == 0.5
    assert command.config_from_args(parser.parse_args([])).model_kwargs == {}
    again = shlex.split(command.resume_command("prog", argv, "out dir"))[1:]
    assert command.config_from_args(parser.parse_args(again)) == replace(config, output="out dir", resume="out dir")
    with pytest.raises(SystemExit):
        parser.parse_args(["--model-kwargs", "stem_stride"])  # no "=": a usage error
    assert {"model_kwargs", "decay_epochs"} <= set(RESUME_MUST_MATCH) and "decay_epochs" in RECIPE_OVERRIDES
    # a checkpoint from before these settings resumes: a missing setting is its default
    old = {k: getattr(TrainConfig(), k) for k in RESUME_MUST_MATCH if k not in ("model_kwargs", "decay_epochs")}
    check_resume_matches(old, asdict(TrainConfig()), "ignored")


def test_decay_epochs_reaches_the_runs_schedule(colours, tmp_path):
    # 96 images in batches of 16: 6 steps an epoch, so half an epoch is a decay every 3 steps, two per epoch
    fit(quick(colours, tmp_path / "run", recipe="momentum_sgd", decay_epochs=0.5, lr=0.1, epochs=2, val_size=0))
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["decay_epochs"] == saved["resolved_recipe"]["decay_epochs"] == 0.5
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["lr"] for row in rows] == pytest.approx([0.1 * 0.94**2, 0.1 * 0.94**4])


def test_a_fractional_epoch_count_ends_with_a_partial_pass_on_the_whole_schedule(colours, tmp_path):
    # 6 steps an epoch: 1.5 epochs are 9 updates, so a decay every 3 steps gives three, and the run stops there
    fit(quick(colours, tmp_path / "run", recipe="momentum_sgd", decay_epochs=0.5, lr=0.1, epochs=1.5, val_size=0))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["lr"] for row in rows] == pytest.approx([0.1 * 0.94**2, 0.1 * 0.94**3])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["epochs"] == 1.5 and summary["final"]["epoch"] == 2  # two passes, the second one half
    with pytest.raises(ValueError, match="finished run"):
        refuse_finished_run(str(tmp_path / "run"))


@pytest.mark.parametrize(("text", "epochs"), [("3", 3), ("9.9", 9.9)])
def test_epochs_on_the_command_line_are_whole_or_fractional(text, epochs):
    config = command.config_from_args(command.build_parser().parse_args(["--epochs", text]))
    assert config.epochs == epochs and type(config.epochs) is type(epochs)


@pytest.mark.parametrize("epochs", [0, -1.5])
def test_a_run_of_no_epochs_is_refused_by_name(colours, tmp_path, epochs):
    with pytest.raises(ValueError, match="--epochs must be a positive number"):
        fit(quick(colours, tmp_path / "run", epochs=epochs, val_size=0))
