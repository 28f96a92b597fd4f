"""Publishing a model in timm's Hub layout through timm's own ``save_for_hf`` / ``push_to_hf_hub``: ``config.json``
(architecture, model arguments, pretrained config), ``model.safetensors`` and a model card from timm's
``generate_readme``, so that ``timm`` tooling and ``create_model("hf-hub:...")`` read the same files."""

from __future__ import annotations

import copy
import itertools
import json
import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["model_card", "push_to_hub", "save_pretrained"]


def model_card(
    model: torch.nn.Module, repo_id: str | None = None, model_args: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The model card fields timm's ``generate_readme`` renders: what the weights are, how to load them, the paper.

    ``model_args`` are the JSON-ready arguments that rebuild the model (``_model_args(model)`` by default)."""
    cfg = model.pretrained_cfg
    if model_args is None:
        model_args = _model_args(model)
    arch = cfg.get("architecture") or type(model).__name__
    details: dict[str, Any] = {
        "Model Type": "Image classification",
        "Architecture": f"`{arch}`",
        "Classes": model.num_classes,
        "Image size": f"{cfg.get('input_size')}",
        "Model arguments": f"`{json.dumps(model_args, sort_keys=True)}`",
        "Dataset": _dataset(cfg),
    }
    if cfg.get("fine_tuned_from"):
        details["Fine-tuned from"] = f"`{cfg['fine_tuned_from']}`"
    if cfg.get("paper_name"):
        details["Paper"] = f"{cfg['paper_name']} ({cfg.get('paper_ids') or 'no identifier'})"
    details.update({k: cfg[k] for k in ("top1", "top5") if cfg.get(k) is not None})
    name = repo_id or "<your-repo>"
    return {
        "library_name": "inceptionzoo",
        "tags": ["image-classification", "inceptionzoo", "timm"],
        "license": cfg.get("license") or "other",
        "description": cfg.get("description") or f"An `{arch}` model from inceptionzoo.",
        "details": details,
        "usage": "```python\nimport inceptionzoo\n\n"
        f'model = inceptionzoo.create_model("hf-hub:{name}", pretrained=True).eval()\n'
        "transform = inceptionzoo.create_transform(model)\n```",
    }


def _dataset(cfg: dict[str, Any]) -> str:
    """What the weights were trained on: the field a training run writes, else what a published tag's ``in1k``
    suffix says (timm's naming), else unknown: never a guess from the number of classes."""
    if cfg.get("dataset"):
        return cfg["dataset"]
    return "ImageNet-1k" if str(cfg.get("tag") or "").endswith("in1k") else "unknown"


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def _model_args(model: torch.nn.Module) -> dict[str, Any]:
    """The arguments the factory recorded on the model, as JSON (config.json and the model card show the same)."""
    return _jsonable(dict(getattr(model, "model_args", {})))


def _contiguous(model: torch.nn.Module) -> torch.nn.Module:
    """safetensors refuses strided tensors: a channels-last model is saved from a contiguous copy."""
    if all(tensor.is_contiguous() for tensor in itertools.chain(model.parameters(), model.buffers())):
        return model
    return copy.deepcopy(model).to(memory_format=torch.contiguous_format)


def save_pretrained(model: torch.nn.Module, folder: str | os.PathLike, repo_id: str | None = None) -> Path:
    """Write ``model`` in timm's Hub layout (timm's ``save_for_hf``): ``config.json``, ``model.safetensors`` and a
    README model card. The folder loads back with ``create_model("local-dir:<folder>", pretrained=True)`` (or
    ``hf-hub:`` once pushed)."""
    # timm exports save_for_hf from timm.models only since 1.0.2x, and generate_readme not at all: the module path
    # is the one name both have in every supported timm version
    from timm.models._hub import generate_readme, save_for_hf

    folder = Path(folder)
    model_args = _model_args(model)
    save_for_hf(_contiguous(model), str(folder), model_args=model_args, safe_serialization=True)
    name = (repo_id or model.pretrained_cfg.get("architecture") or type(model).__name__).split("/")[-1]
    card = model_card(model, repo_id, model_args)
    (folder / "README.md").write_text(generate_readme(card, name), encoding="utf-8")
    return folder


def push_to_hub(
    model: torch.nn.Module,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Add weights with inceptionzoo",
    revision: str | None = None,
) -> str:
    """Upload ``model`` to ``repo_id`` (created if needed) with timm's ``push_to_hf_hub``: the files of
    ``save_pretrained``, the model card only where the repo has none yet. Returns the commit's URL.

    It pushes to huggingface_hub's configured endpoint (``HF_ENDPOINT`` as it was when huggingface_hub was
    imported), as timm and huggingface_hub do; only downloads re-read ``HF_ENDPOINT`` on every call."""
    from timm.models import push_to_hf_hub

    model_args = _model_args(model)
    commit = push_to_hf_hub(
        _contiguous(model),
        repo_id,
        commit_message=commit_message,
        token=token,
        revision=revision,
        private=private,
        model_card=model_card(model, repo_id, model_args),
        model_args=model_args,
        safe_serialization=True,
    )
    return str(getattr(commit, "commit_url", commit))
