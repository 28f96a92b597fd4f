"""Loading checkpoints: timm's and torchvision's files load exactly, a file that does not fit lists the keys that
differ, and files people did not make (pickles that would run code, broken or wrong checkpoints and configs) are
refused with the library's own error naming the file, and nothing in them runs."""

import json
import os
import pickle
import random
import subprocess
import webbrowser
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file

import inceptionzoo
from conftest import realistic_batchnorm
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
        "a class of the test module": (Rebuilt(str(marker)), r"test_checkpoint\.Rebuilt"),
    }


@pytest.fixture
def cifar_weights() -> dict[str, torch.Tensor]:
    return inceptionzoo.create_model(ARCH).state_dict()


@pytest.fixture(scope="module")
def inception_v3_weights() -> dict[str, torch.Tensor]:
    """Inception-v3 with its aux head and BatchNorm statistics away from their defaults, so a buffer that was not
    loaded shows."""
    return realistic_batchnorm(
        inceptionzoo.create_model("inception_v3", aux_logits=True), size=299, batch=2
    ).state_dict()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's own note on the protocol-5 file
@pytest.mark.parametrize("container", ["torch.save", "nested in state_dict", "pickle protocol 2", "pickle protocol 5"])
@pytest.mark.parametrize("payload", list(hostile_payloads(Path("x"))))
def test_a_pickle_that_runs_code_is_refused_naming_what_it_imports(tmp_path, cifar_weights, container, payload):
    marker, path = tmp_path / "code-ran", tmp_path / "evil.pth"
    hostile, name = hostile_payloads(marker)[payload]
    state = {**cifar_weights, "conv1.conv.weight": hostile}
    if container.startswith("pickle"):
        path.write_bytes(pickle.dumps(state, protocol=int(container[-1])))
    else:
        torch.save({"state_dict": state} if container.startswith("nested") else state, path)
    message = rf"evil\.pth was refused: loading it would import .*({name})"
    for load in (lambda: load_state_dict(path), lambda: inceptionzoo.create_model(ARCH, checkpoint_path=path)):
        with pytest.raises(UnsafeCheckpointError, match=message):
            load()
    assert not marker.exists()


def broken_files(tmp_path: Path, cifar_weights: dict[str, torch.Tensor]) -> dict[str, Path]:
    good_safetensors, good_pth = tmp_path / "good.safetensors", tmp_path / "good.pth"
    save_file(cifar_weights, str(good_safetensors))
    torch.save(cifar_weights, good_pth)
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


def test_empty_truncated_and_garbage_files_are_named(tmp_path, cifar_weights):
    for name, path in broken_files(tmp_path, cifar_weights).items():
        with pytest.raises(CorruptCheckpointError) as caught:
            inceptionzoo.create_model(ARCH, checkpoint_path=path)
        assert str(path) in str(caught.value), name


def test_right_keys_with_wrong_shapes_or_dtypes_are_listed(tmp_path, cifar_weights):
    shapes = {**cifar_weights, "fc.weight": torch.zeros(7, cifar_weights["fc.weight"].shape[1])}
    save_file(shapes, str(tmp_path / "shapes.safetensors"))
    with pytest.raises(CheckpointMismatchError, match=r"different shapes \(1\): fc\.weight \(checkpoint \(7, "):
        load_checkpoint(inceptionzoo.create_model(ARCH), tmp_path / "shapes.safetensors")
    dtypes = {**cifar_weights, "conv1.conv.weight": cifar_weights["conv1.conv.weight"].to(torch.int32)}
    save_file(dtypes, str(tmp_path / "dtypes.safetensors"))
    with pytest.raises(CheckpointMismatchError, match=r"different kinds of dtype \(1\): conv1\.conv\.weight"):
        load_checkpoint(inceptionzoo.create_model(ARCH), tmp_path / "dtypes.safetensors")
    # another float precision is not an error: it is cast, as torch does
    half = {k: v.half() if v.is_floating_point() else v for k, v in cifar_weights.items()}
    save_file(half, str(tmp_path / "half.safetensors"))
    model = load_checkpoint(inceptionzoo.create_model(ARCH), tmp_path / "half.safetensors")
    assert model.conv1.conv.weight.dtype == torch.float32


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_an_error_naming_the_tensor(tmp_path, cifar_weights, value):
    cifar_weights["inception4a.branch1.conv.weight"][0, 0, 0, 0] = value
    path = tmp_path / "diverged.safetensors"
    save_file(cifar_weights, str(path))
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


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_checkpoint_path_loads_timm_checkpoints(inception_v3_weights, tmp_path, suffix):
    state_dict = inception_v3_weights
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
    else:
        torch.save({"state_dict": state_dict, "epoch": 3}, path)
    with_aux = inceptionzoo.create_model("inception_v3", aux_logits=True, checkpoint_path=path)
    without_aux = inceptionzoo.create_model("inception_v3", checkpoint_path=path)  # aux weights are dropped
    for model in (with_aux, without_aux):
        own = model.state_dict()
        for key, value in own.items():
            torch.testing.assert_close(value, state_dict[key], rtol=0, atol=0)


def test_checkpoint_that_does_not_fit_lists_keys(inception_v3_weights, tmp_path):
    state_dict = inception_v3_weights
    broken = dict(state_dict)
    del broken["Mixed_6b.branch1x1.conv.weight"]
    broken["extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.safetensors"
    save_file({k: v.contiguous() for k, v in broken.items()}, str(path))
    with pytest.raises(inceptionzoo.CheckpointMismatchError) as info:
        inceptionzoo.create_model("inception_v3", checkpoint_path=path)
    message = str(info.value)
    assert "Mixed_6b.branch1x1.conv.weight" in message and "extra.weight" in message
    intact = tmp_path / "intact.pth"
    torch.save(state_dict, intact)
    with pytest.raises(inceptionzoo.CheckpointMismatchError, match=r"fc.weight \(checkpoint \(1000, 2048\)"):
        inceptionzoo.create_model("inception_v3", num_classes=10, checkpoint_path=intact)


def test_an_unrelated_checkpoint_says_how_little_matches(tmp_path):
    path = tmp_path / "resnet18.safetensors"
    save_file(timm.create_model("resnet18").state_dict(), str(path))
    with pytest.raises(inceptionzoo.CheckpointMismatchError) as info:
        inceptionzoo.create_model("inception_v3", checkpoint_path=path)
    first, *rest = str(info.value).splitlines()
    assert "1 of its 472 keys match by name and shape" in first and "another architecture" in first
    assert "num_batches_tracked" not in str(info.value) and "classifier differs" not in str(info.value)
    listed = rest[0].split(": ", 1)[1].split(" ... ")[0].split(", ")
    assert listed == sorted(listed)


def test_fine_tuning_from_a_file_of_ones_own(inception_v3_weights, tmp_path):
    state_dict = inception_v3_weights
    path = tmp_path / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
    with pytest.raises(inceptionzoo.CheckpointMismatchError, match="pass the file as pretrained_file="):
        inceptionzoo.create_model("inception_v3", num_classes=10, checkpoint_path=path)  # strict, as in timm
    tuned = inceptionzoo.create_model("inception_v3", num_classes=10, pretrained_file=path)
    assert tuned.fc.out_features == 10
    torch.testing.assert_close(tuned.Mixed_7c.branch1x1.conv.weight, state_dict["Mixed_7c.branch1x1.conv.weight"])
    same = inceptionzoo.create_model("inception_v3", pretrained_file=path)  # its own head, kept
    torch.testing.assert_close(same.fc.weight, state_dict["fc.weight"])
    with pytest.raises(ValueError, match="not both"):
        inceptionzoo.create_model("inception_v3", pretrained_file=path, checkpoint_path=path)


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        inceptionzoo.create_model("inception_v3", checkpoint_path=tmp_path / "nope.safetensors")


def test_torchvision_checkpoint_loads_without_aux_heads(tmp_path):
    theirs = torchvision.models.googlenet(weights=None, aux_logits=True, transform_input=False, init_weights=True)
    path = tmp_path / "googlenet.pth"
    torch.save(theirs.state_dict(), path)
    model = inceptionzoo.create_model("inception_v1_tv", checkpoint_path=path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, theirs.state_dict()[key])


def test_mismatch_hints_name_the_models_own_heads():
    """The classifier and auxiliary-head hints take the names from the model (``classifier_names()``,
    ``aux_head_names()``): Inception-ResNet's ``classif`` and GoogLeNet's ``aux1`` / ``aux2`` get them as
    Inception-v3's ``fc`` and ``AuxLogits`` do."""
    from inceptionzoo.checkpoint import check_state_dict_fits, drop_unused_aux_keys

    resnet = inceptionzoo.create_model("inception_resnet_v1", blocks=(1, 1, 1))
    state_dict = {**resnet.state_dict(), "classif.weight": torch.zeros(10, resnet.num_features)}
    with pytest.raises(inceptionzoo.CheckpointMismatchError, match="the classifier differs"):
        check_state_dict_fits(resnet, state_dict)

    with_aux = inceptionzoo.create_model("inception_v1_cifar", aux_logits=True)
    without_aux = inceptionzoo.create_model("inception_v1_cifar")
    assert with_aux.aux_head_names() == without_aux.aux_head_names() == ["aux1", "aux2"]
    with pytest.raises(inceptionzoo.CheckpointMismatchError, match="build it with aux_logits=False"):
        check_state_dict_fits(with_aux, without_aux.state_dict())
    kept = drop_unused_aux_keys(without_aux, with_aux.state_dict())
    assert sorted(kept) == sorted(without_aux.state_dict())
