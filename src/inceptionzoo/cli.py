"""The ``inceptionzoo`` command: list models, show one, download weights for offline use, publish a model."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

__all__ = ["main"]


# fid.resize.RESIZE_MODES, the default first, written out so that --help imports no torch (a test checks they agree)
FID_RESIZE_MODES = ("pytorch-fid", "tf", "clean")


def _meta_model(name: str):
    """``name`` built on the ``meta`` device: shapes only, no weights and no arithmetic, which is all that sizes,
    costs and feature taps need (a whole table takes seconds)."""
    import torch

    from . import create_model

    with torch.device("meta"):
        return create_model(name)


def model_costs(name: str, model=None) -> tuple[int, int]:
    """Parameters and multiply-adds at the input size of ``name`` (counted on ``model``, default its meta build)."""
    import torch

    from .complexity import count_macs, count_parameters

    model = model if model is not None else _meta_model(name)
    with torch.device("meta"):  # count_macs makes its input on the default device
        return count_parameters(model), count_macs(model)


def _cmd_list(args: argparse.Namespace) -> int:
    from . import get_pretrained_cfg, list_models
    from ._registry import close_names

    names = list_models(args.pattern or "", pretrained=args.pretrained)
    if not names:
        what = "pretrained weights" if args.pretrained else "models"
        every = list_models(pretrained=args.pretrained)
        stem = "".join(c for c in args.pattern if c not in "*?[]")  # the pattern's letters: a name to match
        close = close_names(stem, every) if stem else []
        hint = f"; did you mean: {', '.join(close)}?" if close else ""
        everything = "inceptionzoo list --pretrained" if args.pretrained else "inceptionzoo list"
        print(f"no {what} match {args.pattern!r}{hint} (`{everything}` shows all {len(every)})", file=sys.stderr)
        return 1
    if args.names:
        print("\n".join(names))
        return 0
    rows = [("model", "weights", "params (M)", "GMACs", "input", "top-1")]
    for name in names:
        cfg = get_pretrained_cfg(name)
        parameters, macs = model_costs(name)
        size = "x".join(map(str, cfg.input_size[1:]))
        top1 = f"{cfg.top1:.2f}" if getattr(cfg, "top1", None) else "-"
        tag = (cfg.tag or "-") if cfg.has_weights else "-"
        rows.append((name, tag, f"{parameters / 1e6:.2f}", f"{macs / 1e9:.2f}", size, top1))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:  # names left-aligned, figures right-aligned
        print(
            "  ".join(
                cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return 0


def model_info(name: str) -> dict:
    """The facts ``inceptionzoo info`` prints: sizes, cost, feature taps, weight tags and, for ``arch.tag`` (or an
    architecture whose default tag has weights), where the weights come from, their preprocessing and accuracy."""
    from . import get_pretrained_cfg, list_models

    model = _meta_model(name)  # one build serves the costs and the taps, as for `list`
    parameters, macs = model_costs(name, model)
    cfg = get_pretrained_cfg(name)
    arch = cfg.architecture or name.split(".")[0]
    weights = None
    if cfg.has_weights:
        weights = {
            "tag": cfg.tag,
            "source": (cfg.hf_hub_id and f"hf-hub:{cfg.hf_hub_id}") or cfg.url or cfg.file,
            "license": cfg.license,
            "origin": cfg.origin_url,
            "interpolation": cfg.interpolation,
            "crop_pct": cfg.crop_pct,
            "mean": list(cfg.mean),
            "std": list(cfg.std),
            "top1": getattr(cfg, "top1", None),
            "top5": getattr(cfg, "top5", None),
            "quantized": getattr(cfg, "quantized", ""),
        }
    return {
        "name": name,
        "parameters": parameters,
        "macs": macs,
        "input_size": list(model.pretrained_cfg["input_size"]),
        "min_input_size": list(model.pretrained_cfg["min_input_size"]),
        "num_features": model.num_features,
        "feature_info": model.feature_info,
        "weight_tags": [t for t in list_models(arch, include_tags=True) if "." in t],
        "weights": weights,
        "paper": f"{cfg.paper_name} ({cfg.paper_ids})" if cfg.paper_name else None,
        "description": cfg.description,
    }


def _cmd_info(args: argparse.Namespace) -> int:
    info = model_info(args.name)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    c, h, w = info["input_size"]
    print(f"{info['name']}: {info['description'] or ''}")
    print(f"  paper:          {info['paper'] or '-'}")
    print(f"  parameters:     {info['parameters']:,}")
    print(f"  multiply-adds:  {info['macs'] / 1e9:.3f} G at {h}x{w}")
    print(f"  input size:     {c}x{h}x{w}   minimum: {'x'.join(map(str, info['min_input_size'][1:]))}")
    print(f"  num_features:   {info['num_features']}")
    print("  feature_info:")
    for i, tap in enumerate(info["feature_info"]):
        print(f"    {i}: {tap['module']:<16} channels {tap['num_chs']:<5} reduction {tap['reduction']}")
    print(f"  weight tags:    {', '.join(info['weight_tags']) or 'none published yet'}")
    weights = info["weights"]
    if weights:
        accuracy = (
            f"top-1 {weights['top1']:.2f}%, top-5 {weights['top5']:.2f}% (ImageNet-1k val, single crop)"
            if weights["top1"]
            else "no ImageNet accuracy published for these weights"
        )
        print(f"  weights {weights['tag']}:")
        print(f"    source:       {weights['source']}")
        print(f"    license:      {weights['license'] or '-'}   origin: {weights['origin'] or '-'}")
        mean, std = (f"({', '.join(f'{v:.4g}' for v in weights[k])})" for k in ("mean", "std"))
        print(f"    preprocessing: {weights['interpolation']}, crop_pct {weights['crop_pct']}, mean {mean}, std {std}")
        print(f"    published:    {accuracy}")
        if weights["quantized"]:
            print(f"    int8:         packed for the {weights['quantized']} engine; pretrained=True gives an int8 "
                  "inference model (CPU)")  # fmt: skip
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from . import get_pretrained_cfg
    from ._registry import full_model_name
    from .hub import WeightsNotCachedError, download_pretrained

    for name in args.names:
        cfg = get_pretrained_cfg(name)
        full = full_model_name(cfg.architecture, cfg.tag) if cfg.tag else name
        if not cfg.has_weights:
            raise ValueError(f"{full} has no published weights; see `inceptionzoo list --pretrained`")
        try:
            print(f"{full}: {download_pretrained(cfg, full, args.cache_dir)}")
        except WeightsNotCachedError as error:  # the library's message sends people to this very command
            raise WeightsNotCachedError(error.missing, error.name, error.folder, downloading=True) from None
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    from . import create_model
    from .hub import push_to_hub, save_pretrained

    kwargs = {"num_classes": args.num_classes} if args.num_classes is not None else {}
    pretrained = args.checkpoint is None
    model = create_model(args.name, pretrained=pretrained, checkpoint_path=args.checkpoint, **kwargs)
    if args.local_dir:
        print(save_pretrained(model, args.local_dir, repo_id=args.repo_id))
    else:
        print(push_to_hub(model, args.repo_id, private=args.private))
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:
    import time

    from .train.data.cache import cache_entries, clear_cache, default_cache_dir, max_cache_bytes

    folder = args.cache_dir or default_cache_dir()
    if args.action == "clear":
        removed = clear_cache(folder, kind=args.kind)
        freed = sum(entry.size for entry in removed)
        count = f"{len(removed)} entr{'y' if len(removed) == 1 else 'ies'}"
        print(f"removed {count} ({freed / 2**20:.1f} MiB) from {folder}")
        return 0
    entries = [entry for entry in cache_entries(folder) if args.kind is None or entry.kind == args.kind]
    total = sum(entry.size for entry in entries)
    print(f"{folder}: {len(entries)} entries, {total / 2**20:.1f} MiB (cap {max_cache_bytes() / 2**30:g} GiB, "
          "INCEPTIONZOO_CACHE_MAX_GB)")  # fmt: skip
    for entry in entries:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
        print(f"  {entry.kind:<9} {entry.size / 2**20:>10.1f} MiB  last used {used}  {entry.path.name}")
    print("weights: the Hugging Face cache (`hf cache scan`, `huggingface-cli delete-cache`); URL checkpoints kept as "
          "safetensors in torch.hub's checkpoints folder")  # fmt: skip
    return 0


def _add_fid_arguments(parser: argparse.ArgumentParser) -> None:
    """``inceptionzoo fid``'s options, here so that ``--help`` imports no torch (``fid.command`` runs them)."""
    parser.add_argument("a", help="a folder of images, a .tar/.tar.gz of images (or a folder inside one: "
                        "data.tar.gz/test), a .pt tensor of images, or an .npz of statistics")  # fmt: skip
    parser.add_argument("b", nargs="?", help="the other set, as A (leave out with --save-stats)")
    parser.add_argument("--resize-mode", choices=FID_RESIZE_MODES, default=FID_RESIZE_MODES[0],
                        help=f"how images reach 299x299 (default {FID_RESIZE_MODES[0]}; docs/fid.md)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=50, help="images per forward pass (the figure does not "
                        "depend on it)")  # fmt: skip
    parser.add_argument("--max-images", type=int, default=None, help="use only the first N images of each set")
    parser.add_argument("--save-stats", metavar="NPZ", default=None, help="write A's statistics (pytorch-fid's .npz "
                        "layout, with the resize mode) and stop, unless B is given")  # fmt: skip
    parser.add_argument("--isc", action="store_true", help="also the Inception Score of each image set")
    parser.add_argument("--isc-splits", type=int, default=10, help="the Inception Score's splits (default 10)")
    parser.add_argument("--kid", action="store_true", help="also the Kernel Inception Distance (both sets as images)")
    parser.add_argument("--kid-subsets", type=int, default=100, help="KID's random subsets (default 100)")
    parser.add_argument("--kid-subset-size", type=int, default=1000, help="images per KID subset (default 1000)")
    parser.add_argument("--exact", action="store_true", help="run the network as built, not its fp32 fast path")
    parser.add_argument("--engine", choices=("torch", "onnxruntime"), default="torch", help="what runs the fast "
                        "path: torch (default) or ONNX Runtime (the onnx extra; docs/fid.md)")  # fmt: skip
    reduced = parser.add_mutually_exclusive_group()
    reduced.add_argument("--bf16", action="store_true", help="bfloat16: faster on some CPUs, but it moves FID "
                         "(the result reports by how much; docs/fid.md)")  # fmt: skip
    reduced.add_argument("--int8", action="store_true", help="int8, calibrated on the first set's images: the "
                         "fastest on CPUs with int8 dot products, and it moves FID most (the result reports by how "
                         "much)")  # fmt: skip
    parser.add_argument("--allow-random-weights", action="store_true", help="for tests only: run without the FID "
                        "weights, with a warning on the result")  # fmt: skip
    parser.add_argument("--json", metavar="FILE", default=None, help="also write the result as JSON to FILE")
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def _cmd_fid(args: argparse.Namespace) -> int:
    from .fid.command import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="inceptionzoo", description="The Inception family for PyTorch.")
    parser.add_argument("--version", action="version", version=f"inceptionzoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="a table of the registered models (shell-style PATTERN, e.g. 'inception_v3*')")
    p_list.add_argument("pattern", nargs="?", default="", help="shell-style wildcard filter")
    p_list.add_argument("--pretrained", action="store_true", help="only names with published weights, as arch.tag")
    p_list.add_argument("--names", action="store_true", help="the names only, one per line (for scripts)")
    p_list.set_defaults(func=_cmd_list)
    p_info = sub.add_parser("info", help="parameters, multiply-adds, input sizes, feature taps and weight tags")
    p_info.add_argument("name", help="a model name, optionally arch.tag")
    p_info.add_argument("--json", action="store_true", help="print the facts as JSON")
    p_info.set_defaults(func=_cmd_info)
    p_download = sub.add_parser("download", help="fetch published weights into the cache (for offline use later)")
    p_download.add_argument("names", nargs="+", help="model names with weights, e.g. inception_v3.tf_in1k")
    p_download.add_argument("--cache-dir", default=None, help="cache folder (default: HF_HUB_CACHE or HF_HOME/hub)")
    p_download.set_defaults(func=_cmd_download)
    p_push = sub.add_parser("push", help="publish a model in timm's layout to a Hub repo (or write it to a folder)")
    p_push.add_argument("name", help="the model, e.g. inception_v3.tv_in1k (its weights are downloaded)")
    p_push.add_argument("repo_id", help="the Hub repo to create or update, e.g. me/inception_v3-cifar10")
    p_push.add_argument("--checkpoint", default=None, help="a local .safetensors/.pth to publish instead")
    p_push.add_argument("--num-classes", type=int, default=None, help="classifier size of --checkpoint")
    p_push.add_argument("--private", action="store_true", help="create the repo as private")
    p_push.add_argument("--local-dir", default=None, help="only write the files to this folder, upload nothing")
    p_push.set_defaults(func=_cmd_push)
    p_cache = sub.add_parser("cache", help="list or clear the training cache (decoded data, shard indexes, features)")
    p_cache.add_argument("action", choices=("list", "clear"), help="show the entries, or delete them")
    p_cache.add_argument("--kind", default=None, choices=("dataset", "shards", "features"), help="only this kind")
    p_cache.add_argument("--cache-dir", default=None, help="the cache folder (default: INCEPTIONZOO_CACHE, else "
                         "~/.cache/inceptionzoo/datasets)")  # fmt: skip
    p_cache.set_defaults(func=_cmd_cache)
    p_fid = sub.add_parser("fid", help="FID (and IS, KID) between two image sets or statistics files; --save-stats")
    _add_fid_arguments(p_fid)
    p_fid.set_defaults(func=_cmd_fid)
    # `inceptionzoo train|validate|ablate ...` go to inceptionzoo.train whole (see main); listed here for --help
    sub.add_parser("train", add_help=False, help="train or fine-tune a model (the train extra); see train --help")
    sub.add_parser("validate", add_help=False, help="top-1/top-5/loss/speed of a model on a dataset (the train extra)")
    sub.add_parser("ablate", add_help=False, help="an ablation study, e.g. the Inception-v3 paper's Table 3 (the train "
                   "extra); see ablate --help")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:
        from .train.command import main as train_main  # training code is imported only when asked for

        return train_main(argv[1:], prog="inceptionzoo train")
    if argv[:1] == ["validate"]:
        from .train.validate import main as validate_main

        return validate_main(argv[1:], prog="inceptionzoo validate")
    if argv[:1] == ["ablate"]:
        from .train.ablate import main as ablate_main

        return ablate_main(argv[1:])
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, RuntimeError, FileNotFoundError) as error:
        # the library's own errors are written for people: show them plainly, without a traceback
        print(f"inceptionzoo: error: {error}", file=sys.stderr)
        from ._registry import UnknownModelError

        if isinstance(error, UnknownModelError):
            print("inceptionzoo: run `inceptionzoo list` for every model, `inceptionzoo list --pretrained` for "
                  "every weight tag", file=sys.stderr)  # fmt: skip
        return 2
