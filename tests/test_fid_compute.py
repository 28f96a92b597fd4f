"""``inceptionzoo fid A B`` and ``fid.compute``: sets from folders, tars, tensors and statistics files; the result
does not depend on batch size or threads; statistics round-trip through pytorch-fid's loader; the published weights
are required; mistakes are named."""

import copy
import json
import sys
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_fid.fid_score import compute_statistics_of_path

import inceptionzoo
from conftest import relative_error
from inceptionzoo.cli import main
from inceptionzoo.fid import (
    FeatureStatistics,
    FewImagesWarning,
    RandomWeightsWarning,
    Statistics,
    compute,
    feature_statistics,
    fid_features,
    fid_network,
    frechet_distance,
    load_statistics,
    save_statistics,
    set_statistics,
)


def image_folder(root: Path, count: int, seed: int) -> Path:
    """``count`` PNG photos of mixed sizes in two subfolders."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        height, width = rng.integers(20, 70, size=2)
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        target = root / f"part{index % 2}" / f"{index:03d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(target)
    return root


@pytest.fixture
def two_folders(tmp_path) -> tuple[Path, Path]:
    return image_folder(tmp_path / "a", 5, seed=1), image_folder(tmp_path / "b", 4, seed=2)


def quiet_compute(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewImagesWarning)
        return compute(*args, **kwargs)


def test_folders_tars_and_tensors_give_one_figure(two_folders, tmp_path, published_fid_weights):
    """The published weights are found offline and named (tag and sha256); a folder, the same images in a .tar.gz
    (whole, or a folder inside it) and a .pt tensor of the decoded images give the same FID."""
    folder_a, folder_b = two_folders
    result = quiet_compute(folder_a, folder_b, batch_size=2)
    assert result.counts == {"a": 5, "b": 4} and result.fid > 0
    assert result.weights.startswith("tf_2015_12_05 (sha256 ") and result.precision == "fast float32"
    archive = tmp_path / "sets.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder_a, arcname="a")
        tar.add(folder_b, arcname="b")
    assert quiet_compute(archive / "a", archive / "b", batch_size=3).fid == pytest.approx(result.fid, rel=1e-9)
    same_size = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    torch.save(same_size, tmp_path / "images.pt")
    from_file = quiet_compute(tmp_path / "images.pt", folder_b)
    assert from_file.fid == pytest.approx(quiet_compute(same_size, folder_b).fid, rel=1e-12)


def test_batch_size_and_threads_do_not_change_the_figure(fid_model, cifar_subset):
    """Batch sizes 1, 3 and 8 and 1 or 2 threads: each image's features agree within 1e-6 relative, and FID within
    1e-6 of the features' mean squared norm (``|mu_a|^2 + tr(S_a) + |mu_b|^2 + tr(S_b)``, the size of the terms
    whose difference it is; docs/fid.md)."""
    photos = sorted(cifar_subset.rglob("*.jpg"))[:8]
    images = torch.stack(
        [torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1) for path in photos]
    )
    network = fid_network(fid_model, allow_random_weights=True)
    runs = []
    threads = torch.get_num_threads()
    try:
        for batch_size, thread_count in [(1, 1), (3, 1), (8, 1), (8, 2)]:
            torch.set_num_threads(thread_count)
            runs.append(torch.cat([fid_features(network, images[i : i + batch_size]) for i in range(0, 8, batch_size)]))
    finally:
        torch.set_num_threads(threads)
    for features in runs[1:]:
        assert relative_error(features, runs[0]) < 1e-6
    figures = [frechet_distance(features[:4].double(), features[4:].double()) for features in runs]
    scale = float(runs[0].double().pow(2).sum(1).mean())
    assert max(figures) - min(figures) <= 1e-6 * scale


@pytest.mark.parametrize("batch_sizes", [(1, 7, 50, 200)])
def test_statistics_do_not_depend_on_batching(batch_sizes):
    """The float64 accumulation of float32 features: any batching gives the statistics of the whole set."""
    features = torch.rand(450, 32, generator=torch.Generator().manual_seed(0)) * 3
    whole = feature_statistics(features)
    for size in batch_sizes:
        accumulator = FeatureStatistics()
        for start in range(0, len(features), size):
            accumulator.update(features[start : start + size])
        parts = accumulator.compute()
        assert torch.allclose(parts.mean, whole.mean, rtol=1e-13, atol=0)
        assert torch.allclose(parts.cov, whole.cov, rtol=1e-12, atol=1e-14)
    other = torch.rand(300, 32, generator=torch.Generator().manual_seed(1))
    assert frechet_distance(whole, other) == pytest.approx(frechet_distance(features, other), rel=1e-12)


def exact_small_sample_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The exact FID when set ``a`` has fewer images than dimensions, by another route than the library's: with
    ``A`` the centred features, ``tr((S_a S_b)^(1/2)) = tr((A S_b A^T / (n_a - 1))^(1/2))``, whose matrix has the
    centring's zero eigenvalue along the all-ones vector; projected onto the complement of that vector it has none,
    so the square roots of its eigenvalues are exact (a root of a rounded zero would add about 1e-8)."""
    centred = a - a.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    basis = np.linalg.qr(np.eye(len(a)) - 1 / len(a))[0][:, : len(a) - 1]  # orthonormal, orthogonal to the ones
    projected = basis.T @ centred @ cov_b @ centred.T @ basis / (len(a) - 1)
    trace_sqrt = np.sqrt(np.linalg.eigvalsh((projected + projected.T) / 2).clip(min=0)).sum()
    difference = a.mean(0) - b.mean(0)
    return float(difference @ difference + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


@pytest.mark.parametrize(("n_a", "n_b", "dim"), [(10, 12, 256), (40, 500, 256), (300, 30, 128)])
def test_the_distance_is_exact_with_fewer_images_than_dimensions(n_a, n_b, dim):
    generator = np.random.default_rng(n_a)
    a = generator.random((n_a, dim))
    b = generator.random((n_b, dim)) * 1.2 + 0.1
    small, large = (a, b) if n_a <= n_b else (b, a)
    expected = exact_small_sample_fid(small, large)
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected, rel=1e-10)
    assert frechet_distance(torch.from_numpy(b), torch.from_numpy(a)) == pytest.approx(expected, rel=1e-10)


def test_statistics_files_round_trip_through_pytorch_fid(tmp_path):
    features = torch.rand(40, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    statistics = feature_statistics(features)
    statistics.resize_mode, statistics.weights = "tf", "tf_2015_12_05 (sha256 6726825d0000)"
    path = tmp_path / "stats.npz"
    save_statistics(path, statistics)
    mean, cov = compute_statistics_of_path(str(path), None, 50, 16, "cpu")
    assert np.array_equal(mean, statistics.mean.numpy()) and np.array_equal(cov, statistics.cov.numpy())
    loaded = load_statistics(path)
    assert (loaded.count, loaded.resize_mode, loaded.weights) == (40, "tf", statistics.weights)
    theirs = tmp_path / "theirs.npz"
    np.savez(theirs, mu=mean, sigma=cov)  # a file as pytorch-fid's --save-stats writes it
    with pytest.warns(UserWarning, match="does not say which resize"):
        assert load_statistics(theirs).resize_mode is None
    assert frechet_distance(load_statistics(path), features) == pytest.approx(0, abs=1e-9)


def test_a_statistics_file_of_another_resize_mode_is_refused(tmp_path, fid_model):
    statistics = Statistics(torch.zeros(2048), torch.eye(2048), 10, "clean")
    save_statistics(tmp_path / "clean.npz", statistics)
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"resize mode 'clean', not 'tf'.*--resize-mode clean"):
        compute(tmp_path / "clean.npz", images, resize_mode="tf", model=fid_model, allow_random_weights=True)
    other_weights = Statistics(torch.zeros(2048), torch.eye(2048), 10, "pytorch-fid", "tf_2015_12_05 (sha256 0)")
    with pytest.raises(ValueError, match=r"statistics come from weights tf_2015_12_05 \(sha256 0\), these features"):
        compute(other_weights, images, model=fid_model, allow_random_weights=True)
    with pytest.raises(ValueError, match=r"resized with 'clean' and set b with 'tf'"):
        frechet_distance(statistics, Statistics(torch.zeros(2048), torch.eye(2048), 10, "tf"))


def test_without_the_published_weights_fid_refuses(fid_model):
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"holds no published weights, so its FID would mean nothing"):
        compute(images, images, model=fid_model)
    with pytest.raises(Exception, match=r"inception_v3_fid"):  # offline, and nothing cached: the hub's error
        compute(images, images)
    with pytest.warns(RandomWeightsWarning):
        result = quiet_compute(images, images, model=fid_model, allow_random_weights=True)
    assert result.weights.startswith("random") and result.fid == pytest.approx(0, abs=1e-6)
    assert any("random weights" in note for note in result.warnings)


def test_few_images_warn():
    features = torch.rand(30, 64, generator=torch.Generator().manual_seed(0))
    statistics = feature_statistics(features)
    statistics.count = 30
    with pytest.warns(FewImagesWarning, match=r"fewer images than FID's 2048 feature dimensions \(set a: 30"):
        compute(statistics, feature_statistics(features + 0.1))


@pytest.mark.parametrize(
    ("a", "message"),
    [
        (torch.full((2, 3, 8, 8), float("nan")), r"a\[0\]: the images hold NaN"),
        (torch.rand(1, 3, 8, 8), r"2 or more images per set, got 1"),
        (torch.rand(2, 4, 8, 8), r"expected images as \(n, 3, height, width\), got shape \[2, 4, 8, 8\]"),
    ],
)
def test_bad_images_are_named(a, message, fid_model):
    with pytest.raises(ValueError, match=message):
        compute(a, torch.rand(2, 3, 8, 8), model=fid_model, allow_random_weights=True)


def test_bad_statistics_files_are_named(tmp_path):
    np.savez(tmp_path / "wrong.npz", mean=np.zeros(4))
    with pytest.raises(ValueError, match=r"holds mean, not FID statistics.*'mu' and 'sigma'"):
        load_statistics(tmp_path / "wrong.npz")
    np.savez(tmp_path / "shape.npz", mu=np.zeros(4), sigma=np.eye(3))
    with pytest.raises(ValueError, match=r"the covariance must be \(4, 4\)"):
        load_statistics(tmp_path / "shape.npz")
    np.savez(tmp_path / "text.npz", mu=np.array(["a", "b"]), sigma=np.eye(2))
    with pytest.raises(ValueError, match=r"as real numbers"):
        load_statistics(tmp_path / "text.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"cannot be read as an .npz"):
        load_statistics(tmp_path / "broken.npz")
    with pytest.raises(ValueError, match=r"not a set of images FID reads"):
        compute(_text_file(tmp_path), tmp_path / "wrong.npz")


def _text_file(folder: Path) -> Path:
    path = folder / "notes.txt"
    path.write_text("hello")
    return path


def test_the_command_line(two_folders, tmp_path, published_fid_weights, capsys):
    folder_a, folder_b = two_folders
    stats = tmp_path / "a.npz"
    assert main(["fid", str(folder_a), "--save-stats", str(stats), "--quiet"]) == 0
    assert load_statistics(stats).count == 5
    out = tmp_path / "result.json"
    arguments = ["--json", str(out), "--isc", "--isc-splits", "2", "--quiet", "--batch-size", "3"]
    assert main(["fid", str(stats), str(folder_b), *arguments]) == 0
    result = json.loads(out.read_text())
    assert result == json.loads(capsys.readouterr().out)
    assert result["counts"] == {"a": 5, "b": 4} and result["resize_mode"] == "pytorch-fid"
    assert result["images_processed"] == 4  # the statistics file is read, not recomputed
    assert set(result["inception_score"]) == {"b"} and result["fid"] > 0
    assert any("fewer images than FID's 2048" in note for note in result["warnings"])
    direct = quiet_compute(folder_a, folder_b)
    assert result["fid"] == pytest.approx(direct.fid, rel=1e-9)
    capsys.readouterr()
    assert main(["fid", str(folder_a)]) == 2
    assert "give two sets (inceptionzoo fid A B), or one with --save-stats" in capsys.readouterr().err


def test_the_command_lines_modes_are_the_librarys():
    """``--help`` names the resize modes without importing torch; they are the library's, the default first."""
    from inceptionzoo.cli import FID_RESIZE_MODES
    from inceptionzoo.fid import DEFAULT_RESIZE_MODE, RESIZE_MODES

    assert FID_RESIZE_MODES == RESIZE_MODES and FID_RESIZE_MODES[0] == DEFAULT_RESIZE_MODE


def test_allowing_random_weights_still_uses_the_published_ones_where_they_are(published_fid_weights):
    assert fid_network(allow_random_weights=True, fast=False).weights.startswith("tf_2015_12_05 (sha256 ")


def test_set_statistics_keeps_what_made_them(two_folders, published_fid_weights, tmp_path):
    statistics = set_statistics(two_folders[0], resize_mode="clean", save=tmp_path / "s.npz")
    assert statistics.resize_mode == "clean" and statistics.weights.startswith("tf_2015_12_05")
    assert load_statistics(tmp_path / "s.npz").weights == statistics.weights


def test_an_optimized_model_gives_features_and_auto_precision_is_refused(fid_model):
    """An optimized copy without its classifier works in ``fid_features``; one that still gives its 1008 logits is
    named; and FID never picks a precision by itself (``dtype="auto"`` could pick bf16 and move the figure)."""
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    body = copy.deepcopy(fid_model)
    body.reset_classifier(0)
    fast = inceptionzoo.optimize_for_inference(body, dtype=torch.float32)
    assert relative_error(fid_features(fast, images), fid_features(fid_model, images)) < 1e-5
    with pytest.raises(ValueError, match=r"gave its 1008 class logits, not pool features: call reset_classifier\(0\)"):
        fid_features(inceptionzoo.optimize_for_inference(fid_model, dtype=torch.float32), images)
    with pytest.raises(ValueError, match=r"FID runs in torch.float32 \(exact\), or torch.bfloat16 or 'int8'"):
        fid_network(fid_model, dtype="auto", allow_random_weights=True)


def test_a_bf16_run_says_so_and_reports_its_drift(fid_model):
    """bf16 only when asked; its result names the precision and the FID drift it caused on the first images."""
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        exact = compute(images, images.flip(3), model=fid_model, allow_random_weights=True)
        bf16 = compute(images, images.flip(3), model=fid_model, allow_random_weights=True, dtype=torch.bfloat16)
    assert exact.precision == "fast float32" and exact.precision_drift is None
    assert bf16.precision == "fast bfloat16" and np.isfinite(bf16.precision_drift) and bf16.precision_drift != 0


def test_an_int8_run_is_calibrated_on_the_first_set_and_reports_its_drift(fid_model, tmp_path, capsys, monkeypatch):
    """int8 only when asked: calibrated on the first set's images after those its drift is measured on (32, here 4
    to keep the test small), named in the result with its drift; refused without calibration images, and the
    command line saves no int8 statistics."""
    monkeypatch.setattr(sys.modules["inceptionzoo.fid.compute"], "DRIFT_IMAGES", 4)  # the module, not the function
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(9))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        exact = compute(images, images.flip(3)[:4], model=fid_model, allow_random_weights=True)
        int8 = compute(images, images.flip(3)[:4], model=fid_model, allow_random_weights=True, dtype="int8")
    assert int8.precision == "int8 (calibrated on 2 images)" and int8.counts == exact.counts == {"a": 6, "b": 4}
    assert np.isfinite(int8.precision_drift) and int8.precision_drift != 0
    assert int8.fid == pytest.approx(exact.fid, rel=0.5)  # int8 moves FID, but not by orders of magnitude
    with pytest.raises(ValueError, match=r"int8 FID needs calibration_images"):
        fid_network(fid_model, dtype="int8", allow_random_weights=True)
    assert main(["fid", str(tmp_path), "--save-stats", str(tmp_path / "s.npz"), "--int8"]) == 2
    assert "--int8 is for quick comparisons" in capsys.readouterr().err
