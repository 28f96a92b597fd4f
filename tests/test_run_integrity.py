"""Nothing silently wrong in a training run (issue 34): the --freeze feature cache follows the data, the output
folder is locked to one run, --resume checks what it reads, a saved model describes its own training, stale
temporary files are cleared and skipped test images are reported."""

import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import inceptionzoo
from conftest import write_squares
from inceptionzoo.checkpoint import CheckpointError, CorruptCheckpointError, UnsafeCheckpointError
from inceptionzoo.hub.publish import model_card
from inceptionzoo.train import loop, probe, reporting
from inceptionzoo.train import validate as validate_module
from inceptionzoo.train.loop import TrainConfig, fit
from inceptionzoo.train.resume import find_checkpoint, load_training_state, save_training_state


def uniform_images(root: Path, train: int = 8, test: int = 2) -> Path:
    """``train/`` and ``test/`` with three classes of noisy 32x32 colours, one size: in memory or streamed."""
    return write_squares(root, {"train": train, "test": test})


def quick(data: Path, output: Path, **changes) -> TrainConfig:
    settings = dict(data=str(data), output=str(output), cache_dir=str(output.parent / "cache"), val_size=6,
                    epochs=1, batch_size=6, threads=1, progress=False, workers=0, amp="none")  # fmt: skip
    return TrainConfig(**{**settings, **changes})


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def write_lock(folder: Path, pid: int, host: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / ".lock"
    lock.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "started": "2025-01-01 00:00:00"}))
    return lock


# -- A: the --freeze feature cache is keyed by the data itself ---------------------------------------------------


@pytest.mark.parametrize("mode", ["memory", "stream"])
def test_the_feature_cache_misses_when_images_change_class(mode, tmp_path, monkeypatch):
    data = uniform_images(tmp_path / "data")
    real, extracted = probe.extract_features, []

    def counting(*args, **kwargs):
        features, labels = real(*args, **kwargs)
        extracted.append(labels)
        return features, labels

    monkeypatch.setattr(probe, "extract_features", counting)
    fit(quick(data, tmp_path / "first", freeze=True, data_mode=mode, val_size=0, eval_test=True))
    assert len(extracted) == 2  # train and test
    extracted.clear()
    fit(quick(data, tmp_path / "again", freeze=True, data_mode=mode, val_size=0, eval_test=True))
    assert extracted == []  # the same data: every split from the cache
    for i in range(3):  # three images of class0 become class1's
        os.replace(data / "train" / "class0" / f"{i:03d}.png", data / "train" / "class1" / f"moved{i}.png")
    for entry in (tmp_path / "cache").iterdir():  # the decoded dataset's cache is another test's subject
        if not entry.name.startswith("features-"):
            entry.unlink()
    fit(quick(data, tmp_path / "moved", freeze=True, data_mode=mode, val_size=0, eval_test=True))
    assert extracted, "the moved images' features came from the cache, with their old labels"
    assert torch.bincount(extracted[0], minlength=3).tolist() == [5, 11, 8]


# -- B: one run per output folder ---------------------------------------------------------------------------------


def test_a_second_run_on_a_locked_output_is_refused_naming_the_holder(tmp_path):
    data = uniform_images(tmp_path / "data")
    holder = os.getppid()  # alive for the whole test
    lock = write_lock(tmp_path / "run", holder)
    with pytest.raises(RuntimeError, match=rf"pid {holder}.*{socket.gethostname()}.*2025-01-01"):
        fit(quick(data, tmp_path / "run"))
    with pytest.raises(RuntimeError, match=rf"pid {holder}"):
        fit(quick(data, tmp_path / "run", resume=str(tmp_path / "run")))
    assert lock.is_file() and json.loads(lock.read_text())["pid"] == holder  # the holder's lock stays


def test_a_stale_lock_of_a_dead_process_is_taken_over_and_released(tmp_path, capsys):
    data = uniform_images(tmp_path / "data")
    stale = dead_pid()
    lock = write_lock(tmp_path / "run", stale)
    fit(quick(data, tmp_path / "run"))
    assert f"pid {stale}" in capsys.readouterr().out
    assert not lock.exists()


def test_the_lock_is_held_during_the_run_and_released_after_an_error(tmp_path, monkeypatch):
    data = uniform_images(tmp_path / "data")
    seen = []

    def crash(self):
        seen.append(json.loads((self.output / ".lock").read_text()))
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(loop.Run, "train", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(quick(data, tmp_path / "run"))
    assert seen[0]["pid"] == os.getpid() and seen[0]["host"] == socket.gethostname() and seen[0]["started"]
    assert not (tmp_path / "run" / ".lock").exists()


def test_temporary_names_are_unique_per_process(tmp_path, monkeypatch):
    sources = []
    real = os.replace

    def recording(source, target):
        sources.append(Path(source).name)
        real(source, target)

    monkeypatch.setattr(reporting.os, "replace", recording)
    log = reporting.MetricsLog(tmp_path)
    log.append({"epoch": 0, "train_loss": 1.0, "train_top1": 50.0})
    reporting.plot_metrics(log.rows, tmp_path / "metrics.png")
    assert len(sources) == 5 and len(set(sources)) == 5
    assert all(f".{os.getpid()}." in name for name in sources), sources


def test_resuming_a_finished_run_says_it_is_finished(tmp_path):
    data = uniform_images(tmp_path / "data")
    fit(quick(data, tmp_path / "run"))
    with pytest.raises(ValueError, match="finished"):
        fit(quick(data, tmp_path / "run", resume=str(tmp_path / "run")))


# -- C: --resume checks what it reads -----------------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path) -> tuple[torch.nn.Module, Path]:
    model = inceptionzoo.create_model("inception_v1_cifar", num_classes=3)
    state = {"epoch": 0, "train_seconds": 1.0, "config": {}, "optimizer": {}, "scheduler": {}}
    folder = save_training_state(tmp_path / "run" / "checkpoints", 0, model, state, ema=model)
    return model, folder


def test_resume_refuses_nan_weights_naming_the_file(checkpoint):
    model, folder = checkpoint
    for name in ("model", "ema"):
        path = folder / f"{name}.safetensors"
        original = load_file(str(path))
        broken = dict(original)
        key = next(k for k, v in broken.items() if v.is_floating_point())
        broken[key] = torch.full_like(broken[key], float("nan"))
        save_file(broken, str(path))
        with pytest.raises(CorruptCheckpointError, match=f"{name}.safetensors"):
            load_training_state(folder, model, ema=model)
        save_file(original, str(path))


def test_resume_refuses_a_hostile_state_pt_naming_the_file(checkpoint):
    model, folder = checkpoint

    class Hostile:
        def __reduce__(self):
            return (os.system, ("echo this must never run",))

    (folder / "state.pt").write_bytes(pickle.dumps({"epoch": 0, "payload": Hostile()}))
    with pytest.raises(UnsafeCheckpointError, match="state.pt"):
        load_training_state(folder, model)


def test_resume_refuses_a_lying_safetensors_header_naming_the_file(checkpoint):
    model, folder = checkpoint
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # the header promises more than the file holds
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_training_state(folder, model)


@pytest.mark.parametrize(
    "pointer",
    ['{"checkpoint": "epoch_0000"', "\xff\xfe garbage", '{"epoch": 0}', '["epoch_0000"]', '{"checkpoint": 7}'],
)
def test_a_broken_latest_pointer_is_an_error_naming_it(checkpoint, pointer):
    _, folder = checkpoint
    (folder.parent / "latest").write_text(pointer, encoding="latin-1")
    with pytest.raises((CheckpointError, ValueError), match="latest"):
        find_checkpoint(folder.parent.parent)


@pytest.mark.parametrize("target", ["../../elsewhere/ckpt", "../elsewhere", "/tmp/ckpt", "..", "sub/epoch_0000"])
def test_latest_may_only_name_a_checkpoint_inside_its_folder(checkpoint, tmp_path, target):
    _, folder = checkpoint
    for outside in (tmp_path / "elsewhere" / "ckpt", tmp_path / "run" / "elsewhere", folder.parent / "sub"):
        outside.mkdir(parents=True, exist_ok=True)
    (folder.parent / "sub" / "epoch_0000").mkdir(exist_ok=True)
    for inside in (tmp_path / "elsewhere" / "ckpt", folder.parent / "sub" / "epoch_0000"):
        (inside / "state.pt").write_bytes((folder / "state.pt").read_bytes())
    (folder.parent / "latest").write_text(json.dumps({"checkpoint": target, "epoch": 0}))
    with pytest.raises((CheckpointError, ValueError), match="latest"):
        find_checkpoint(tmp_path / "run")


# -- D: a saved model describes this run ----------------------------------------------------------------------------


def test_a_saved_model_describes_its_own_training(tmp_path):
    data = uniform_images(tmp_path / "colours3")
    summary = fit(quick(data, tmp_path / "run", image_size=40, eval_test=True))
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    cfg = saved["pretrained_cfg"]
    assert cfg["input_size"] == [3, 40, 40] and cfg.get("test_input_size", [3, 40, 40]) == [3, 40, 40]
    assert cfg["num_classes"] == 3 and cfg["label_names"] == ["class0", "class1", "class2"]
    assert "colours3" in cfg["dataset"] and "tag" not in cfg
    test = summary["test"]
    assert cfg["top1"] == pytest.approx(test["top1"]) and cfg["top5"] == pytest.approx(test["top5"])
    assert "trained from scratch" in cfg["description"] and "colours3" in cfg["description"]
    readme = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "ImageNet" not in readme and "CIFAR-10" not in readme and "colours3" in readme
    reloaded = inceptionzoo.create_model(f"local-dir:{tmp_path / 'run' / 'model'}", pretrained=True)
    assert "colours3" in model_card(reloaded)["details"]["Dataset"]  # what `push --local-dir` writes
    results = validate_module.validate(str(tmp_path / "run"), str(data), split="test", workers=0)
    assert results["img_size"] == 40


def test_a_trained_cfg_drops_the_weights_claims():
    with torch.device("meta"):
        model = inceptionzoo.create_model("inception_v3", num_classes=3)
    cfg = model.pretrained_cfg
    assert cfg["top1"] and cfg["tag"] == "tv_in1k"  # what the registered weights claim
    args = dict(size=160, classes=("a", "b", "c"), dataset="pets (folder)", accuracy=None)
    scratch = loop.describe_trained_model(cfg, pretrained=False, **args)
    assert scratch["tag"] is None and scratch["top1"] is None and scratch["top5"] is None
    assert scratch["input_size"] == (3, 160, 160) and scratch["test_input_size"] == (3, 160, 160)
    assert "torchvision" not in scratch["description"] and "from scratch" in scratch["description"]
    assert scratch["fine_tuned_from"] is None and scratch["dataset"] == "pets (folder)"
    tuned = loop.describe_trained_model(cfg, pretrained=True, **{**args, "accuracy": ("val", 91.0, 99.0)})
    assert tuned["fine_tuned_from"] == "inception_v3.tv_in1k"
    assert "fine-tuned from inception_v3.tv_in1k" in tuned["description"]
    assert tuned["top1"] == 91.0 and tuned["top5"] == 99.0 and tuned["label_names"] == ["a", "b", "c"]


def test_the_model_card_does_not_guess_the_dataset_from_the_class_count():
    model = inceptionzoo.create_model("inception_v1_cifar", num_classes=10)
    assert model_card(model)["details"]["Dataset"] == "unknown"
    model.pretrained_cfg = {**model.pretrained_cfg, "dataset": "digits (folder)"}
    assert model_card(model)["details"]["Dataset"] == "digits (folder)"


# -- E: stale partial folders, --keep-checkpoints, skipped test images, validate's settings ----------------------


def test_stale_partial_checkpoints_of_dead_processes_are_removed(checkpoint):
    model, folder = checkpoint
    directory = folder.parent
    dead, alive = dead_pid(), os.getppid()
    (directory / f".epoch_0005.{dead}.partial").mkdir()
    (directory / f".epoch_0006.{dead}.1a2b3c4d.partial").mkdir()
    (directory / f".latest.{dead}.partial").write_text("{}")
    (directory / f".epoch_0007.{alive}.partial").mkdir()
    state = {"epoch": 1, "train_seconds": 1.0, "config": {}, "optimizer": {}, "scheduler": {}}
    save_training_state(directory, 1, model, state)
    assert sorted(p.name for p in directory.iterdir()) == [f".epoch_0007.{alive}.partial", "epoch_0000",
                                                           "epoch_0001", "latest"]  # fmt: skip


def test_keep_checkpoints_below_one_is_refused(tmp_path, checkpoint):
    model, folder = checkpoint
    data = uniform_images(tmp_path / "data")
    with pytest.raises(ValueError, match="--keep-checkpoints"):
        fit(quick(data, tmp_path / "zero", keep_checkpoints=0))
    state = {"epoch": 1, "train_seconds": 1.0, "config": {}, "optimizer": {}, "scheduler": {}}
    with pytest.raises(ValueError, match="keep"):
        save_training_state(folder.parent, 1, model, state, keep=0)


def test_skipped_test_images_are_in_the_summary(tmp_path, capsys):
    data = uniform_images(tmp_path / "data")
    (data / "test" / "class0" / "broken.png").write_bytes(b"not a png at all")
    summary = fit(quick(data, tmp_path / "run", data_mode="stream", eval_test=True, skip_bad_images=True))
    assert summary["test"]["skipped_images"] == 1 and summary["test"]["images"] == 6
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["test"]["skipped_images"] == 1
    test_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("test:"))
    assert "1 unreadable" in test_line


def test_validate_takes_a_cache_dir(monkeypatch, tmp_path):
    seen = {}

    def fake(model, data, **kwargs):
        seen.update(kwargs)
        return {"model": model, "top1": 1.0, "top5": 1.0, "loss": 1.0, "images": 1, "images_per_s": 1.0}

    monkeypatch.setattr(validate_module, "validate", fake)
    assert validate_module.main(["--model", "m", "--data", "d", "--cache-dir", str(tmp_path / "c")]) == 0
    assert seen["cache_dir"] == str(tmp_path / "c")


def test_validate_follows_the_runs_autocast_setting(tmp_path):
    data = uniform_images(tmp_path / "data")
    fit(quick(data, tmp_path / "run", amp="bf16"))
    for model in (tmp_path / "run", tmp_path / "run" / "model"):
        results = validate_module.validate(str(model), str(data), split="test", workers=0)
        assert results["amp"] == "bf16"
    assert validate_module.validate(str(tmp_path / "run"), str(data), split="test", workers=0, amp="none")["amp"] == (
        "none"
    )
