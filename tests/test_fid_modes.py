"""FID's resize modes are each exact to their reference library, and so are the features, FID, IS and KID computed
through them: pytorch-fid (``pytorch-fid``), torch-fidelity (``tf``, and IS and KID) and clean-fid (``clean``)."""

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_fid import inception as pytorch_fid_inception

from conftest import relative_error
from inceptionzoo.fid import (
    RESIZE_MODES,
    compute,
    fid_features,
    fid_network,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    resize_for_fid,
)

torch_fidelity = pytest.importorskip("torch_fidelity")
cleanfid_resize = pytest.importorskip("cleanfid.resize")
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3  # noqa: E402
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x  # noqa: E402
from torch_fidelity.metric_isc import isc_features_to_metric  # noqa: E402
from torch_fidelity.metric_kid import kid_features_to_metric  # noqa: E402

SIZES = st.tuples(st.integers(1, 340), st.integers(1, 340))


def random_images(shape: tuple[int, int], count: int = 1, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, *shape), dtype=torch.uint8, generator=generator)


def tf_reference(images: torch.Tensor) -> torch.Tensor:
    """torch-fidelity's TF 1.x bilinear resize of the 0-255 values and its ``(x - 128) / 128``."""
    resized = interpolate_bilinear_2d_like_tensorflow1x(images.float(), size=(299, 299), align_corners=False)
    return (resized - 128) / 128


def clean_reference(images: torch.Tensor) -> torch.Tensor:
    """clean-fid's ``clean`` resize of each uint8 image, and the ``(x - 128) / 128`` of its Inception wrapper."""
    resize = cleanfid_resize.build_resizer("clean")
    resized = [torch.from_numpy(resize(image.permute(1, 2, 0).numpy())).permute(2, 0, 1) for image in images]
    return (torch.stack(resized) - 128) / 128


def pytorch_fid_reference(images: torch.Tensor) -> torch.Tensor:
    """pytorch-fid's ``ToTensor`` (``x / 255``), bilinear ``interpolate`` and ``2x - 1``."""
    x = images.float() / 255
    return 2 * torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) - 1


REFERENCES = {"tf": tf_reference, "clean": clean_reference, "pytorch-fid": pytorch_fid_reference}


@settings(max_examples=20, deadline=None)
@given(size=SIZES, seed=st.integers(0, 2**16))
def test_each_resize_is_exact_to_the_bit(size, seed):
    """Every mode equals its reference exactly on the CPU, at any image size, down- or up-sampling."""
    images = random_images(size, seed=seed)
    for mode, reference in REFERENCES.items():
        assert torch.equal(resize_for_fid(images, mode), reference(images).float()), (mode, size)


def test_the_modes_differ_and_each_is_batch_independent():
    images = torch.cat([random_images((32, 32), 3, seed=1)])
    resized = {mode: resize_for_fid(images, mode) for mode in RESIZE_MODES}
    assert relative_error(resized["tf"], resized["pytorch-fid"]) > 1e-3
    assert relative_error(resized["clean"], resized["pytorch-fid"]) > 1e-3
    for mode in RESIZE_MODES:
        one_by_one = torch.cat([resize_for_fid(image[None], mode) for image in images])
        assert torch.equal(one_by_one, resized[mode])


@pytest.fixture(scope="module")
def references(fid_model, tmp_path_factory):
    """pytorch-fid's and torch-fidelity's networks holding ``fid_model``'s weights."""
    state_dict = fid_model.state_dict()
    original = pytorch_fid_inception.load_state_dict_from_url
    pytorch_fid_inception.load_state_dict_from_url = lambda *args, **kwargs: state_dict
    try:
        pytorch_fid = pytorch_fid_inception.InceptionV3(output_blocks=[3], resize_input=False, normalize_input=False)
    finally:
        pytorch_fid_inception.load_state_dict_from_url = original
    path = tmp_path_factory.mktemp("torch-fidelity") / "weights.pth"
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    path.write_bytes(buffer.getvalue())
    fidelity = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"], str(path))
    return pytorch_fid.eval(), fidelity.eval()


def mixed_images() -> list[torch.Tensor]:
    return [random_images(shape, seed=i)[0] for i, shape in enumerate([(32, 32), (40, 28), (64, 64), (17, 90)])]


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_features_and_fid_equal_the_references(mode, fid_model, references):
    """The network's pool3 features through each mode equal the reference library's (pytorch-fid's network with
    the resized input for ``pytorch-fid`` and ``clean``, torch-fidelity's whole pipeline for ``tf``), and so does
    the FID between two such sets."""
    pytorch_fid, fidelity = references
    images = mixed_images()
    ours = torch.cat([fid_features(fid_model, image[None], mode) for image in images])
    with torch.no_grad():
        if mode == "tf":
            theirs = torch.cat([fidelity(image[None])[0] for image in images])
        else:
            theirs = torch.cat([pytorch_fid(REFERENCES[mode](image[None]).float())[0].flatten(1) for image in images])
    assert relative_error(ours, theirs) < 1e-6
    half = len(images) // 2
    fid_ours = frechet_distance(ours[:half].double(), ours[half:].double())
    fid_theirs = frechet_distance(theirs[:half].double(), theirs[half:].double())
    assert fid_ours == pytest.approx(fid_theirs, rel=1e-5)


def test_the_fast_path_drifts_by_rounding_only_and_logits_are_torch_fidelitys(fid_model, references):
    _, fidelity = references
    images = torch.cat([random_images((48, 48), 2, seed=5)])
    exact = fid_network(fid_model, fast=False, allow_random_weights=True)
    fast = fid_network(fid_model, allow_random_weights=True)
    exact_features = fid_features(exact, images, "tf")
    assert relative_error(fid_features(fast, images, "tf"), exact_features) < 1e-5
    with torch.no_grad():
        features, logits = fidelity(images)
    assert relative_error(exact_features, features) < 1e-6
    assert relative_error(exact.logits(exact_features), logits) < 1e-5


@settings(max_examples=10, deadline=None)
@given(count=st.integers(20, 60), classes=st.integers(2, 40), splits=st.integers(1, 10), seed=st.integers(0, 999))
def test_inception_score_is_torch_fidelitys(count, classes, splits, seed):
    logits = torch.randn(count, classes, generator=torch.Generator().manual_seed(seed)) * 3
    theirs = isc_features_to_metric(logits, splits=splits, shuffle=True, rng_seed=2020)
    ours = inception_score(logits, splits=splits)
    assert ours[0] == pytest.approx(theirs["inception_score_mean"], rel=1e-12)
    assert ours[1] == pytest.approx(theirs["inception_score_std"], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("subsets", "size"), [(5, 30), (10, 50)])
def test_kid_is_torch_fidelitys(subsets, size):
    generator = torch.Generator().manual_seed(size)
    a = torch.rand(80, 64, generator=generator, dtype=torch.float64)
    b = torch.rand(70, 64, generator=generator, dtype=torch.float64) * 1.1
    kwargs = {"kid_subsets": subsets, "kid_subset_size": size, "verbose": False}
    theirs = kid_features_to_metric(a, b, **kwargs)
    ours = kernel_inception_distance(a, b, subsets=subsets, subset_size=size)
    assert ours[0] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-9)
    assert ours[1] == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-9)


def test_is_and_kid_come_from_the_same_pass(fid_model):
    a = [random_images((32, 32), seed=10 + i)[0] for i in range(4)]
    b = [random_images((32, 32), seed=20 + i)[0] for i in range(4)]
    with pytest.warns(UserWarning):
        result = compute(torch.stack(a), torch.stack(b), model=fid_model, allow_random_weights=True, isc=True,
                         isc_splits=2, kid=True, kid_subsets=3, kid_subset_size=3, batch_size=3)  # fmt: skip
    assert set(result.inception_score) == {"a", "b"} and all(np.isfinite(v[0]) for v in result.inception_score.values())
    assert result.kid is not None and np.isfinite(result.kid[0])
