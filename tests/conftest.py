import hashlib
import io
import os
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import timm
import torch
import torchvision
from PIL import Image
from safetensors.torch import save

import inceptionzoo
from hub_server import HubServer, use_xet_stand_in

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n N: the N processes share the cores. torch's default of one thread per core in each of them makes
    # their OpenMP threads spin against each other (on 2 cores the quick run had not finished after 17 minutes, against
    # 3 with one thread each); each takes its share instead, and so do the programs the tests start (OMP_NUM_THREADS)
    _THREADS = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    torch.set_num_threads(_THREADS)
    os.environ["OMP_NUM_THREADS"] = str(_THREADS)

import toy_family  # noqa: F401  (registers toy_inception before the registry is read: CONTRIBUTING.md's walk)

MODEL_NAMES = inceptionzoo.list_models()


def _distinct_networks() -> list[str]:
    """One name per distinct network (class and config): Table 3's rows 4-6 are one network trained three ways, so
    the slow export tests (TorchScript, fx, compile, ONNX) take it once; every other test takes every name."""
    seen: dict[tuple[str, str], str] = {}
    for name in MODEL_NAMES:
        with torch.device("meta"):  # shapes only: building all of them takes a second
            model = inceptionzoo.create_model(name)
        seen.setdefault((type(model).__name__, repr(model.config)), name)
    return list(seen.values())


DISTINCT_NETWORKS = _distinct_networks()
_SHARED_MODELS: dict[str, torch.nn.Module] = {}


def shared_model(name: str) -> torch.nn.Module:
    """One eval-mode model per name for the whole run, shared by every test that only reads it (a test that changes
    a model, its dtype, head or mode, builds its own)."""
    if name not in _SHARED_MODELS:
        _SHARED_MODELS[name] = inceptionzoo.create_model(name).eval()
    return _SHARED_MODELS[name]


COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]
MODES = ["RGB", "L", "RGBA", "CMYK", "P"]


def photo(rng: np.random.Generator, colour: tuple[int, int, int], mode: str) -> tuple[Image.Image, str]:
    """A noisy colour photo of a random size, in ``mode``, with the file type that mode is usually stored as."""
    height, width = (int(v) for v in rng.integers(36, 90, 2))
    image = Image.fromarray(np.clip(rng.normal(colour, 50, (height, width, 3)), 0, 255).astype(np.uint8))
    if mode == "CMYK":
        return image.convert("CMYK"), "jpg"
    if mode == "P":
        return image.convert("P"), "gif"
    return image.convert(mode), "png" if mode in ("L", "RGBA") else "jpg"


def _write_images(root: Path, counts: dict[str, int], colours: Any, seed: int, draw: Any) -> Path:
    """``<split>/class<k>/NNN.<suffix>``: ``counts[split]`` images of each colour, ``draw(rng, colour, i)`` giving
    each one and its suffix."""
    rng = np.random.default_rng(seed)
    for split, count in counts.items():
        for label, colour in enumerate(colours):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                image, suffix = draw(rng, colour, i)
                image.save(folder / f"{i:03d}.{suffix}")
    return root


def write_photos(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """``<split>/class<k>/NNN.<ext>`` photos of three noisy colours, ``per_class[split]`` of each class."""
    return _write_images(
        root, per_class, COLOURS, seed, lambda rng, colour, i: photo(rng, colour, MODES[i % len(MODES)])
    )


def encode(image: Image.Image, suffix: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format={"jpg": "JPEG", "png": "PNG", "gif": "GIF"}[suffix])
    return buffer.getvalue()


def write_shards(folder: Path, samples: list[tuple[str, bytes, int]], shards: int) -> list[Path]:
    """Tar shards in the webdataset layout: ``key.jpg`` + ``key.cls`` per sample, dealt round-robin."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"shard-{i:04d}.tar" for i in range(shards)]
    for shard, path in enumerate(paths):
        with tarfile.open(path, "w") as archive:
            for name, data, label in samples[shard::shards]:
                for member, payload in ((name, data), (f"{name.rsplit('.', 1)[0]}.cls", str(label).encode())):
                    info = tarfile.TarInfo(member)
                    info.size = len(payload)
                    archive.addfile(info, io.BytesIO(payload))
    return paths


def write_photo_shards(root: Path, splits: dict[str, tuple[int, int]], seed: int = 1) -> Path:
    """``splits[split] = (photos, shards)``: photos of three noisy colours, mixed sizes, modes and formats, as tar
    shards under ``root/<split>``, with ``classes.txt``."""
    rng = np.random.default_rng(seed)
    for split, (count, parts) in splits.items():
        samples = []
        for n in range(count):
            image, suffix = photo(rng, COLOURS[n % 3], MODES[n % len(MODES)])
            samples.append((f"{split}/{n:05d}.{suffix}", encode(image, suffix), n % 3))
        write_shards(root / split, samples, parts)
    (root / "classes.txt").write_text("red\ngreen\nblue\n")
    return root


def write_squares(
    root: Path, counts: dict[str, int], colours: Any = COLOURS, seed: int = 0, suffix: str = "png"
) -> Path:
    """``<split>/class<k>/NNN.<suffix>``: ``counts[split]`` noisy 32x32 squares of each colour (one size, so the
    training loop keeps them in memory; learnable in a few steps)."""

    def square(rng: np.random.Generator, colour: tuple[int, int, int], i: int) -> tuple[Image.Image, str]:
        return Image.fromarray(np.clip(rng.normal(colour, 60, (32, 32, 3)), 0, 255).astype(np.uint8)), suffix

    return _write_images(root, counts, colours, seed, square)


def crash_in_epoch(monkeypatch, config: Any, epoch: int = 2) -> None:
    """Run the training ``config`` until epoch ``epoch`` (counted from 1) starts, then stop it as a crash would: the
    epochs before it are saved."""
    from inceptionzoo.train import loop

    real_epoch, calls = loop.train_one_epoch, []

    def crashing(*args, **kwargs):
        calls.append(1)
        if len(calls) == epoch:
            raise KeyboardInterrupt("simulated crash")
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "train_one_epoch", crashing)
    with pytest.raises(KeyboardInterrupt):
        loop.fit(config)
    monkeypatch.setattr(loop, "train_one_epoch", real_epoch)


SHARED_CIFAR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz"


def realistic_batchnorm(model: torch.nn.Module, size: int, steps: int = 3, batch: int = 4) -> torch.nn.Module:
    """Give BatchNorm layers running statistics from a few train-mode passes, so eval outputs are sane."""
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(batch, getattr(model, "in_chans", 3), size, size))
    return model.eval()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference relative to the largest magnitude of the reference ``b``."""
    return ((a - b).abs().max() / b.abs().max()).item()


def make_input(model: torch.nn.Module, batch: int = 2, extra: int = 0) -> torch.Tensor:
    """A random batch at the model's minimum input size (plus ``extra`` pixels)."""
    height, width = model.min_input_size
    return torch.randn(batch, model.in_chans, height + extra, width + extra)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _no_network(tmp_path, monkeypatch):
    """No test reaches the real Hub: offline by default, a private cache, and a loopback endpoint that refuses.

    The weights tests replace these with their loopback Hub server.
    """
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # URL weights (torchvision's) are cached there
    use_xet_stand_in(monkeypatch)  # the loopback Hub stores files with Xet, as the Hub does today


@pytest.fixture(scope="session")
def cifar_subset(tmp_path_factory) -> Path:
    """A few real CIFAR-10 images per class from the project's shared JPEG copy, as an ImageFolder tree."""
    if not SHARED_CIFAR.is_file():
        pytest.skip(f"the shared CIFAR-10 copy is not at {SHARED_CIFAR}")
    root = tmp_path_factory.mktemp("cifar-subset")
    wanted = {"train": 2, "test": 1}
    taken: dict[tuple[str, str], int] = {}
    with tarfile.open(SHARED_CIFAR) as archive:
        for member in archive:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 3 or parts[-3] not in wanted:
                continue
            key = (parts[-3], parts[-2])
            if taken.get(key, 0) < wanted[parts[-3]]:
                taken[key] = taken.get(key, 0) + 1
                target = root / parts[-3] / parts[-2] / parts[-1]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.extractfile(member).read())
            if len(taken) == 20 and all(taken[k] == wanted[k[0]] for k in taken):
                break
    return root


def _safetensors(state_dict: dict[str, torch.Tensor]) -> bytes:
    return save({k: v.contiguous() for k, v in state_dict.items()})


@pytest.fixture(scope="session")
def weights():
    """Real timm and torchvision models with realistic BatchNorm statistics, and their serialized weights."""
    torch.manual_seed(0)
    timm_aux = realistic_batchnorm(timm.create_model("inception_v3", aux_logits=True), size=299, batch=2)
    timm_plain = realistic_batchnorm(timm.create_model("inception_v3"), size=128)
    googlenet = torchvision.models.googlenet(weights=None, aux_logits=True, transform_input=False, init_weights=True)
    googlenet = realistic_batchnorm(googlenet, size=96)
    buffer = io.BytesIO()
    torch.save(googlenet.state_dict(), buffer)
    pth = buffer.getvalue()
    return {
        "timm_aux": timm_aux,
        "timm_plain": timm_plain,
        "googlenet": googlenet,
        "tv_in1k": _safetensors(timm_aux.state_dict()),
        "tf_in1k": _safetensors(timm_plain.state_dict()),
        "googlenet_file": f"googlenet-{hashlib.sha256(pth).hexdigest()[:8]}.pth",
        "googlenet_pth": pth,
    }


@pytest.fixture
def hub(request, weights, tmp_path, monkeypatch):
    """The loopback Hub; by default the client downloads with Xet into the shared blob store, as it does today.

    ``"no-xet"`` (``indirect`` parametrisation) is a client with ``HF_HUB_DISABLE_XET=1``: plain LFS downloads
    into the repo's own blobs.
    """
    server = HubServer()
    server.add_repo("timm/inception_v3.tv_in1k", {"model.safetensors": weights["tv_in1k"]}, tags=("v1.0",))
    server.add_repo("timm/inception_v3.tf_in1k", {"model.safetensors": weights["tf_in1k"]})
    server.files[weights["googlenet_file"]] = weights["googlenet_pth"]
    server.start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    server.client = getattr(request, "param", "xet")
    if server.client == "no-xet":
        from huggingface_hub import constants

        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        # huggingface_hub reads it once, at import (and before 0.30 has no Xet to disable)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True, raising=False)
    yield server
    server.stop()


CLIENTS = pytest.mark.parametrize("hub", ["xet", "no-xet"], indirect=True)  # both download paths of the client


# The lowest-versions run (`pytest -m lowest`, .ci/run) checks the dependencies' APIs, which are the same for every
# Table 3 row: there the registry-wide tests take one model of each family and size instead of all of them.
LOWEST_RUN_MODELS = (
    "inception_v1",
    "inception_v1_tv",
    "bn_inception",
    "inception_v3",
    "inception_v3_cifar",
    "inception_v4",
)


def pytest_collection_modifyitems(config, items):
    if config.getoption("markexpr") != "lowest":
        return
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        name = callspec.params.get("name") if callspec is not None else None
        (dropped if name in MODEL_NAMES and name not in LOWEST_RUN_MODELS else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def fid_model() -> torch.nn.Module:
    """``inception_v3_fid`` with BatchNorm statistics gathered at 299x299, so its pool3 features have a sane size;
    shared read-only by the FID tests."""
    generator_state = torch.get_rng_state()
    torch.manual_seed(0)
    model = realistic_batchnorm(inceptionzoo.create_model("inception_v3_fid"), size=299, batch=2)
    torch.set_rng_state(generator_state)
    return model


@pytest.fixture
def published_fid_weights(fid_model) -> Path:
    """``fid_model``'s weights where the FID tag's download keeps them (torch.hub's checkpoints folder, as
    safetensors), so ``create_model("inception_v3_fid", pretrained=True)`` loads them offline."""
    from inceptionzoo.hub.urls import url_cache_dir

    folder = url_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pt_inception-2015-12-05-6726825d.safetensors"
    path.write_bytes(_safetensors(fid_model.state_dict()))
    return path
