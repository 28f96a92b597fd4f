"""Files people did not make: pickles that would run code, broken or wrong checkpoints and configs. Each is refused
with the library's own error naming the file, and nothing in them runs."""

import json
import os
import pickle
import random
import subprocess
import webbrowser
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import inceptionzoo
from hub_server import HubServer
from inceptionzoo import (
    CheckpointMismatchError,
    CorruptCheckpointError,
    UnknownModelError,
    UnsafeCheckpointError,
    load_checkpoint,
    load_state_dict,
)

pytestmark = pytest.mark.lowest  # every torch version words its refusals differently

ARCH = "inception_v1_cifar"


class RunsCode:
    """Unpickling this calls ``os.system``: what a malicious checkpoint carries."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Calls:
    """Unpickling this calls ``function(*arguments)``."""

    def __init__(self, function, *arguments) -> None:
        self.function, self.arguments = function, arguments

    def __reduce__(self):
        return (self.function, self.arguments)


class Rebuilt:
    """A class of this module: unpickling an instance imports this test module."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Rebuilt, (self.marker,))


def hostile_payloads(marker: Path) -> dict[str, tuple[object, str]]:
    """Pickled objects that would import (and call) something, and the name the error must give."""
    return {
        "os.system": (RunsCode(marker), r"os\.system|posix\.system"),
        "builtins.eval": (Calls(eval, f"open({str(marker)!r}, 'w')"), r"builtins\.eval"),
        "builtins.exec": (Calls(exec, f"open({str(marker)!r}, 'w')"), r"builtins\.exec"),
        "subprocess.Popen": (Calls(subprocess.Popen, ["touch", str(marker)]), r"subprocess\.Popen"),
        "webbrowser.open": (Calls(webbrowser.open, f"file://{marker}"), r"webbrowser\.open"),
        "a class of the test module": (Rebuilt(str(marker)), r"test_hostile_files\.Rebuilt"),
    }


@pytest.fixture
def weights() -> dict[str, torch.Tensor]:
    return inceptionzoo.create_model(ARCH).state_dict()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's own note on the protocol-5 file
@pytest.mark.parametrize("container", ["torch.save", "nested in state_dict", "pickle protocol 2", "pickle protocol 5"])
@pytest.mark.parametrize("payload", list(hostile_payloads(Path("x"))))
def test_a_pickle_that_runs_code_is_refused_naming_what_it_imports(tmp_path, weights, container, payload):
    marker, path = tmp_path / "code-ran", tmp_path / "evil.pth"
    hostile, name = hostile_payloads(marker)[payload]
    state = {**weights, "conv1.conv.weight": hostile}
    if container.startswith("pickle"):
        path.write_bytes(pickle.dumps(state, protocol=int(container[-1])))
    else:
        torch.save({"state_dict": state} if container.startswith("nested") else state, path)
    message = rf"evil\.pth was refused: loading it would import .*({name})"
    for load in (lambda: load_state_dict(path), lambda: inceptionzoo.create_model(ARCH, checkpoint_path=path)):
        with pytest.raises(UnsafeCheckpointError, match=message):
            load()
    assert not marker.exists()


def broken_files(tmp_path: Path, weights: dict[str, torch.Tensor]) -> dict[str, Path]:
    good_safetensors, good_pth = tmp_path / "good.safetensors", tmp_path / "good.pth"
    save_file(weights, str(good_safetensors))
    torch.save(weights, good_pth)
    files = {
        "empty.safetensors": b"",
        "empty.pth": b"",
        "truncated.safetensors": good_safetensors.read_bytes()[: good_safetensors.stat().st_size // 2],
        "truncated.pth": good_pth.read_bytes()[: good_pth.stat().st_size // 2],
        **{f"garbage-{seed}.safetensors": random.Random(seed).randbytes(4096) for seed in range(5)},
        **{f"garbage-{seed}.pth": random.Random(seed).randbytes(4096) for seed in range(20)},
        "garbage-zip.pth": b"PK\x03\x04" + random.Random(0).randbytes(4096),
        "huge-header.safetensors": (10**12).to_bytes(8, "little") + b"{}",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {name: tmp_path / name for name in files}


def test_empty_truncated_and_garbage_files_are_named(tmp_path, weights):
    for name, path in broken_files(tmp_path, weights).items():
        with pytest.raises(CorruptCheckpointError) as caught:
            inceptionzoo.create_model(ARCH, checkpoint_path=path)
        assert str(path) in str(caught.value), name


def test_right_keys_with_wrong_shapes_or_dtypes_are_listed(tmp_path, weights):
    shapes = {**weights, "fc.weight": torch.zeros(7, weights["fc.weight"].shape[1])}
    save_file(shapes, str(tmp_path / "shapes.safetensors"))
    with pytest.raises(CheckpointMismatchError, match=r"different shapes \(1\): fc\.weight \(checkpoint \(7, "):
        load_checkpoint(inceptionzoo.create_model(ARCH), tmp_path / "shapes.safetensors")
    dtypes = {**weights, "conv1.conv.weight": weights["conv1.conv.weight"].to(torch.int32)}
    save_file(dtypes, str(tmp_path / "dtypes.safetensors"))
    with pytest.raises(CheckpointMismatchError, match=r"different kinds of dtype \(1\): conv1\.conv\.weight"):
        load_checkpoint(inceptionzoo.create_model(ARCH), tmp_path / "dtypes.safetensors")
    # another float precision is not an error: it is cast, as torch does
    half = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    save_file(half, str(tmp_path / "half.safetensors"))
    model = load_checkpoint(inceptionzoo.create_model(ARCH), tmp_path / "half.safetensors")
    assert model.conv1.conv.weight.dtype == torch.float32


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_an_error_naming_the_tensor(tmp_path, weights, value):
    weights["inception4a.branch1.conv.weight"][0, 0, 0, 0] = value
    path = tmp_path / "diverged.safetensors"
    save_file(weights, str(path))
    with pytest.raises(CorruptCheckpointError, match=r"diverged\.safetensors holds NaN or infinite values in 1 "):
        load_state_dict(path)


def saved_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "saved"
    inceptionzoo.save_pretrained(inceptionzoo.create_model(ARCH), folder)
    return folder


def test_config_json_that_is_not_json_names_the_file(tmp_path):
    folder = saved_folder(tmp_path)
    (folder / "config.json").write_text('{"architecture": "inception_v1_cifar",')
    with pytest.raises(ValueError, match=r"local-dir:.*config\.json is not valid JSON"):
        inceptionzoo.create_model(f"local-dir:{folder}", pretrained=True)


def test_config_json_naming_an_unknown_architecture(tmp_path):
    folder = saved_folder(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architecture": "resnet50"}))
    with pytest.raises(UnknownModelError, match=r"config\.json names the architecture 'resnet50'"):
        inceptionzoo.create_model(f"local-dir:{folder}", pretrained=True)


@pytest.mark.parametrize(
    ("model_args", "message"),
    [({"no_such_argument": 1}, r"unknown argument\(s\) no_such_argument"), ([1, 2], r"must be JSON objects")],
)
def test_config_json_with_model_arguments_that_do_not_fit(tmp_path, model_args, message):
    folder = saved_folder(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_args": model_args}))
    with pytest.raises((TypeError, ValueError), match=rf"local-dir:{folder}.*{message}"):
        inceptionzoo.create_model(f"local-dir:{folder}", pretrained=True)


HOSTILE_NAMES = [
    "hf-hub:../evil",
    "hf-hub:..",
    "hf-hub:org/..",
    "hf-hub:org/../../x",
    "hf-hub:org/repo/../../x",
    "hf-hub:/etc/passwd",
    "hf-hub:http://127.0.0.2/x",
    "hf-hub://evil.example/x",
    "hf-hub:evil.example:80/x",
    "hf-hub:org/repo?x=1",
    "hf-hub:org/repo#frag",
    "hf-hub:org/repo@../../main",
    "hf-hub:org/repo@main/../../../x",
    "hf-hub:org/repo@/abs",
    "inception_v3.../../tv_in1k",
    "inception_v3.tv_in1k/../../x",
    "inception_v3./etc/passwd",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_names_with_paths_or_urls_reach_no_server_and_write_nothing(tmp_path, monkeypatch, name):
    server = HubServer()
    server.add_repo("org/repo", {"config.json": b"{}"})
    server.start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        with pytest.raises(ValueError, match=r"is not a Hub repo id|is not a revision|has no weights tagged"):
            inceptionzoo.create_model(name, pretrained=True)
    finally:
        server.stop()
    assert server.requests == []
    assert not any(path.is_file() for path in tmp_path.rglob("*"))
