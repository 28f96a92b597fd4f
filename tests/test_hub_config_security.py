"""A Hub repo's config.json chooses only among the repo's own files: a ``file``, ``url`` or another repo's
``hf_hub_id`` in its pretrained config is refused naming the repo and the field, never silently loaded or dropped."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import inceptionzoo
from hub_server import HubServer

ARCH = "inception_v1_cifar"


def _weights(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return inceptionzoo.create_model(ARCH).state_dict()


def _safetensors(state_dict: dict[str, torch.Tensor], path: Path) -> bytes:
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
    return path.read_bytes()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The loopback Hub, with a config.json of ``ARCH`` to publish repos from."""
    server = HubServer()
    server.start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    folder = inceptionzoo.save_pretrained(inceptionzoo.create_model(ARCH), tmp_path / "saved")
    server.config = json.loads((folder / "config.json").read_text())
    yield server
    server.stop()


def publish(hub: HubServer, repo_id: str, pretrained_cfg: dict, files: dict[str, bytes]) -> None:
    config = {**hub.config, "pretrained_cfg": {**hub.config.get("pretrained_cfg", {}), **pretrained_cfg}}
    hub.add_repo(repo_id, {**files, "config.json": json.dumps(config).encode()})


def _loaded_equals(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, state_dict[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("file", "LOCAL"),
        ("url", "http://127.0.0.1:9/other.safetensors"),
        ("hf_hub_id", "other/weights"),
        ("hf_hub_filename", "../../other/weights/resolve/main/model.safetensors"),
        ("hf_hub_filename", "LOCAL"),
        ("hf_hub_filename", "https://evil.example/model.safetensors"),
        ("hf_hub_filename", "weights/../../model.safetensors"),
        ("hf_hub_filename", "C:\\weights\\model.safetensors"),
    ],
)
def test_a_hub_config_naming_weights_outside_its_repo_is_refused(hub, tmp_path, field, value):
    published, elsewhere = _weights(0), _weights(1)
    local = tmp_path / "local.safetensors"
    blob = _safetensors(elsewhere, local)
    hub.add_repo("other/weights", {"model.safetensors": blob})
    value = str(local) if value == "LOCAL" else value
    publish(hub, "me/x", {field: value}, {"model.safetensors": _safetensors(published, tmp_path / "repo.safetensors")})
    with pytest.raises(ValueError, match=rf"hf-hub:me/x.*pretrained_cfg\.{field}") as caught:
        inceptionzoo.create_model("hf-hub:me/x", pretrained=True)
    assert repr(value) in str(caught.value)
    assert not any("other/weights" in path for _, path in hub.requests)


def test_a_hub_config_may_name_a_file_of_its_own_repo(hub, tmp_path):
    published, other = _weights(0), _weights(1)
    files = {
        "model.safetensors": _safetensors(published, tmp_path / "a.safetensors"),
        "weights/ema.safetensors": _safetensors(other, tmp_path / "b.safetensors"),
    }
    # its own id (as older timm configs record it), nulls, and a file in a folder of the repo
    publish(
        hub,
        "me/x",
        {"hf_hub_id": "me/x", "file": None, "url": None, "hf_hub_filename": "weights/ema.safetensors"},
        files,
    )
    assert _loaded_equals(inceptionzoo.create_model("hf-hub:me/x", pretrained=True), other)
    publish(hub, "me/y", {}, files)
    assert _loaded_equals(inceptionzoo.create_model("hf-hub:me/y", pretrained=True), published)


def test_a_local_dir_loads_its_own_model_safetensors(tmp_path):
    folder = inceptionzoo.save_pretrained(inceptionzoo.create_model(ARCH), tmp_path / "saved")
    published = inceptionzoo.load_state_dict(folder / "model.safetensors")
    assert _loaded_equals(inceptionzoo.create_model(f"local-dir:{folder}", pretrained=True), published)
