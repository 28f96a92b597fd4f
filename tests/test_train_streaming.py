"""Streamed training data: ImageFolder trees of photos of any size and mode, tar shards, DataLoader workers and
ranks (every image once per epoch), bad files named or skipped, validate, the frozen-backbone path, accumulation."""

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import load_file
from timm.data import create_transform, resolve_data_config

import inceptionzoo
from conftest import (
    COLOURS,
    crash_in_epoch,
    relative_error,
    write_photo_shards,
    write_photos,
    write_shards,
    write_squares,
)
from inceptionzoo.train import probe
from inceptionzoo.train.data.folder import BadImageError, ImageFileDataset, list_image_folder
from inceptionzoo.train.data.loaders import StreamLoader
from inceptionzoo.train.data.shards import ShardError, TarShardDataset, index_shards
from inceptionzoo.train.data.sources import DataOptions, open_splits, source_kind
from inceptionzoo.train.data.transforms import eval_transform, train_transform
from inceptionzoo.train.engine import train_one_epoch
from inceptionzoo.train.loop import TrainConfig, fit
from inceptionzoo.train.recipes import Recipe
from inceptionzoo.train.validate import check_class_order, validate


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """train/ 3 classes x 10 photos and val/ 3 x 4, mixed sizes, modes (RGB, L, RGBA, CMYK, P) and formats."""
    return write_photos(tmp_path_factory.mktemp("photos"), {"train": 10, "val": 4})


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """The same kind of photos as tar shards: train/ 4 shards of 6, val/ 2 shards of 3, and classes.txt."""
    return write_photo_shards(tmp_path_factory.mktemp("shards"), {"train": (24, 4), "val": (6, 2)})


def numbered_images(root: Path, count: int) -> list[tuple[str, int]]:
    """``count`` 8x8 grey images whose pixel value is their number: what a batch holds says which files it read."""
    samples = []
    for n in range(count):
        path = root / f"{n:03d}.png"
        Image.fromarray(np.full((8, 8), n, dtype=np.uint8)).save(path)
        samples.append((str(path), n % 2))
    return samples


def ids(images: torch.Tensor) -> list[int]:
    return (images[:, 0, 0, 0] * 255).round().long().tolist()


def as_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255


def quick(data: Path, output: Path, **changes) -> TrainConfig:
    settings = dict(data=str(data), output=str(output), cache_dir=str(output.parent / "cache"), val_size=6,
                    epochs=2, batch_size=8, threads=1, progress=False, workers=0)  # fmt: skip
    return TrainConfig(**{**settings, **changes})


def test_folders_of_any_size_and_mode_are_streamed_and_learned(photos, tmp_path):
    assert source_kind(str(photos)) == "folder"
    summary = fit(quick(photos, tmp_path / "run", eval_test=True, epochs=3, workers=1))
    assert summary["data"] == "folder" and summary["train_images"] == 24  # 30 less 6 for validation
    assert summary["test"]["images"] == 12  # val/ is the held-out split, every image once
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(np.isfinite(row["train_loss"]) for row in rows)
    model = inceptionzoo.create_model(f"local-dir:{tmp_path / 'run' / 'model'}", pretrained=True)
    assert model.num_classes == 3 and tuple(model.pretrained_cfg["label_names"]) == ("class0", "class1", "class2")


def test_every_mode_is_decoded_to_rgb(photos):
    samples, classes = list_image_folder(photos / "train")
    assert classes == ("class0", "class1", "class2") and len(samples) == 30
    model = inceptionzoo.create_model("inception_v1_cifar")
    dataset = ImageFileDataset(samples[:5], classes, eval_transform(model))  # RGB, L, RGBA, CMYK, P
    for i in range(5):
        image, _ = dataset[i]
        assert image.shape == (3, 32, 32) and torch.isfinite(image).all()


def test_the_same_batches_with_zero_one_or_two_workers(photos):
    """Augmentation is drawn per image from (seed, epoch, index): the worker count changes nothing."""
    model = inceptionzoo.create_model("inception_v1_cifar")
    samples, classes = list_image_folder(photos / "train")
    epochs = []
    for workers in (0, 1, 2):
        dataset = ImageFileDataset(samples, classes, train_transform(model), seed=3)
        loader = StreamLoader(dataset, 8, train=True, workers=workers, seed=3)
        epochs.append([torch.cat([x for x, _ in loader.epoch(e)]) for e in (0, 1)])
    for other in epochs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(epochs[0], other, strict=True))
    assert not torch.equal(epochs[0][0], epochs[0][1])  # a new epoch draws new crops and order


def cifar_like_folder(root: Path) -> Path:
    """train/ 3 classes x 10 and test/ 3 x 3 noisy 32x32 JPEGs (one size: what auto mode keeps in memory)."""
    return write_squares(root, {"train": 10, "test": 3}, seed=4, suffix="jpg")


@pytest.mark.parametrize("world_size", [1, 2])
def test_a_folder_streamed_gives_the_in_memory_batches_bit_for_bit(tmp_path, world_size):
    """The same seed, the same tensors: the order (DistributedSampler), each image's crop and flip (its own seed),
    the validation carve-out and the normalisation agree, so streaming a CIFAR folder loses nothing."""
    root = cifar_like_folder(tmp_path / "cifar")
    model = inceptionzoo.create_model("inception_v1_cifar")
    splits = {}
    for mode in ("memory", "stream"):
        options = DataOptions(str(root), mode=mode, workers=1 if mode == "stream" else 0, val_size=6, eval_test=True,
                              seed=7, cache_dir=str(tmp_path / "cache"))  # fmt: skip
        splits[mode] = [open_splits(options, model, 4, 32, rank=rank, world_size=world_size)
                        for rank in range(world_size)]  # fmt: skip
    assert splits["memory"][0].kind == "memory" and splits["stream"][0].kind == "folder"
    for memory, stream in zip(splits["memory"], splits["stream"], strict=True):
        assert len(memory.train) == len(stream.train) == 24 // (4 * world_size)
        for epoch in (0, 1):
            for (a, y), (b, z) in zip(memory.train.epoch(epoch), stream.train.epoch(epoch), strict=True):
                assert torch.equal(y, z) and torch.equal(a, b), epoch
        for name in ("val", "test"):
            pairs = zip(getattr(memory, name).epoch(0), getattr(stream, name).epoch(0), strict=True)
            assert all(torch.equal(a, b) and torch.equal(y, z) for (a, y), (b, z) in pairs), name
    first = [torch.cat([x for x, _ in splits["memory"][0].train.epoch(e)]) for e in (0, 1)]
    assert not torch.equal(*first)  # each epoch draws new crops


@pytest.mark.parametrize("workers", [0, 2])
def test_every_image_once_per_epoch_across_ranks_and_workers_from_folders(tmp_path, workers):
    samples = numbered_images(tmp_path, 32)
    seen = {0: [], 1: []}
    for rank in (0, 1):
        dataset = ImageFileDataset(samples, ("even", "odd"), as_tensor)
        loader = StreamLoader(dataset, 4, train=True, workers=workers, rank=rank, world_size=2, seed=5)
        assert len(loader) == 4
        for epoch in (0, 1):
            seen[epoch] += [n for x, _ in loader.epoch(epoch) for n in ids(x)]
    assert sorted(seen[0]) == sorted(seen[1]) == list(range(32))
    assert seen[0] != seen[1]  # reshuffled each epoch
    for rank in (0, 1):  # evaluation: rank r takes images r, r + 2, ...; nothing dropped, nothing twice
        loader = StreamLoader(ImageFileDataset(samples[:31], ("even", "odd"), as_tensor), 4, rank=rank, world_size=2)
        assert sorted(n for x, _ in loader.epoch(0) for n in ids(x)) == list(range(rank, 31, 2))


@pytest.mark.parametrize("workers", [0, 2])
def test_every_image_once_per_epoch_across_ranks_and_workers_from_shards(tmp_path, workers):
    samples = []
    for n in range(48):
        buffer = io.BytesIO()
        Image.fromarray(np.full((8, 8, 3), n, dtype=np.uint8)).save(buffer, format="PNG")
        samples.append((f"{n:05d}.png", buffer.getvalue(), n % 2))
    write_shards(tmp_path / "train", samples, 8)  # 6 per shard; 4 per rank, 2 per worker
    index = index_shards(tmp_path / "train")
    assert index.counts == (6,) * 8 and index.classes == ("0", "1")
    for epoch in (0, 1):
        seen = []
        for rank in (0, 1):
            dataset = TarShardDataset(index, as_tensor, rank=rank, world_size=2, shuffle=True, seed=1, chunk=4)
            loader = StreamLoader(dataset, 6, train=True, workers=workers, rank=rank, world_size=2)
            assert len(loader) == 4  # 24 images per rank in batches of 6
            batches = list(loader.epoch(epoch))
            assert len(batches) == 4 and all(len(y) == 6 for _, y in batches)
            seen += [n for x, _ in batches for n in ids(x)]
        assert sorted(seen) == list(range(48)), epoch


def test_shards_train_validate_and_name_their_classes(shards, tmp_path):
    assert source_kind(str(shards)) == "shards"
    summary = fit(quick(shards, tmp_path / "run", eval_test=True, val_size=1, batch_size=6))
    assert summary["data"] == "shards" and summary["train_images"] == 24 and summary["test"]["images"] == 6
    model = inceptionzoo.create_model(f"local-dir:{tmp_path / 'run' / 'model'}", pretrained=True)
    assert tuple(model.pretrained_cfg["label_names"]) == ("red", "green", "blue")
    results = validate(str(tmp_path / "run"), str(shards), workers=0, flip_tta=True)
    assert results["images"] == 6 and results["top1"] == pytest.approx(summary["test"]["top1"], abs=1e-3)
    checkpoint = str(tmp_path / "run" / "checkpoints" / "epoch_0002" / "ema.safetensors")  # the averaged weights
    from_checkpoint = validate("inception_v1_cifar", str(shards), checkpoint=checkpoint, workers=0, flip_tta=True)
    assert {k: v for k, v in from_checkpoint.items() if k not in ("model", "images_per_s", "amp")} == {
        k: v for k, v in results.items() if k not in ("model", "images_per_s", "amp")
    }


def test_a_shard_cut_short_or_without_labels_is_named(tmp_path):
    good = io.BytesIO()
    Image.new("RGB", (8, 8)).save(good, format="PNG")
    paths = write_shards(tmp_path / "train", [(f"{n}.png", good.getvalue(), 0) for n in range(20)], 1)
    paths[0].write_bytes(paths[0].read_bytes()[:5000])
    with pytest.raises(ShardError, match=r"shard-0000\.tar cannot be read to the end"):
        index_shards(tmp_path / "train")
    with tarfile.open(tmp_path / "unlabelled.tar", "w") as archive:
        info = tarfile.TarInfo("a.png")
        info.size = len(good.getvalue())
        archive.addfile(info, io.BytesIO(good.getvalue()))
    (tmp_path / "train" / "shard-0000.tar").unlink()
    os.replace(tmp_path / "unlabelled.tar", tmp_path / "train" / "x.tar")
    with pytest.raises(ShardError, match=r"x\.tar: sample 'a' has no \.cls label"):
        index_shards(tmp_path / "train")


def test_a_corrupt_image_is_named_and_can_be_skipped_and_counted(tmp_path):
    root = write_photos(tmp_path / "data", {"train": 6, "val": 2})
    bad = root / "train" / "class1" / "zz-truncated.jpg"
    good = (root / "train" / "class1" / "000.jpg").read_bytes()
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(BadImageError, match=r"class1/zz-truncated\.jpg cannot be read as an image.*--skip-bad-images"):
        fit(quick(root, tmp_path / "strict", val_size=0, workers=1))
    summary = fit(quick(root, tmp_path / "lenient", val_size=0, skip_bad_images=True, batch_size=19, epochs=1))
    assert summary["final"]["skipped_images"] == 1 and summary["train_images"] == 19


def test_folder_mistakes_are_errors_naming_the_path(tmp_path):
    root = write_photos(tmp_path / "data", {"train": 2, "val": 1})
    (root / "train" / "empty").mkdir()
    with pytest.raises(ValueError, match=r"class folder .*train/empty holds no images"):
        list_image_folder(root / "train")
    (root / "train" / "empty").rmdir()
    (root / "val" / "class2").rename(root / "val" / "other")
    model = inceptionzoo.create_model("inception_v1_cifar")
    options = DataOptions(str(root), eval_test=True, mode="stream")
    with pytest.raises(
        ValueError, match=r"classes of .*val differ from train/'s: missing \['class2'\], not in train/ \['other'\]"
    ):
        open_splits(options, model, 4, 32)
    (tmp_path / "flat" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"flat/train has no class folders"):
        open_splits(DataOptions(str(tmp_path / "flat")), model, 4, 32)
    with pytest.raises(FileNotFoundError, match="has no train/ folder"):
        source_kind(str(tmp_path))


def test_auto_mode_keeps_uniform_small_folders_in_memory_and_streams_the_rest(photos, tmp_path):
    model = inceptionzoo.create_model("inception_v1_cifar")
    uniform = tmp_path / "uniform"
    for label in range(2):
        (uniform / "train" / f"c{label}").mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (32, 32), COLOURS[label]).save(uniform / "train" / f"c{label}" / f"{i}.png")
    assert open_splits(DataOptions(str(uniform)), model, 4, 32).kind == "memory"
    assert open_splits(DataOptions(str(uniform), memory_budget_gb=1e-6), model, 4, 32).kind == "folder"
    assert open_splits(DataOptions(str(photos)), model, 4, 32).kind == "folder"  # mixed sizes
    with pytest.raises(ValueError, match="the in-memory loader holds images of one size"):
        open_splits(DataOptions(str(photos), mode="memory"), model, 4, 32)


def test_transforms_are_the_papers_crop_and_the_weights_preprocessing():
    model = inceptionzoo.create_model("inception_v3.tv_in1k")
    reference = timm.create_model("inception_v3.tv_in1k", pretrained=False)
    assert repr(eval_transform(model)) == repr(create_transform(**resolve_data_config(model=reference)))
    crop = train_transform(model).transforms[0]
    assert crop.size == (299, 299) and crop.scale == (0.08, 1.0) and crop.ratio == pytest.approx((0.75, 4 / 3))
    assert train_transform(model, size=139).transforms[0].size == (139, 139)
    assert "CifarCrop(pad=4, hflip=0.5, mode='constant')" in repr(
        train_transform(inceptionzoo.create_model("inception_v1_cifar"))
    )


@pytest.mark.slow
def test_resume_of_a_streamed_run_equals_an_uninterrupted_one(photos, tmp_path, monkeypatch):
    fit(quick(photos, tmp_path / "straight", epochs=3, workers=1, ema=False))
    crash_in_epoch(monkeypatch, quick(photos, tmp_path / "cut", epochs=3, workers=1, ema=False), epoch=3)
    fit(quick(photos, tmp_path / "cut", epochs=3, workers=1, ema=False, resume=str(tmp_path / "cut")))
    straight = load_file(str(tmp_path / "straight" / "model" / "model.safetensors"))
    resumed = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_frozen_backbone_trains_the_classifier_on_cached_features(photos, tmp_path, monkeypatch):
    summary = fit(quick(photos, tmp_path / "probe", freeze=True, epochs=4, eval_test=True, lr=0.5))
    assert summary["freeze"] is True and summary["test"]["images"] == 12
    torch.manual_seed(0)  # the run's seed: the same initial backbone
    initial = inceptionzoo.create_model("inception_v1_cifar", num_classes=3)
    tuned = load_file(str(tmp_path / "probe" / "model" / "model.safetensors"))
    assert all(torch.equal(tuned[k], v) for k, v in initial.state_dict().items() if not k.startswith("fc."))
    assert not torch.equal(tuned["fc.weight"], initial.state_dict()["fc.weight"])
    # the cached features are the backbone's pooled output for the (unaugmented) training images
    cached = [torch.load(p, weights_only=True) for p in (tmp_path / "cache").glob("features-*.pt")]
    assert len(cached) == 3  # train, validation, test
    model = initial.eval()
    samples, classes = list_image_folder(photos / "val")
    dataset = ImageFileDataset(samples, classes, eval_transform(model))
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(images), pre_logits=True)
    test_features = next(c["features"] for c in cached if len(c["labels"]) == 12)
    # computed by the inference fast path in bf16 (this CPU's autocast dtype, or fp32 where it has none)
    assert relative_error(test_features, expected) < 3e-2

    def backbone_again(*args, **kwargs):
        raise AssertionError("the backbone ran again instead of the cached features being read")

    monkeypatch.setattr(probe, "extract_features", backbone_again)  # behaviour, not a faster wall clock
    again = fit(quick(photos, tmp_path / "probe-again", freeze=True, epochs=4, eval_test=True, lr=0.5))
    assert again["test"] == summary["test"]


def test_gradient_accumulation_equals_one_larger_batch():
    """Without BatchNorm, two accumulated batches of 8 give the update of one batch of 16."""
    torch.manual_seed(0)
    data = [(torch.randn(16, 5), torch.randint(0, 3, (16,)))]
    halves = [(x[:8], y[:8]) for x, y in data] + [(x[8:], y[8:]) for x, y in data]
    recipe = Recipe(name="t", description="", optimizer="sgd", lr=0.1, batch_size=8, epochs=1)
    weights = []
    for batches, accumulate in ((data, 1), (halves, 2)):
        torch.manual_seed(1)
        model = torch.nn.Linear(5, 3)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        train_one_epoch(model, batches, optimizer, torch.nn.CrossEntropyLoss(), recipe, autocast_dtype=None,
                        grad_accum=accumulate)  # fmt: skip
        weights.append(model.weight.detach().clone())
    assert torch.allclose(weights[0], weights[1], atol=1e-6)


def test_mixup_layer_decay_and_unfreeze_after_run(photos, tmp_path):
    summary = fit(quick(photos, tmp_path / "mix", mixup=0.2, cutmix=1.0, layer_decay=0.8, unfreeze_after=1))
    assert np.isfinite(summary["final"]["train_loss"])
    from inceptionzoo.train.recipes import create_optimizer, recipe_for

    model = inceptionzoo.create_model("inception_v1_cifar")
    scales = {group["lr_scale"] for group in create_optimizer(model, recipe_for(model), layer_decay=0.8).param_groups}
    assert len(scales) > 3 and max(scales) == 1.0


def test_progress_without_a_terminal_is_one_line_every_n_steps(photos, tmp_path, capsys):
    fit(quick(photos, tmp_path / "log", progress=True, log_every=2, epochs=1, val_size=0))
    lines = [line for line in capsys.readouterr().err.splitlines() if "step" in line]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/1 step 2/3", "epoch 1/1 step 3/3"]
    assert all("img_s" in line and "data_wait" in line for line in lines)


def test_validate_checks_the_class_order(photos, tmp_path):
    fit(quick(photos, tmp_path / "run", epochs=1, val_size=0))
    renamed = tmp_path / "renamed"
    for old, new in (("class0", "class0"), ("class1", "class9"), ("class2", "class2")):
        (renamed / new).mkdir(parents=True)
        for path in (photos / "val" / old).iterdir():
            (renamed / new / path.name).write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match=r"not the model's, in the model's order .*1: model 'class1', data 'class2'"):
        validate(str(tmp_path / "run"), str(renamed), workers=0)
    imagenet = inceptionzoo.create_model("inception_v3")
    synsets = list(timm.data.ImageNetInfo().label_names())
    check_class_order(imagenet, synsets, "val/")
    with pytest.raises(ValueError, match="first differences: 0: model 'n01440764', data 'n01443537'"):
        check_class_order(imagenet, [synsets[1], synsets[0], *synsets[2:]], "val/")
    with pytest.raises(ValueError, match="the model has 1000 classes, but val/ has 3 class folders"):
        check_class_order(imagenet, ["a", "b", "c"], "val/")


@pytest.mark.slow
def test_validate_cli_writes_timm_results_rows(photos, tmp_path):
    fit(quick(photos, tmp_path / "run", epochs=1, val_size=0))
    results = tmp_path / "results.csv"
    command = [sys.executable, "-m", "inceptionzoo", "validate", "--model", str(tmp_path / "run"), "--data",
               str(photos), "--workers", "0", "--results-file", str(results), "--amp", "bf16"]  # fmt: skip
    for _ in range(2):
        # the limit is a bound on a hang, not a speed claim
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, done.stderr[-2000:]
    header, *rows = results.read_text().splitlines()
    assert header.startswith("model,top1,top1_err,top5,top5_err,param_count,img_size,crop_pct,interpolation")
    assert len(rows) == 2 and json.loads(done.stdout.splitlines()[-1])["images"] == 12


@pytest.mark.xdist_group("torchrun")  # one torchrun job at a time on the machine
@pytest.mark.slow
def test_two_process_torchrun_streams_folders_and_shards(photos, shards, tmp_path):
    """gloo, 2 ranks x 1 worker: each rank its share of train/ and of val/, replicas identical at the end."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    for data, name, batch, train_images in ((photos, "folder", "4", 24), (shards, "shards", "6", 24)):
        run = tmp_path / name
        command = [*launcher, "-m", "inceptionzoo.train", "--data", str(data), "--output", str(run), "--cache-dir",
                   str(tmp_path / "cache"), "--val-size", "6", "--epochs", "2", "--batch-size", batch, "--eval-test",
                   "--workers", "1", "--no-progress"]  # fmt: skip
        # the limit is a bound on a hang, not a speed claim
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads((run / "summary.json").read_text())
        assert summary["world_size"] == 2 and summary["replicas_identical"] is True and summary["data"] == name
        assert summary["train_images"] == train_images
        assert summary["test"]["images"] == (12 if name == "folder" else 6)  # every held-out image once in all


def grey_png(number: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), number, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.xdist_group("torchrun")  # one torchrun job at a time on the machine
@pytest.mark.slow
def test_torchrun_gives_every_image_once_per_epoch_across_ranks_and_workers(tmp_path):
    """2 ranks x 2 workers under torchrun, through the loaders the loop builds: a folder streamed and in memory, and
    tar shards; every training image once per epoch (in a new order each epoch), every test image once."""
    folder, shards = tmp_path / "folder", tmp_path / "shards"
    for split, first, count in (("train", 0, 48), ("test", 100, 12)):
        for n in range(first, first + count):
            path = folder / split / ("even", "odd")[n % 2] / f"{n:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(grey_png(n))
    write_shards(shards / "train", [(f"{n:03d}.png", grey_png(n), n % 2) for n in range(48)], 8)
    write_shards(shards / "test", [(f"{n:03d}.png", grey_png(n), n % 2) for n in range(100, 106)], 2)
    sources = [f"stream:{folder}", f"memory:{folder}", f"auto:{shards}"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(Path(__file__).parent / "torchrun_epochs.py"), str(tmp_path / "out"), *sources]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # the limit is a bound on a hang, not a speed claim
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads((tmp_path / "out" / "seen.json").read_text())
    for source, ranks in seen.items():
        assert len(ranks) == 2 and all(len(rank["train0"]) == 24 for rank in ranks), source  # equal shares
        for epoch in ("train0", "train1"):
            assert sorted(n for rank in ranks for n in rank[epoch]) == list(range(48)), (source, epoch)
        assert ranks[0]["train0"] != ranks[0]["train1"], source  # reshuffled each epoch
        held_out = list(range(100, 112 if "folder" in source else 106))
        assert sorted(n for rank in ranks for n in rank["test"]) == held_out, source


def first_row_of_each_recipe() -> list[str]:
    """Table 3's rows share four recipes (googlenet, momentum_sgd, rmsprop, rmsprop_label_smoothing): one row each."""
    from inceptionzoo.train.recipes import MODEL_RECIPES

    rows = sorted(
        (cfg.paper_row, name)
        for name in inceptionzoo.list_models()
        if (cfg := inceptionzoo.get_pretrained_cfg(name)).paper_row.startswith("Table 3")
    )
    chosen: dict[str, str] = {}
    for _, name in rows:
        chosen.setdefault(MODEL_RECIPES[name], name)
    return list(chosen.values())


@pytest.mark.slow
@pytest.mark.parametrize("name", first_row_of_each_recipe())
def test_each_table3_recipe_runs_end_to_end_on_a_folder(name, photos, tmp_path):
    """The row's recipe as the paper gives it (optimizer, clipping, smoothing, aux weight, averaging), the learning
    rate scaled to the batch, the auxiliary heads trained; at the smallest input the aux heads take, to stay fast."""
    from inceptionzoo.train.recipes import MODEL_RECIPES, RECIPES

    size = inceptionzoo.create_model(name, aux_logits=True).min_input_size[0]
    summary = fit(quick(photos, tmp_path / "run", model=name, image_size=size, epochs=1, batch_size=4, subset=12,
                        val_size=0))  # fmt: skip
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())["resolved_recipe"]
    paper = RECIPES[MODEL_RECIPES[name]]
    assert resolved["name"] == paper.name and resolved["optimizer"] == paper.optimizer
    assert resolved["lr"] == pytest.approx(paper.lr * 4 / paper.batch_size)  # scaled with the global batch
    for field in ("clip_grad", "label_smoothing", "aux_weight", "ema_decay", "decay_rate", "decay_epochs"):
        assert resolved[field] == getattr(paper, field), field
    saved = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    assert any(k.startswith(("AuxLogits", "aux")) for k in saved)  # trained with the auxiliary heads
    assert np.isfinite(summary["final"]["train_loss"])
