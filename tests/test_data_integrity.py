"""Nothing silently wrong in the training data readers: caches keyed by all they were made from, labels checked,
cut-short shards and archives named, archives read by the folders' rules, every decoder error naming its file."""

import gzip
import io
import os
import shutil
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import inceptionzoo
from inceptionzoo.train.data import load_image_folder
from inceptionzoo.train.data.folder import BadImageError, ImageFileDataset, open_image
from inceptionzoo.train.data.shards import ShardError, TarShardDataset, index_shards
from inceptionzoo.train.data.sources import DataOptions, open_splits
from inceptionzoo.train.data.transforms import eval_transform


def png(value: int, size: int = 8) -> bytes:
    """A ``size`` x ``size`` RGB PNG of one grey ``value``: what a batch holds says which file it read."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (value,) * 3).save(buffer, format="PNG")
    return buffer.getvalue()


def write_tree(root: Path, classes: dict[str, list[int]], split: str = "train") -> Path:
    """``root/<split>/<class>/<value>.png`` images of the given grey values."""
    for name, values in classes.items():
        (root / split / name).mkdir(parents=True, exist_ok=True)
        for value in values:
            (root / split / name / f"{value:03d}.png").write_bytes(png(value))
    return root


def write_archive(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    """A tar archive holding ``members`` (name: bytes) in that order, with a fixed modification time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
    return path


def write_shard(path: Path, labels: list[str], image: bytes | None = None) -> Path:
    """A webdataset shard: ``NNNN.png`` + ``NNNN.cls`` (holding ``labels[n]``) per sample."""
    members = {}
    for n, label in enumerate(labels):
        members[f"{n:04d}.png"] = image or png(n % 256)
        members[f"{n:04d}.cls"] = label.encode()
    return write_archive(path, members, mode="w")


def values(images: torch.Tensor) -> list[int]:
    return images[:, 0, 0, 0].tolist()


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels (its header is all PIL reads before refusing a bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def model():
    return inceptionzoo.create_model("inception_v1_cifar")


# 1. caches keyed by what they were made from


def test_a_folder_cache_sees_added_images_and_images_moved_between_classes(tmp_path):
    root, cache = write_tree(tmp_path / "data", {"a": [1, 2], "b": [3, 4]}), tmp_path / "cache"
    assert len(load_image_folder(root, "train", cache_dir=cache)) == 4
    (root / "train" / "a" / "005.png").write_bytes(png(5))
    again = load_image_folder(root, "train", cache_dir=cache)
    assert len(again) == 5 and values(again.images) == [1, 2, 5, 3, 4]
    shutil.move(root / "train" / "a" / "001.png", root / "train" / "b" / "001.png")
    moved = load_image_folder(root, "train", cache_dir=cache)
    assert values(moved.images) == [2, 5, 1, 3, 4] and moved.labels.tolist() == [0, 0, 1, 1, 1]


def test_two_archives_of_one_name_size_and_time_are_two_cache_entries(tmp_path):
    cache = tmp_path / "cache"
    first = write_archive(tmp_path / "x" / "data.tar", {"train/a/0.png": png(10)}, mode="w")
    second = write_archive(tmp_path / "y" / "data.tar", {"train/a/0.png": png(20)}, mode="w")
    assert first.stat().st_size == second.stat().st_size
    for path in (first, second):
        os.utime(path, ns=(1_700_000_000_000_000_000,) * 2)
    assert values(load_image_folder(first, "train", cache_dir=cache).images) == [10]
    assert values(load_image_folder(second, "train", cache_dir=cache).images) == [20]


def test_a_shard_index_cache_sees_an_edited_classes_txt(tmp_path):
    write_shard(tmp_path / "train" / "s0.tar", ["0", "1"])
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    assert index_shards(tmp_path / "train", cache_dir=tmp_path / "cache").classes == ("cat", "dog")
    (tmp_path / "classes.txt").write_text("bird\nfish\n")
    assert index_shards(tmp_path / "train", cache_dir=tmp_path / "cache").classes == ("bird", "fish")


# 2. labels checked when the shards are indexed


@pytest.mark.parametrize("label", ["-1", "-100", "+3", "1e3"])
def test_a_label_that_is_not_a_class_index_names_its_shard_and_sample(tmp_path, label):
    write_shard(tmp_path / "train" / "s0.tar", ["0", label, "1"])
    with pytest.raises(ShardError, match=r"s0\.tar: sample '0001'.*not a class index"):
        index_shards(tmp_path / "train")


def test_a_label_far_beyond_the_classes_present_asks_for_classes_txt(tmp_path):
    write_shard(tmp_path / "train" / "s0.tar", ["0", "1", "100000"])
    with pytest.raises(ShardError, match=r"s0\.tar: sample '0002' has class index 100000.*classes\.txt"):
        index_shards(tmp_path / "train")
    (tmp_path / "classes.txt").write_text("".join(f"c{i}\n" for i in range(100_001)))
    assert len(index_shards(tmp_path / "train").classes) == 100_001  # classes.txt says how many there are


def test_a_label_beyond_classes_txt_names_its_shard_and_sample(tmp_path):
    write_shard(tmp_path / "train" / "s0.tar", ["0", "1"])
    write_shard(tmp_path / "train" / "s1.tar", ["2", "3"])
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    with pytest.raises(ShardError, match=r"s1\.tar: sample '0001' has class index 3.*classes\.txt names 3"):
        index_shards(tmp_path / "train")


def test_without_classes_txt_the_classes_are_the_indices_up_to_the_largest(tmp_path):
    write_shard(tmp_path / "train" / "s0.tar", ["0", "2", "2"])
    assert index_shards(tmp_path / "train").classes == ("0", "1", "2")


# 6. shards cut short


def _cut_shard(tmp_path: Path, where: str) -> Path:
    path = write_shard(tmp_path / "train" / "s0.tar", [str(n % 2) for n in range(32)])
    with tarfile.open(path) as archive:
        members = archive.getmembers()
    middle = members[len(members) // 2]
    end = members[-1].offset_data + members[-1].size
    padded = -(-end // 512) * 512
    cut = {"at a header": middle.offset, "in a header": middle.offset + 100, "in a member": middle.offset_data + 5,
           "after the last member": padded, "in the end marker": padded + 512}[where]  # fmt: skip
    path.write_bytes(path.read_bytes()[:cut])
    return path


@pytest.mark.parametrize("where", ["at a header", "in a header", "in a member", "after the last member",
                                   "in the end marker"])  # fmt: skip
def test_a_shard_cut_short_anywhere_is_named(tmp_path, where):
    _cut_shard(tmp_path, where)
    with pytest.raises(ShardError, match=r"s0\.tar cannot be read to the end"):
        index_shards(tmp_path / "train")


def test_a_cut_gzip_shard_is_named(tmp_path):
    path = write_shard(tmp_path / "train" / "s0.tar", ["0", "1"] * 8)
    (tmp_path / "train" / "s0.tar.gz").write_bytes(gzip.compress(path.read_bytes())[:-200])
    path.unlink()
    with pytest.raises(ShardError, match=r"s0\.tar\.gz cannot be read to the end"):
        index_shards(tmp_path / "train")


def test_a_whole_shard_and_one_with_trailing_padding_are_accepted(tmp_path):
    path = write_shard(tmp_path / "train" / "s0.tar", ["0", "1"] * 8)
    path.write_bytes(path.read_bytes() + bytes(4096))
    assert index_shards(tmp_path / "train").counts == (16,)


def test_with_skip_bad_a_cut_shard_is_left_out_and_named(tmp_path):
    _cut_shard(tmp_path, "at a header")
    write_shard(tmp_path / "train" / "s1.tar", ["0", "1"])
    index = index_shards(tmp_path / "train", skip_bad=True)
    assert [Path(p).name for p in index.shards] == ["s1.tar"] and index.counts == (2,)
    assert [Path(p).name for p in index.skipped_shards] == ["s0.tar"]


# 7. archives read by the folders' rules


def _archive_options(archive: Path, **changes) -> DataOptions:
    return DataOptions(str(archive), cache_dir=None, **changes)


def test_an_archive_honours_the_memory_budget(tmp_path, model):
    images = {f"train/a/{n}.png": png(n, size=32) for n in range(8)}
    archive = write_archive(tmp_path / "data.tar.gz", images)
    with pytest.raises(ValueError, match=r"data\.tar\.gz.*memory budget of 1e-05 GB"):
        open_splits(_archive_options(archive, memory_budget_gb=1e-5), model, 4, 32)
    huge = write_archive(tmp_path / "huge.tar.gz", {"train/a/big.png": bytes(2**20), **images})
    with pytest.raises(ValueError, match=r"huge\.tar\.gz:train/a/big\.png is 1\.0 MiB.*memory budget"):
        open_splits(_archive_options(huge, memory_budget_gb=1e-4), model, 4, 32)
    assert len(open_splits(_archive_options(archive), model, 4, 32).train.data) == 8


def test_an_archive_skips_and_counts_unreadable_images_with_skip_bad(tmp_path, model):
    members = {"train/a/0.png": png(1), "train/a/1.png": b"not an image", "train/b/2.png": png(2),
               "test/a/0.png": png(3), "test/b/1.png": png(4)[:40]}  # fmt: skip
    archive = write_archive(tmp_path / "data.tar.gz", members)
    with pytest.raises(BadImageError, match=r"data\.tar\.gz:train/a/1\.png cannot be read.*--skip-bad-images"):
        open_splits(_archive_options(archive), model, 1, 32)
    splits = open_splits(_archive_options(archive, skip_bad=True, eval_test=True), model, 1, 32)
    assert len(splits.train.data) == 2 and len(splits.test.data) == 1
    for loader, skipped in ((splits.train, 1), (splits.test, 1)):
        list(loader.epoch(0))
        assert loader.skipped == skipped  # what the loop reports after each pass


def test_an_archive_skips_dot_files_and_other_files_and_keeps_nested_images(tmp_path):
    members = {"train/a/0.png": png(1), "train/a/._0.png": b"\0\5\26\7AppleDouble", "train/a/.hidden/1.png": png(9),
               "__MACOSX/train/a/._0.png": b"\0\5\26\7", "train/a/notes.txt": b"hello",
               "train/b/sub/deeper/2.png": png(2), "train/b/3.PNG": png(3)}  # fmt: skip
    data = load_image_folder(write_archive(tmp_path / "data.tar.gz", members), "train")
    assert data.classes == ("a", "b") and values(data.images) == [1, 3, 2] and data.labels.tolist() == [0, 1, 1]
    # the folder path reads the same tree the same way, in the same order (class, then path)
    folder = tmp_path / "tree"
    for name, payload in members.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(payload)
    from_folder = load_image_folder(folder, "train")
    assert from_folder.classes == data.classes and torch.equal(from_folder.images, data.images)


@pytest.mark.parametrize("name", ["../train/evil/0.png", "/train/evil/0.png", "train/a/../../evil/0.png"])
def test_an_archive_member_outside_the_archive_is_refused(tmp_path, name):
    archive = write_archive(tmp_path / "data.tar.gz", {"train/a/0.png": png(1), name: png(2)})
    with pytest.raises(ValueError, match=rf"data\.tar\.gz: member '{name}'.*\.\."):
        load_image_folder(archive, "train")


@pytest.mark.parametrize("damage", ["cut gzip", "cut tar", "not a tar", "huge header"])
def test_a_damaged_archive_is_an_error_naming_it(tmp_path, damage):
    members = {f"train/a/{n}.png": png(n) for n in range(16)}
    if damage == "cut gzip":
        path = write_archive(tmp_path / "data.tar.gz", members)
        path.write_bytes(path.read_bytes()[:-300])
    elif damage == "cut tar":
        path = write_archive(tmp_path / "data.tar", members, mode="w")
        with tarfile.open(path) as archive:
            path.write_bytes(path.read_bytes()[: archive.getmembers()[8].offset])
    elif damage == "not a tar":
        path = tmp_path / "data.tar.gz"
        path.write_bytes(gzip.compress(b"just some text, no tar here" * 40))
    else:  # a header declaring a terabyte of extended header
        pax = tarfile.TarInfo("././@PaxHeader")
        pax.type, pax.size = tarfile.XHDTYPE, 10**12
        path = tmp_path / "data.tar.gz"
        path.write_bytes(gzip.compress(pax.tobuf(format=tarfile.GNU_FORMAT) + png(1)))
    with pytest.raises(ValueError, match=r"data\.tar(\.gz)? cannot be read"):
        load_image_folder(path, "train")


# 8a. every decoder error names the file, decompression bombs included


def test_a_decompression_bomb_is_named_on_every_path(tmp_path, model):
    root = write_tree(tmp_path / "data", {"a": [1, 2], "b": [3, 4]})
    bomb = root / "train" / "a" / "000.png"
    bomb.write_bytes(png_header(30_000, 30_000))
    named = rf"{bomb}.*cannot be read as an image.*[Dd]ecompression bomb"
    with pytest.raises(BadImageError, match=named):
        open_image(bomb, str(bomb))
    with pytest.raises(BadImageError, match=named):
        load_image_folder(root, "train")
    splits = open_splits(DataOptions(str(root)), model, 4, 32)  # auto: read the headers, then stream
    with pytest.raises(BadImageError, match=named):
        list(splits.train.epoch(0))
    dataset = ImageFileDataset([(str(bomb), 0)], ("a",), eval_transform(model), skip_bad=True)
    assert dataset[0] is None


def test_a_decompression_bomb_in_a_shard_names_shard_and_sample(tmp_path, model):
    write_shard(tmp_path / "train" / "s0.tar", ["0", "1"], image=png_header(30_000, 30_000))
    dataset = TarShardDataset(index_shards(tmp_path / "train"), eval_transform(model))
    with pytest.raises(BadImageError, match=r"s0\.tar:0000 cannot be read as an image"):
        next(iter(dataset))


# 9. images of more than 8 bits scaled, not saturated


def test_sixteen_bit_greyscale_is_scaled_to_eight_bits(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 30000, 65535, 257 * 100]], dtype=np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    image = open_image(path, str(path))
    assert image.mode == "RGB" and [image.getpixel((x, 0)) for x in range(4)] == [
        (0, 0, 0), (117, 117, 117), (255, 255, 255), (100, 100, 100)]  # fmt: skip


def test_thirty_two_bit_integer_and_float_images_are_scaled_to_eight_bits(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)).save(path)
    assert [open_image(path, str(path)).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]
    path = tmp_path / "int.tif"
    Image.fromarray(np.array([[0, 65535 * 2, 65535 * 4]], dtype=np.int32)).save(path)
    assert Image.open(path).mode == "I"
    assert [open_image(path, str(path)).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


# 12. every loader reports the images it skipped in its last pass


def test_a_streamed_folder_reports_skipped_test_images(tmp_path, model):
    root = write_tree(tmp_path / "data", {"a": [1, 2], "b": [3, 4]})
    write_tree(root, {"a": [5], "b": [6]}, split="test")
    (root / "test" / "b" / "007.png").write_bytes(b"broken")
    splits = open_splits(DataOptions(str(root), mode="stream", skip_bad=True, eval_test=True), model, 2, 32)
    list(splits.test.epoch(0))
    assert splits.test.skipped == 1
