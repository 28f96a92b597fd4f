"""Pretrained weights through a loopback server that speaks the Hub's protocol: no test touches the network."""

import hashlib
import io
import json
import threading
import time
from pathlib import Path

import huggingface_hub
import pytest
import torch
import torchvision

import inceptionzoo
from conftest import CLIENTS, realistic_batchnorm, relative_error
from hub_server import HubServer, client_shares_xet_blobs, xet_hash
from inceptionzoo import CorruptWeightsError, WeightsDownloadError, WeightsNotCachedError
from inceptionzoo.hub.files import hub_cache_dir
from inceptionzoo.hub.urls import url_cache_dir

LOWEST = pytest.mark.lowest  # also run with the lowest supported huggingface_hub (a quick subset)


def weight_gets(server: HubServer) -> int:
    return server.storage_gets()


def cache() -> Path:
    return Path(hub_cache_dir())


def repo_blob(repo_id: str) -> Path:
    """The repo's own entry for its one weights file: ``models--org--name/blobs/<sha256>``."""
    (blob,) = (cache() / f"models--{repo_id.replace('/', '--')}" / "blobs").glob("[0-9a-f]*")
    return blob


def stored_file(repo_id: str) -> Path:
    """Where the bytes of a repo's weights file are: the shared store entry, or the repo's own blob."""
    return repo_blob(repo_id).resolve()


def damage(path: Path) -> None:
    path.chmod(0o600)  # huggingface_hub makes shared store entries read-only
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def googlenet_url(hub: HubServer, weights) -> dict:
    return {"url": f"{hub.url}/files/{weights['googlenet_file']}"}


@LOWEST
@CLIENTS
def test_download_once_then_cache_then_offline(hub, weights, monkeypatch):
    model = inceptionzoo.create_model("inception_v3.tv_in1k", pretrained=True).eval()
    assert weight_gets(hub) == 1
    blob = repo_blob("timm/inception_v3.tv_in1k")
    assert blob.name == hashlib.sha256(weights["tv_in1k"]).hexdigest()
    if hub.client == "xet" and client_shares_xet_blobs():
        # huggingface_hub moved the blob into its shared store, named by the Xet hash, and linked the repo's to it
        store = xet_hash(weights["tv_in1k"])
        assert blob.is_symlink() and blob.resolve() == cache() / "blobs" / store[:2] / store
    else:
        assert not blob.is_symlink() and not (cache() / "blobs").exists()
    reference = weights["timm_aux"].eval()
    x = torch.randn(2, 3, 299, 299)
    with torch.no_grad():
        assert relative_error(model(x), reference(x)[0]) <= 1e-5
    assert model.pretrained_cfg["mean"] == (0.5, 0.5, 0.5) and model.pretrained_cfg["top1"] == 77.472
    # the second call is served from the cache
    inceptionzoo.create_model("inception_v3.tv_in1k", pretrained=True)
    assert weight_gets(hub) == 1
    # ... also with the server gone, and offline
    hub.stop()
    inceptionzoo.create_model("inception_v3", pretrained=True)  # the default tag is tv_in1k
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = inceptionzoo.create_model("inception_v3.tv_in1k", pretrained=True).eval()
    with torch.no_grad():
        assert torch.equal(offline(x), model(x))


def test_offline_with_empty_cache_says_how_to_fetch(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotCachedError, match="inceptionzoo download inception_v3.tf_in1k"):
        inceptionzoo.create_model("inception_v3.tf_in1k", pretrained=True)
    assert hub.requests == []


def test_without_dns_the_cache_is_used_at_once_and_the_rest_is_a_clear_error(hub, monkeypatch):
    """A host that does not resolve: no back-off retries (huggingface_hub's take about 23 s), cached weights load,
    and the error for the others says how to work offline."""
    inceptionzoo.create_model("inception_v3.tf_in1k", pretrained=True)  # cached
    monkeypatch.setenv("HF_ENDPOINT", "http://weights.invalid")  # .invalid never resolves (RFC 2606)
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    requests = len(hub.requests)
    model = inceptionzoo.create_model("inception_v3.tf_in1k", pretrained=True)
    assert torch.equal(model.state_dict()["fc.weight"], hub_state(hub)["fc.weight"])
    with pytest.raises(WeightsDownloadError, match=r"cannot resolve weights\.invalid .*HF_HUB_OFFLINE=1.*"
                                                   r"pretrained_file="):  # fmt: skip
        inceptionzoo.create_model("inception_v3.tv_in1k", pretrained=True)
    assert len(hub.requests) == requests


def test_unknown_tag_and_missing_repo_or_file(hub):
    with pytest.raises(inceptionzoo.UnknownModelError, match="inception_v3.tf_in1k"):
        inceptionzoo.create_model("inception_v3.tv_in22k", pretrained=True)
    with pytest.raises(WeightsDownloadError, match="no repo"):
        inceptionzoo.create_model("inception_v3", pretrained=True, pretrained_cfg_overlay={"hf_hub_id": "timm/none"})
    with pytest.raises(WeightsDownloadError, match="no file"):
        inceptionzoo.create_model(
            "inception_v3", pretrained=True, pretrained_cfg_overlay={"hf_hub_filename": "absent.safetensors"}
        )


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["truncate", "drop", "500"])
def test_broken_transfers_fail_clearly_and_recover(hub, fault, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # huggingface_hub's ~23 s of back-off, not waited out
    hub.fault = fault
    with pytest.raises(WeightsDownloadError):
        inceptionzoo.create_model("inception_v3.tf_in1k", pretrained=True)
    hub.fault = None
    model = inceptionzoo.create_model("inception_v3.tf_in1k", pretrained=True)
    assert torch.equal(model.state_dict()["fc.weight"], hub_state(hub)["fc.weight"])


def hub_state(hub: HubServer) -> dict:
    from safetensors.torch import load

    return load(hub.repos["timm/inception_v3.tf_in1k"]["model.safetensors"])


@pytest.mark.slow
@LOWEST
@CLIENTS
def test_corrupt_download_is_detected_removed_and_refetched(hub, monkeypatch):
    hub.fault = "corrupt"  # other bytes under the published sha256, on every try
    with pytest.raises(CorruptWeightsError, match="removed from the cache"):
        inceptionzoo.create_model("inception_v3.tf_in1k", pretrained=True)
    assert weight_gets(hub) == 2  # downloaded, found bad, downloaded once more, found bad again
    assert not list(cache().glob("models--timm--inception_v3.tf_in1k/snapshots/*/*"))
    hub.fault = None
    inceptionzoo.create_model("inception_v3.tf_in1k", pretrained=True)
    # a cached file damaged later is caught, not silently reused, and fetched again
    damage(stored_file("timm/inception_v3.tf_in1k"))
    model = inceptionzoo.create_model("inception_v3.tf_in1k", pretrained=True)
    assert torch.equal(model.state_dict()["fc.weight"], hub_state(hub)["fc.weight"]) and weight_gets(hub) == 4
    # offline it cannot be fetched again: the error says so, and the entry is gone rather than reused
    damage(stored_file("timm/inception_v3.tf_in1k"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CorruptWeightsError, match="removed from the cache"):
        inceptionzoo.create_model("inception_v3.tf_in1k", pretrained=True)
    with pytest.raises(WeightsNotCachedError):
        inceptionzoo.create_model("inception_v3.tf_in1k", pretrained=True)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    model = inceptionzoo.create_model("inception_v3.tf_in1k", pretrained=True)
    assert torch.equal(model.state_dict()["fc.weight"], hub_state(hub)["fc.weight"])


@pytest.mark.slow
@pytest.mark.parametrize("cache_api", [True, False], ids=["delete_files", "older-huggingface-hub"])
def test_a_shared_store_file_is_repaired_for_every_repo_and_never_deleted_while_linked(
    hub, weights, monkeypatch, cache_api
):
    from huggingface_hub import HFCacheInfo

    if not client_shares_xet_blobs():
        pytest.skip(f"huggingface_hub {huggingface_hub.__version__} has no shared Xet blob store (2.x has)")
    if not cache_api:  # huggingface_hub before HFCacheInfo.delete_files: the two repo entries are unlinked by hand
        monkeypatch.delattr(HFCacheInfo, "delete_files")
    hub.add_repo("timm/inception_v3.tf_adv_in1k", {"model.safetensors": weights["tv_in1k"]})  # the same bytes
    inceptionzoo.create_model("inception_v3.tv_in1k", pretrained=True)
    inceptionzoo.create_model("inception_v3.tf_adv_in1k", pretrained=True)
    assert weight_gets(hub) == 1  # the second repo was linked to the first one's store file, not downloaded
    store = stored_file("timm/inception_v3.tv_in1k")
    assert stored_file("timm/inception_v3.tf_adv_in1k") == store and store.parent.parent == cache() / "blobs"

    # online, a damaged store file is downloaded again and replaced: every repo linked to it gets the good bytes
    damage(store)
    inceptionzoo.create_model("inception_v3.tv_in1k", pretrained=True)
    assert weight_gets(hub) == 2 and store.read_bytes() == weights["tv_in1k"]
    adv = inceptionzoo.create_model("inception_v3.tf_adv_in1k", pretrained=True)
    assert torch.equal(adv.state_dict()["fc.weight"], weights["timm_aux"].state_dict()["fc.weight"])

    # offline, only the asking repo's entries go; the store file stays while another repo links to it
    damage(store)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CorruptWeightsError):
        inceptionzoo.create_model("inception_v3.tv_in1k", pretrained=True)
    assert not list(cache().glob("models--timm--inception_v3.tv_in1k/blobs/*"))
    assert store.is_file() and repo_blob("timm/inception_v3.tf_adv_in1k").resolve() == store
    with pytest.raises(CorruptWeightsError):
        inceptionzoo.create_model("inception_v3.tf_adv_in1k", pretrained=True)
    assert store.is_file() != cache_api  # huggingface_hub collects a store file nothing links to; by hand it stays
    monkeypatch.delenv("HF_HUB_OFFLINE")
    for name in ("inception_v3.tv_in1k", "inception_v3.tf_adv_in1k"):
        model = inceptionzoo.create_model(name, pretrained=True)
        assert torch.equal(model.state_dict()["fc.weight"], weights["timm_aux"].state_dict()["fc.weight"])


@pytest.mark.slow
@LOWEST
def test_revisions_branch_tag_and_commit_then_offline(hub, weights, monkeypatch):
    commit = hub.commit("timm/inception_v3.tv_in1k")
    for revision in ("main", "v1.0", commit):
        overlay = {"hf_hub_id": f"timm/inception_v3.tv_in1k@{revision}"}
        inceptionzoo.create_model("inception_v3.tv_in1k", pretrained=True, pretrained_cfg_overlay=overlay)
    assert weight_gets(hub) == 1  # one file under one commit, whichever name asked for it
    refs = cache() / "models--timm--inception_v3.tv_in1k" / "refs"
    assert (refs / "main").read_text() == commit and (refs / "v1.0").read_text() == commit
    with pytest.raises(WeightsDownloadError, match="revision v2.0"):
        overlay = {"hf_hub_id": "timm/inception_v3.tv_in1k@v2.0"}
        inceptionzoo.create_model("inception_v3.tv_in1k", pretrained=True, pretrained_cfg_overlay=overlay)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    requests = len(hub.requests)
    for revision in ("main", "v1.0", commit):
        overlay = {"hf_hub_id": f"timm/inception_v3.tv_in1k@{revision}"}
        inceptionzoo.create_model("inception_v3.tv_in1k", pretrained=True, pretrained_cfg_overlay=overlay)
    assert len(hub.requests) == requests


def test_num_classes_reinitialises_only_the_classifiers(hub, weights):
    model = inceptionzoo.create_model("inception_v3.tv_in1k", pretrained=True, num_classes=10, aux_logits=True)
    source = weights["timm_aux"].state_dict()
    for key, value in model.state_dict().items():
        if key.startswith(("fc.", "AuxLogits.fc.")):
            assert value.shape[0] == 10
        else:
            assert torch.equal(value, source[key]), key
    assert model.pretrained_cfg["num_classes"] == 10


def test_in_chans_adapts_the_first_convolution(hub, weights):
    model = inceptionzoo.create_model("inception_v3.tf_in1k", pretrained=True, in_chans=1).eval()
    original = weights["timm_plain"].state_dict()["Conv2d_1a_3x3.conv.weight"]
    torch.testing.assert_close(model.Conv2d_1a_3x3.conv.weight, original.sum(dim=1, keepdim=True))
    with torch.no_grad():
        assert model(torch.randn(1, 1, 299, 299)).shape == (1, 1000)


def test_aux_head_without_published_aux_weights_is_named(hub):
    with pytest.raises(inceptionzoo.CheckpointMismatchError, match="AuxLogits"):
        inceptionzoo.create_model("inception_v3.tf_in1k", pretrained=True, aux_logits=True)


@LOWEST
def test_torchvision_googlenet_url_checked_converted_and_equal(hub, weights, monkeypatch):
    overlay = googlenet_url(hub, weights)
    model = inceptionzoo.create_model("inception_v1_tv.tv_in1k", pretrained=True, pretrained_cfg_overlay=overlay)
    reference = weights["googlenet"].eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert relative_error(model.eval()(x), reference(x)) <= 1e-5
    converted = list(url_cache_dir().glob("*.safetensors"))
    assert [p.name for p in converted] == [weights["googlenet_file"].replace(".pth", ".safetensors")]
    # beside torchvision's downloads, not in the Hugging Face cache, whose scan takes every folder for a repo
    inceptionzoo.create_model("inception_v3.tv_in1k", pretrained=True)
    from huggingface_hub import scan_cache_dir

    scan = scan_cache_dir(cache())
    assert scan.warnings == [] and [r.repo_id for r in scan.repos] == ["timm/inception_v3.tv_in1k"]
    # torchvision's transform_input is expressed as the preprocessing: mean = std = 0.5
    assert inceptionzoo.data_config(model)["mean"] == (0.5, 0.5, 0.5)
    hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    inceptionzoo.create_model("inception_v1_tv.tv_in1k", pretrained=True, pretrained_cfg_overlay=overlay)


def test_url_with_wrong_hash_prefix_is_refused(hub, weights):
    hub.files["googlenet-00000000.pth"] = weights["googlenet_pth"]
    with pytest.raises(CorruptWeightsError, match="hash"):
        inceptionzoo.create_model(
            "inception_v1_tv.tv_in1k",
            pretrained=True,
            pretrained_cfg_overlay={"url": f"{hub.url}/files/googlenet-00000000.pth"},
        )
    assert not list(url_cache_dir().glob("*.safetensors"))


def test_a_checkpoint_torchvision_already_downloaded_is_used_offline(hub, weights, monkeypatch):
    folder = url_cache_dir()  # torch.hub's checkpoints folder, where torchvision downloads to
    folder.mkdir(parents=True)
    (folder / weights["googlenet_file"]).write_bytes(weights["googlenet_pth"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    overlay = googlenet_url(hub, weights)
    model = inceptionzoo.create_model("inception_v1_tv.tv_in1k", pretrained=True, pretrained_cfg_overlay=overlay)
    assert hub.requests == []
    assert torch.equal(model.state_dict()["fc.weight"], weights["googlenet"].state_dict()["fc.weight"])
    # a copy whose hash does not match its name is not used
    (folder / weights["googlenet_file"].replace(".pth", ".safetensors")).unlink()
    (folder / weights["googlenet_file"]).write_bytes(weights["googlenet_pth"][:-1])
    with pytest.raises(WeightsNotCachedError, match="not in the cache"):
        inceptionzoo.create_model("inception_v1_tv.tv_in1k", pretrained=True, pretrained_cfg_overlay=overlay)


def test_save_pretrained_round_trips_through_hf_hub_and_local_dir(hub, tmp_path):
    model = inceptionzoo.create_model("inception_v3_cifar", width_multiplier=0.25, drop_rate=0.1)
    model = realistic_batchnorm(model, size=32)
    folder = inceptionzoo.save_pretrained(model, tmp_path / "saved", repo_id="me/inception-cifar")
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "inception_v3_cifar" and config["num_classes"] == 10
    # newer timm also records in_chans, num_classes and global_pool there
    assert config["model_args"].items() >= {"width_multiplier": 0.25, "drop_rate": 0.1}.items()
    card = (folder / "README.md").read_text()
    assert "library_name: inceptionzoo" in card.split("---")[1] and "## Model Usage" in card
    assert "Rethinking the Inception Architecture" in card and "hf-hub:me/inception-cifar" in card
    hub.add_repo("me/inception-cifar", {p.name: p.read_bytes() for p in folder.iterdir()})
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        reference = model(x)
    for source in ("hf-hub:me/inception-cifar", f"local-dir:{folder}"):
        loaded = inceptionzoo.create_model(source, pretrained=True).eval()
        assert loaded.state_dict().keys() == model.state_dict().keys()
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
        with torch.no_grad():
            assert torch.equal(loaded(x), reference)


def test_hf_hub_reads_timm_format_repos(hub, weights):
    config = {
        "architecture": "inception_v3",
        "num_classes": 1000,
        "num_features": 2048,
        "pretrained_cfg": {
            "tag": "tf_in1k",
            "input_size": [3, 299, 299],
            "mean": [0.5] * 3,
            "std": [0.5] * 3,
            "crop_pct": 0.875,
        },
    }
    hub.add_repo(
        "timm/inception_v3.tf_in1k",
        {"model.safetensors": weights["tf_in1k"], "config.json": json.dumps(config).encode()},
    )
    model = inceptionzoo.create_model("hf-hub:timm/inception_v3.tf_in1k", pretrained=True).eval()
    x = torch.randn(1, 3, 299, 299)
    with torch.no_grad():
        assert relative_error(model(x), weights["timm_plain"].eval()(x)) <= 1e-5
    assert model.pretrained_cfg["input_size"] == (3, 299, 299)
    hub.add_repo("me/other", {"config.json": json.dumps({**config, "architecture": "resnet50"}).encode()})
    with pytest.raises(inceptionzoo.UnknownModelError, match="resnet50"):
        inceptionzoo.create_model("hf-hub:me/other")
    hub.add_repo("me/broken", {"config.json": b"{not json"})
    with pytest.raises(ValueError, match="not valid JSON"):
        inceptionzoo.create_model("hf-hub:me/broken")


def test_data_config_and_transform(hub):
    gluon = inceptionzoo.create_model("inception_v3.gluon_in1k")
    assert inceptionzoo.data_config(gluon)["mean"] == (0.485, 0.456, 0.406)
    tv = inceptionzoo.create_model("inception_v3.tv_in1k")
    config = inceptionzoo.data_config(tv)
    assert (
        config["input_size"] == (3, 299, 299) and config["interpolation"] == "bicubic" and config["crop_pct"] == 0.875
    )
    from PIL import Image

    image = Image.new("RGB", (400, 350), color=(255, 0, 0))
    tensor = inceptionzoo.create_transform(tv)(image)
    assert tensor.shape == (3, 299, 299)
    torch.testing.assert_close(tensor[0].mean(), torch.tensor(1.0))  # (1 - 0.5) / 0.5


@pytest.mark.parametrize("in_chans", [1, 3, 4])
def test_the_transform_gives_the_models_channels_from_any_image_mode(in_chans):
    from PIL import Image

    model = inceptionzoo.create_model("inception_v1", in_chans=in_chans)
    config = inceptionzoo.data_config(model)
    assert len(config["mean"]) == len(config["std"]) == in_chans
    if in_chans == 1:
        assert config["mean"] == pytest.approx((sum((0.485, 0.456, 0.406)) / 3,))
    for mode in ("L", "RGB", "RGBA", "CMYK", "P"):
        image = Image.new("RGB", (260, 240), color=(200, 40, 90)).convert(mode)
        if in_chans == 4:
            image = image.convert("RGBA")  # four channels: the caller's own layout, not converted
        for training in (False, True):
            x = inceptionzoo.create_transform(model, is_training=training)(image)
            assert x.shape == (in_chans, 224, 224), (mode, training)
    assert model(x[None]).shape == (1, 1000)


def test_push_to_hub_uploads_the_saved_layout(monkeypatch, tmp_path):
    from huggingface_hub import HfApi, RepoUrl

    uploaded = {}

    def create_repo(self, repo_id, **kwargs):
        uploaded["repo"] = repo_id
        return RepoUrl(f"http://127.0.0.1/{repo_id}", endpoint="http://127.0.0.1")

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "file_exists", lambda self, repo_id, filename, **kwargs: False)  # no card there yet

    def upload_folder(self, repo_id, folder_path, **kwargs):
        uploaded["files"] = sorted(p.name for p in Path(folder_path).iterdir())
        return "http://127.0.0.1/commit"

    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    model = inceptionzoo.create_model("inception_v1_cifar")
    assert inceptionzoo.push_to_hub(model, "me/googlenet-cifar") == "http://127.0.0.1/commit"
    assert uploaded == {"repo": "me/googlenet-cifar", "files": ["README.md", "config.json", "model.safetensors"]}


@pytest.mark.slow
def test_two_threads_asking_at_once_share_one_download(hub):
    """huggingface_hub's file lock makes the two share one transfer; this checks that our sha256 check and cache
    repair on top of it do not break that (a file is never judged while the other thread still writes it)."""
    hub.delay = 0.5  # both requests are in flight together
    results: list[torch.Tensor] = []

    def fetch() -> None:
        model = inceptionzoo.create_model("inception_v3.tf_in1k", pretrained=True)
        results.append(model.state_dict()["fc.weight"])

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=900)  # a bound on a hang
    assert len(results) == 2 and all(torch.equal(r, hub_state(hub)["fc.weight"]) for r in results)
    assert weight_gets(hub) == 1


@pytest.mark.slow
@LOWEST
def test_offline_with_a_partly_filled_cache(hub, monkeypatch):
    inceptionzoo.create_model("inception_v3.tv_in1k", pretrained=True)  # cached
    hub.fault = "drop"  # tf_in1k's download breaks off half way, leaving an incomplete file in the cache
    with pytest.raises(WeightsDownloadError):
        inceptionzoo.create_model("inception_v3.tf_in1k", pretrained=True)
    hub.fault = None
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    requests = len(hub.requests)
    inceptionzoo.create_model("inception_v3.tv_in1k", pretrained=True)  # what is cached works offline
    with pytest.raises(WeightsNotCachedError, match="inceptionzoo download inception_v3.tf_in1k"):
        inceptionzoo.create_model("inception_v3.tf_in1k", pretrained=True)  # half a file is not a cached file
    assert len(hub.requests) == requests
    monkeypatch.delenv("HF_HUB_OFFLINE")
    model = inceptionzoo.create_model("inception_v3.tf_in1k", pretrained=True)  # online again: completed
    assert torch.equal(model.state_dict()["fc.weight"], hub_state(hub)["fc.weight"])


@pytest.mark.slow
def test_a_server_that_stops_answering_fails_within_a_bounded_time(hub, monkeypatch):
    """A Hub that accepts the connection and never answers (held until released, not a delay that a slow machine
    could outwait): the download fails, naming the model, instead of hanging. The timeouts only need to be shorter
    than the test's patience; the bound on the wait is a bound on a hang, not a speed claim."""
    from huggingface_hub import constants, file_download

    with monkeypatch.context() as short_timeouts:
        short_timeouts.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 2)
        short_timeouts.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 2)
        # recent huggingface_hub asks once more, with a fixed 60 s timeout, when nothing is cached (raising=False: older
        # versions have no such retry)
        short_timeouts.setattr(file_download, "_ETAG_RETRY_TIMEOUT", 2, raising=False)
        short_timeouts.setattr(time, "sleep", lambda seconds: None)  # its back-off between tries, not waited out
        hub.stall()
        started = time.monotonic()
        with pytest.raises(WeightsDownloadError, match="inception_v3.tf_in1k"):
            inceptionzoo.create_model("inception_v3.tf_in1k", pretrained=True)
        assert time.monotonic() - started < 600  # without timeouts this would wait forever
        hub.release()
    # the server answers again and the client has its default timeouts back: the same download completes
    model = inceptionzoo.create_model("inception_v3.tf_in1k", pretrained=True)
    assert torch.equal(model.state_dict()["fc.weight"], hub_state(hub)["fc.weight"])


def test_save_pretrained_writes_a_channels_last_model(tmp_path):
    model = inceptionzoo.create_model("inception_v1_cifar").to(memory_format=torch.channels_last)
    folder = inceptionzoo.save_pretrained(model, tmp_path / "saved")  # safetensors refuses strided tensors
    loaded = inceptionzoo.create_model(f"local-dir:{folder}", pretrained=True)
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True)
    )
    assert next(model.parameters()).is_contiguous(memory_format=torch.channels_last)  # the caller's model untouched


def test_a_converted_checkpoint_is_keyed_by_its_url(hub, weights):
    # a URL without a hash prefix in its file name: the converted copy records the URL it came from, and a file of
    # the same name from another URL is fetched and converted again instead of served from the first one's copy
    first, second = (
        weights["googlenet"],
        torchvision.models.googlenet(weights=None, init_weights=True, aux_logits=False),
    )
    for folder, model in (("a", first), ("b", second)):
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        hub.files[f"{folder}/googlenet.pth"] = buffer.getvalue()
    loaded = [
        inceptionzoo.create_model(
            "inception_v1_tv.tv_in1k",
            pretrained=True,
            pretrained_cfg_overlay={"url": f"{hub.url}/files/{folder}/googlenet.pth"},
        )
        for folder in ("a", "b")
    ]
    for model, reference in zip(loaded, (first, second), strict=True):
        assert torch.equal(model.state_dict()["fc.weight"], reference.state_dict()["fc.weight"])
