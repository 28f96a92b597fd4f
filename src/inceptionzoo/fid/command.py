"""``inceptionzoo fid A B``: FID (and IS and KID when asked) between two sets, or ``--save-stats`` of one. Its
options are defined in ``cli`` (so that ``--help`` imports no torch)."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import torch

from .compute import compute, set_statistics
from .network import fid_network

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    if args.b is None and args.save_stats is None:
        raise ValueError("give two sets (inceptionzoo fid A B), or one with --save-stats FILE.npz")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be 1 or more, got {args.batch_size}")
    dtype = torch.bfloat16 if args.bf16 else "int8" if args.int8 else torch.float32
    network = None
    if args.save_stats is not None and args.int8:
        raise ValueError("--int8 is for quick comparisons, and its statistics would mix with fp32 ones in later "
                         "comparisons: save statistics in fp32 (leave --int8 out)")  # fmt: skip
    if args.save_stats is not None:
        network = fid_network(fast=not args.exact, dtype=dtype, allow_random_weights=args.allow_random_weights,
                              engine=args.engine)  # fmt: skip
        statistics = set_statistics(args.a, args.resize_mode, args.batch_size, args.max_images, network,
                                    save=args.save_stats, progress=not args.quiet)  # fmt: skip
        print(f"{args.a}: statistics of {statistics.count} images ({args.resize_mode}) written to {args.save_stats}",
              file=sys.stderr)  # fmt: skip
        if args.b is None:
            return 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the result carries its warnings; they are printed below
        result = compute(
            args.a if args.save_stats is None else statistics,
            args.b,
            resize_mode=args.resize_mode,
            batch_size=args.batch_size,
            max_images=args.max_images,
            isc=args.isc,
            isc_splits=args.isc_splits,
            kid=args.kid,
            kid_subsets=args.kid_subsets,
            kid_subset_size=args.kid_subset_size,
            model=network,
            fast=not args.exact,
            dtype=dtype,
            engine=args.engine,
            allow_random_weights=args.allow_random_weights,
            progress=not args.quiet,
        )
    for note in result.warnings:
        print(f"warning: {note}", file=sys.stderr)
    text = json.dumps(result.to_dict(), indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0
