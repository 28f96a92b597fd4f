"""CIFAR-style data as in-memory tensors, with batch augmentation, on a tiny ImageFolder tree made here."""

import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from inceptionzoo.train.data import batches, load_image_folder, split_validation


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "tiny"
    for split, count in (("train", 6), ("test", 2)):
        for name in ("cat", "ship"):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i:04d}.png")
    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "train", arcname="train")
        tar.add(root / "test", arcname="test")
    return root, archive


def test_folder_and_archive_load_the_same_tensors(folder, tmp_path):
    root, archive = folder
    from_dir = load_image_folder(root, "train")
    from_tar = load_image_folder(archive, "train", cache_dir=tmp_path / "cache")
    assert from_dir.images.shape == (12, 3, 32, 32) and from_dir.images.dtype == torch.uint8
    assert from_dir.classes == ("cat", "ship") and from_dir.labels.tolist() == [0] * 6 + [1] * 6
    assert torch.equal(from_dir.images, from_tar.images) and torch.equal(from_dir.labels, from_tar.labels)
    expected = np.array(Image.open(root / "train" / "ship" / "0000.png"))
    assert torch.equal(from_dir.images[6], torch.from_numpy(expected).permute(2, 0, 1))
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    cached = load_image_folder(archive, "train", cache_dir=tmp_path / "cache")
    assert torch.equal(cached.images, from_tar.images)
    assert len(load_image_folder(archive, "test")) == 4


def test_missing_or_empty_sources_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected a folder"):
        load_image_folder(tmp_path / "nowhere", "train")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match="train has no class folders"):
        load_image_folder(tmp_path / "empty", "train")
    (tmp_path / "empty" / "train" / "cat").mkdir()
    with pytest.raises(ValueError, match="class folder .*train/cat holds no images"):
        load_image_folder(tmp_path / "empty", "train")


def test_images_of_other_sizes_or_unreadable_files_are_named(folder, tmp_path):
    root, _ = folder
    Image.new("RGB", (48, 40)).save(root / "train" / "ship" / "9999.png")
    with pytest.raises(ValueError, match=r"ship/9999\.png is 48x40 pixels, but .*cat/0000\.png is 32x32"):
        load_image_folder(root, "train")
    (root / "train" / "ship" / "9999.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"ship/9999\.png cannot be read as an image"):
        load_image_folder(root, "train")


def test_validation_split_is_balanced_and_disjoint(folder):
    data = load_image_folder(folder[0], "train")
    train, validation = split_validation(data, size=4, seed=1)
    assert len(train) == 8 and len(validation) == 4
    assert validation.labels.tolist().count(0) == 2
    seen = {tuple(img.flatten()[:16].tolist()) for img in train.images}
    assert not any(tuple(img.flatten()[:16].tolist()) in seen for img in validation.images)


def test_eval_batches_are_normalized_in_order(folder):
    data = load_image_folder(folder[0], "train")
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    out = list(batches(data, 5, mean, std))
    assert [len(y) for _, y in out] == [5, 5, 2]
    x = torch.cat([b for b, _ in out])
    expected = (data.images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(x, expected)
    assert out[0][0].is_contiguous(memory_format=torch.channels_last)


def test_train_batches_are_random_crops_and_flips_of_their_images(folder):
    data = load_image_folder(folder[0], "train")
    (x, y), *_ = batches(data, 12, (0.0,) * 3, (1.0,) * 3, train=True, seed=0, pad=4)
    padded = torch.nn.functional.pad(data.images, (4, 4, 4, 4)).float() / 255
    for image, label in zip(x, y, strict=True):
        candidates = [
            window
            for source in padded[data.labels == label]
            for dy in range(9)
            for dx in range(9)
            for window in (source[:, dy : dy + 32, dx : dx + 32], source[:, dy : dy + 32, dx : dx + 32].flip(-1))
        ]
        assert any(torch.equal(image, window) for window in candidates)
    again = next(batches(data, 12, (0.0,) * 3, (1.0,) * 3, train=True, seed=0))
    assert torch.equal(again[0], x)  # the same seed gives the same augmentation
    other = next(batches(data, 12, (0.0,) * 3, (1.0,) * 3, train=True, seed=0, epoch=1))
    assert not torch.equal(other[0], x)  # and the next epoch another
