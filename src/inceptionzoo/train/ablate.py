"""``inceptionzoo ablate`` / ``python -m inceptionzoo.train.ablate``: an ablation study from the command line.

Under torchrun every run of the study is distributed over the processes, e.g.
``torchrun --nproc_per_node 8 -m inceptionzoo.train.ablate --study table3 --data /imagenet --epochs 100``.
"""

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .command import KeyValuePairs, whole_or_fractional
from .loop import TrainingInterrupted
from .study import ADAPTATIONS, STUDIES, Study, arm_from_spec, collect_results, load_study_file, run_study, study_arms
from .study_report import write_report

__all__ = ["build_parser", "main", "study_from_args"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inceptionzoo ablate",
        description="An ablation study: arms (a model spec and a recipe) trained side by side under one budget with "
        "N seeds each, on any data `inceptionzoo train` accepts; a Table-3-style report (error mean, std and 95% "
        "interval over seeds, the change against the previous arm, parameters, multiply-adds, time), a plot, CSV and "
        "JSON. Run the same command again to go on after a crash or Ctrl-C: finished runs are kept, a cut run "
        "resumes from its last epoch.",
    )
    arms = parser.add_mutually_exclusive_group(required=True)
    arms.add_argument("--study", help=f"a built-in study ({', '.join(STUDIES)}: the Inception-v3 paper's eight "
                      "Table 3 rows) or a .toml file of arms (docs/ablation.md)")  # fmt: skip
    arms.add_argument("--arms", nargs="+", metavar="SPEC",
                      help="arms as model specs: a registered name with builder arguments, e.g. inception_v3_cifar "
                      "inception_v3_cifar:factorize_nxn=False")  # fmt: skip
    parser.add_argument("--data", required=True, help="the data, as `inceptionzoo train --data` takes it")
    parser.add_argument("--output", help="the study's folder (default: studies/<study>); rerun with the same one to "
                        "go on")  # fmt: skip
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--epochs",
        type=whole_or_fractional,
        help="epochs per run, the same for every arm (9.9 ends with a partial pass)",
    )
    budget.add_argument("--budget-minutes", type=float, help="minutes of training per run: each arm's epochs are "
                        "what fits, from its speed measured on this machine before its first run")  # fmt: skip
    parser.add_argument("--seeds", type=int, help="seeds per arm, 0 to N-1 (default: the study file's, else 2)")
    parser.add_argument("--recipe", help="the recipe of the --arms (default: each model's own)")
    parser.add_argument("--adapt", choices=sorted(ADAPTATIONS), default="none",
                        help="the small-scale adaptation every arm shares: section9 trains at low resolution as the "
                        "paper's Section 9 does (first convolution at stride 1, no max pool after it), each network "
                        "keeping its own stem (default: %(default)s)")  # fmt: skip
    parser.add_argument("--width-multiplier", type=float, help="scale every arm's widths (the same for all)")
    parser.add_argument("--model-kwargs", nargs="+", action=KeyValuePairs, default={}, metavar="KEY=VALUE",
                        help="builder arguments for every arm, e.g. drop_rate=0.2")  # fmt: skip
    parser.add_argument("--set", nargs="+", action=KeyValuePairs, default={}, metavar="KEY=VALUE", dest="settings",
                        help="`inceptionzoo train` settings for every arm, by their names, e.g. batch_size=128 "
                        "amp=bf16 val_size=0 eval_test=True")  # fmt: skip
    parser.add_argument("--image-size", type=int, help="train and evaluate every arm at this size")
    parser.add_argument("--eval-test", action=argparse.BooleanOptionalAction, default=None,
                        help="measure each run once on test/ at its end (the report's figure then)")  # fmt: skip
    parser.add_argument("--compress-schedule", action=argparse.BooleanOptionalAction, default=True,
                        help="fit step schedules to the budget: a recipe that decays every 2 of its 100 epochs decays "
                        "every epochs/50 (default on)")  # fmt: skip
    parser.add_argument("--title", help="the report's title")
    parser.add_argument("--report-only", action="store_true",
                        help="write the report from the finished runs, training nothing")  # fmt: skip
    return parser


def study_from_args(args: argparse.Namespace) -> Study:
    """A ``Study`` from parsed arguments (a study file's values first, the command line's on top)."""
    options: dict[str, Any] = {}
    name = "arms"
    if args.study is not None and args.study.endswith(".toml"):
        options = load_study_file(args.study)
        name = Path(args.study).stem
    elif args.study is not None:
        options = {"arms": study_arms([args.study]), "title": f"{args.study} on {Path(args.data).name}"}
        name = args.study
    else:
        options = {"arms": [arm_from_spec(spec, recipe=args.recipe) for spec in args.arms]}
    model_kwargs = {**options.pop("model_kwargs", {}), **ADAPTATIONS[args.adapt], **args.model_kwargs}
    if args.width_multiplier is not None:
        model_kwargs["width_multiplier"] = args.width_multiplier
    settings = {**options.pop("settings", {}), **args.settings}
    if args.image_size is not None:
        settings["image_size"] = args.image_size
    if args.eval_test is not None:
        settings["eval_test"] = args.eval_test
    for key in ("epochs", "budget_minutes"):
        if getattr(args, key) is not None:
            options.pop("epochs", None)
            options.pop("budget_minutes", None)
            options[key] = getattr(args, key)
    options["seeds"] = args.seeds if args.seeds is not None else options.get("seeds", 2)
    if args.title:
        options["title"] = args.title
    if "epochs" not in options and "budget_minutes" not in options:
        raise ValueError("no budget: pass --epochs N or --budget-minutes M (or set one in the study file)")
    return Study(
        data=args.data,
        output=args.output or f"studies/{name}",
        model_kwargs=model_kwargs,
        settings=settings,
        compress_schedule=args.compress_schedule,
        **options,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or go on with) the study and print where its report is; Ctrl-C stops within a step and says how to go on
    (exit 130)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    try:
        study = study_from_args(args)
        if args.report_only:
            paths = write_report(collect_results(study), study.output, study.title)
            print(json.dumps({name: str(path) for name, path in paths.items()}))
            return 0
        run_study(study)
    except TrainingInterrupted:
        if main_rank:
            print(f"inceptionzoo ablate: interrupted (Ctrl-C). Finished runs are kept in {args.output or 'the study'}"
                  "; run the same command again to go on (the cut run resumes from its last epoch)",
                  file=sys.stderr, flush=True)  # fmt: skip
        return 130
    except (ValueError, RuntimeError, FileNotFoundError, FileExistsError) as error:
        print(f"inceptionzoo ablate: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
