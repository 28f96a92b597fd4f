"""What a new user meets first: the defaults follow the data (val/ validates each epoch, else a carved split),
errors that name the way out (the auxiliary head's minimum, --pretrained-file offline), readable progress figures,
checkpoints numbered as the logs count epochs, and Ctrl-C that stops within a step and says how to resume."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import inceptionzoo
from conftest import write_photos
from inceptionzoo.hub.errors import how_to_fetch, offline_hint
from inceptionzoo.train import command, reporting
from inceptionzoo.train.data.sources import DataOptions, auto_val_size, open_splits
from inceptionzoo.train.loop import TrainConfig, fit


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> Path:
    """A folder of mixed small photos as a user lays it out: train/ 3 classes x 8, val/ 3 x 4."""
    return write_photos(tmp_path_factory.mktemp("ds"), {"train": 8, "val": 4})


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INCEPTIONZOO_CACHE", str(tmp_path / "cache"))


def test_a_folder_with_val_trains_and_validates_on_it_with_the_plain_command(ds, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--model", "inception_v1_cifar", "--data", str(ds), "--epochs", "1", "--output", str(out)]
    assert command.main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "24 training images" in printed and "12 validation" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["validation"] == {"source": str(ds / "val"), "images": 12}
    assert summary["train_images"] == 24  # all of train/: nothing carved when val/ exists
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["val_images"] == 12 and 0 <= row["val_top1"] <= 100 and "val_loss" in row


def test_without_val_a_tenth_is_carved_class_balanced_or_none_when_too_small():
    def labels(*counts: int) -> torch.Tensor:
        return torch.cat([torch.full((n,), k) for k, n in enumerate(counts)])

    assert auto_val_size(labels(*[5000] * 10), 10) == 5000  # CIFAR-10: as --val-size 5000 carved before
    assert auto_val_size(labels(*[100_000] * 10), 10) == 5000  # at most 5,000
    assert auto_val_size(labels(12, 12, 12), 3) == 3  # 10% of 36 is 3.6: one a class
    assert auto_val_size(labels(6, 6, 6, 6), 4) == 4  # 10% is 2.4: still at least one a class
    assert auto_val_size(labels(40, 40, 4), 3) == 0  # a class of 4 images spares none


def test_a_folder_without_val_carves_a_split_and_says_so(tmp_path):
    root = write_photos(tmp_path / "only-train", {"train": 10})
    model = inceptionzoo.create_model("inception_v1_cifar")
    splits = open_splits(DataOptions(str(root), val_size=None), model, 4, 32)
    assert splits.val_images == 3 and splits.train_images == 27
    assert any("carved out" in note for note in splits.notes)
    small = write_photos(tmp_path / "tiny", {"train": 3})
    splits = open_splits(DataOptions(str(small), val_size=None), model, 4, 32)
    assert splits.val is None and splits.train_images == 9
    assert any(note.startswith("no validation") for note in splits.notes)
    assert open_splits(DataOptions(str(root), val_size=6), model, 4, 32).val_images == 6  # the override


def test_an_image_size_below_the_aux_heads_minimum_names_them_and_the_flag(ds, tmp_path):
    config = TrainConfig(model="inception_v3", data=str(ds), output=str(tmp_path / "v3"), image_size=160, epochs=1,
                         batch_size=2, threads=1, progress=False)  # fmt: skip
    with pytest.raises(ValueError, match=r"299x299 pixels that inception_v3's auxiliary head .*--no-aux-logits"):
        fit(config)
    assert "--no-aux-logits" in command.build_parser().format_help()


def test_pretrained_file_starts_training_from_a_local_file(ds, tmp_path):
    source = inceptionzoo.create_model("inception_v1_cifar", num_classes=10)
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    out = tmp_path / "run"
    argv = ["--model", "inception_v1_cifar", "--data", str(ds), "--epochs", "1", "--output", str(out),
            "--pretrained-file", str(path), "--lr", "0", "--no-ema", "--val-size", "0", "--no-progress"]  # fmt: skip
    assert command.main(argv) == 0
    trained = load_file(str(out / "model" / "model.safetensors"))
    stem = next(k for k in trained if k.endswith("weight") and trained[k].dim() == 4)
    assert torch.equal(trained[stem], source.state_dict()[stem])  # lr 0: the file's weights, kept
    assert json.loads((out / "model" / "config.json").read_text())["pretrained_cfg"]["fine_tuned_from"]
    for hint in (offline_hint("inception_v3"), how_to_fetch("inception_v3", tmp_path)):
        assert "pretrained_file=PATH" in hint and "inceptionzoo train --pretrained-file PATH" in hint


def test_training_output_reads_well(ds, tmp_path, capsys):
    assert [reporting.rate(r) for r in (0.034, 0.4, 4.26, 12.6, 480.2)] == ["0.03", "0.40", "4.3", "13", "480"]
    out = tmp_path / "run"
    argv = ["--model", "inception_v1_cifar", "--data", str(ds), "--epochs", "1", "--output", str(out),
            "--val-size", "0", "--image-size", "40", "--no-progress"]  # fmt: skip
    assert command.main(argv) == 0
    printed = capsys.readouterr().out
    assert "no validation" in printed and "~0" not in printed
    assert "image size 40 instead of the model's 32" in printed and "pretrained" not in printed
    assert "(0 img/s)" not in printed
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch_0001", "latest"]


def test_ctrl_c_stops_after_the_step_and_prints_the_resume_command(ds, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    argv = ["--model", "inception_v1_cifar", "--data", str(ds), "--epochs", "2", "--output", str(out),
            "--batch-size", "4", "--workers", "0", "--threads", "1", "--no-progress"]  # fmt: skip
    steps = []
    shown = reporting.Progress.__call__

    def step_then_ctrl_c(self, step, totals, data_wait):
        shown(self, step, totals, data_wait)
        steps.append((self.description, step))
        if self.description.startswith("epoch 2") and step == 1:
            os.kill(os.getpid(), signal.SIGINT)  # as a terminal's Ctrl-C

    monkeypatch.setattr(reporting.Progress, "__call__", step_then_ctrl_c)
    assert command.main(argv) == 130
    error = capsys.readouterr().err
    assert "Traceback" not in error and steps[-1] == ("epoch 2/2", 1)  # stopped after that step, before the next
    resume = error.strip().splitlines()[-1].strip()
    assert resume.endswith(f"--output {out} --resume {out}") and "checkpoints/epoch_0001" in error
    monkeypatch.setattr(reporting.Progress, "__call__", shown)
    assert command.main(shlex.split(resume)[2:]) == 0  # the printed command (less `inceptionzoo train`) goes on
    assert json.loads((out / "summary.json").read_text())["final"]["epoch"] == 2


@pytest.mark.slow
def test_sigint_stops_a_streamed_run_with_workers_at_once(ds, tmp_path):
    out = tmp_path / "run"
    command_line = [sys.executable, "-m", "inceptionzoo", "train", "--model", "inception_v1_cifar", "--data", str(ds),
                    "--epochs", "3", "--output", str(out), "--batch-size", "2", "--workers", "1", "--log-every", "1",
                    "--data-mode", "stream"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(command_line, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    for line in child.stderr:
        if "step 1/" in line:
            break
    sent = time.perf_counter()
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=120)
    waited = time.perf_counter() - sent
    assert child.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "Start again with" in stderr and "--resume" not in stderr
    assert stderr.strip().endswith(f"--output {out}") and waited < 20, (waited, stderr[-2000:])
