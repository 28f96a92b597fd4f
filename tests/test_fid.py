"""inception_v3_fid is pytorch-fid's FID network, and inceptionzoo.fid computes pytorch-fid's distance."""

import hashlib
import io

import numpy as np
import pytest
import torch
from pytorch_fid import inception as pytorch_fid_inception
from pytorch_fid.fid_score import calculate_frechet_distance

import inceptionzoo
from conftest import realistic_batchnorm, relative_error
from inceptionzoo.fid import feature_statistics, fid_features, frechet_distance
from inceptionzoo.hub.urls import url_cache_dir

pytestmark = [
    pytest.mark.lowest,  # pytorch-fid builds its network from torchvision's Inception-v3
    pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated"),  # pytorch-fid's call of SciPy's sqrtm
]


@pytest.fixture(scope="module")
def fid_pair():
    """Our FID network with realistic BatchNorm statistics, and pytorch-fid's InceptionV3 holding the same weights
    (its download replaced by our state dict), both in eval mode."""
    torch.manual_seed(0)
    ours = realistic_batchnorm(inceptionzoo.create_model("inception_v3_fid"), size=299, batch=2)
    state_dict = ours.state_dict()
    original = pytorch_fid_inception.load_state_dict_from_url
    pytorch_fid_inception.load_state_dict_from_url = lambda *args, **kwargs: state_dict
    try:
        theirs = pytorch_fid_inception.InceptionV3(output_blocks=[0, 1, 2, 3]).eval()
    finally:
        pytorch_fid_inception.load_state_dict_from_url = original
    return ours, theirs


def test_the_network_and_its_taps_equal_pytorch_fids(fid_pair):
    ours, theirs = fid_pair
    assert ours.num_classes == 1008 and [info["num_chs"] for info in ours.feature_info] == [64, 192, 768, 2048]
    images = torch.rand(2, 3, 120, 90)  # any size: both resize to 299x299 the same way
    with torch.no_grad():
        their_blocks = theirs(images)
        x = torch.nn.functional.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
        _, our_maps = ours.forward_intermediates(x)
    for mine, reference in zip(our_maps[:3], their_blocks[:3], strict=True):
        assert mine.shape == reference.shape and relative_error(mine, reference) <= 1e-5
    pool3 = fid_features(ours, images)
    assert pool3.shape == (2, 2048) and relative_error(pool3, their_blocks[3].flatten(1)) <= 1e-5


def test_the_fid_pools_differ_from_the_reference_models():
    """The three departures are there: a model built without them gives other features from the same weights."""
    fid = realistic_batchnorm(inceptionzoo.create_model("inception_v3_fid"), size=96, batch=2)
    plain = inceptionzoo.create_model("inception_v3", num_classes=1008).eval()
    plain.load_state_dict(fid.state_dict())
    assert isinstance(fid.Mixed_7c.pool, torch.nn.MaxPool2d) and not fid.Mixed_5b.pool.count_include_pad
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        assert relative_error(plain.forward_features(x), fid.forward_features(x)) > 1e-3


def reference_frechet_distance(mean_a, cov_a, mean_b, cov_b) -> float:
    """FID in float64 NumPy, by another route than inceptionzoo.fid's and without SciPy (whose ``sqrtm`` signature
    changed under pytorch-fid): ``tr((S_a S_b)^(1/2))`` is the nuclear norm (sum of singular values, an exact SVD)
    of ``S_a^(1/2) S_b^(1/2)``, each root from ``eigh`` of a symmetric positive semi-definite matrix."""

    def root(cov: np.ndarray) -> np.ndarray:
        values, vectors = np.linalg.eigh(cov)
        return (vectors * np.sqrt(values.clip(min=0))) @ vectors.T

    trace_sqrt = np.linalg.svd(root(cov_a) @ root(cov_b), compute_uv=False).sum()
    difference = mean_a - mean_b
    return float(difference @ difference + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


def gaussian_sets(dim: int, shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(dim)
    mixing = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    a = torch.randn(400, dim, generator=generator, dtype=torch.float64) @ mixing
    b = torch.randn(300, dim, generator=generator, dtype=torch.float64) @ mixing.T + shift
    return a, b


def numpy_statistics(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    return x.numpy().mean(0), np.cov(x.numpy(), rowvar=False)


SETS = pytest.mark.parametrize(("dim", "shift"), [(8, 0.0), (32, 0.5), (64, 2.0)])


@SETS
def test_frechet_distance_equals_the_float64_formula(dim, shift):
    a, b = gaussian_sets(dim, shift)
    expected = reference_frechet_distance(*numpy_statistics(a), *numpy_statistics(b))
    assert expected > 0
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(feature_statistics(a), feature_statistics(b)) == pytest.approx(expected, rel=1e-6)
    assert abs(frechet_distance(a, a)) < 1e-6 * float(feature_statistics(a)[1].trace())


@SETS
def test_the_float64_formula_equals_pytorch_fids(dim, shift):
    """The reference is pytorch-fid's distance, where pytorch-fid runs: 0.3.0 calls ``scipy.linalg.sqrtm(...,
    disp=False)``, which SciPy 1.18 no longer accepts."""
    a, b = gaussian_sets(dim, shift)
    stats = [*numpy_statistics(a), *numpy_statistics(b)]
    try:
        theirs = calculate_frechet_distance(*stats)
    except TypeError as error:
        if "disp" not in str(error):
            raise
        pytest.skip(f"pytorch-fid cannot run with this SciPy ({error})")
    assert reference_frechet_distance(*stats) == pytest.approx(theirs, rel=1e-6)


def test_mistakes_are_named():
    model = inceptionzoo.create_model("inception_v3_fid")
    with pytest.raises(ValueError, match=r"eval mode"):
        fid_features(model.train(), torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"\(batch, 3, height, width\)"):
        fid_features(model.eval(), torch.rand(3, 64, 64))
    with pytest.raises(ValueError, match="different sizes"):
        frechet_distance(torch.rand(10, 4), torch.rand(10, 5))
    with pytest.raises(ValueError, match="feature_taps"):
        inceptionzoo.create_model("inception_v3_fid", stem_pool=False)


def test_the_published_weights_are_checked_cached_and_used_offline(hub, monkeypatch):
    """The tag's .pth as pytorch-fid publishes it (served by the loopback server under a name carrying its sha256
    prefix): fetched once, hash-checked, kept as safetensors, then loaded offline."""
    source = realistic_batchnorm(inceptionzoo.create_model("inception_v3_fid"), size=96, batch=2)
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    payload = buffer.getvalue()
    file_name = f"pt_inception-2015-12-05-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
    hub.files[file_name] = payload
    overlay = {"url": f"{hub.url}/files/{file_name}"}
    model = inceptionzoo.create_model("inception_v3_fid.tf_2015_12_05", pretrained=True, pretrained_cfg_overlay=overlay)
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in model.state_dict().items())
    assert (url_cache_dir() / file_name.replace(".pth", ".safetensors")).is_file()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    requests = len(hub.requests)
    again = inceptionzoo.create_model("inception_v3_fid.tf_2015_12_05", pretrained=True, pretrained_cfg_overlay=overlay)
    assert torch.equal(again.fc.weight, source.fc.weight) and len(hub.requests) == requests
    cfg = inceptionzoo.create_model("inception_v3_fid.tf_2015_12_05").pretrained_cfg
    assert cfg["url"].endswith("/pt_inception-2015-12-05-6726825d.pth") and cfg["license"] == "apache-2.0"
