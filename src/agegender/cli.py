"""Command line: the only place that parses arguments. Heavy imports happen inside each command."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--arch", default="paper", help="registered architecture (default: paper)")
    g.add_argument("--head", choices=("reg", "cls"), default="reg",
                   help="reg: the paper's joint L2 regression; cls: softmax heads (default: reg)")
    g.add_argument("--tasks", default="age,gender", help="comma-separated tasks, e.g. age,gender,race")
    g.add_argument("--conv-layers", type=int, default=4, help="paper trunk depth 3..6 (default 4)")


def _add_train_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training (defaults: the recipe's)")
    g.add_argument("--recipe", default="paper", help="named recipe: paper (verbatim) or cpu (see docs/RESULTS.md)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--lr-steps", help="comma-separated epochs at which lr is divided by 10")
    g.add_argument("--warmup-epochs", type=float)
    g.add_argument("--grad-clip", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--no-augment", action="store_true")
    g.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast (used only where the CPU has native bf16)")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    g.add_argument("--seed", type=int)
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", required=True, choices=("utkface", "adience", "csv", "celeba_gender"))
    g.add_argument("--data-root", required=True,
                   help="dataset folder (adience: the fold files' folder; csv: the CSV file)")
    g.add_argument("--image-root", help="adience: folder holding aligned/ or faces/ (default: --data-root)")
    g.add_argument("--skip-missing", action="store_true", help="drop records whose image file is missing")


def _configs(args):
    from agegender.config import ModelConfig, recipe

    model_cfg = ModelConfig(arch=args.arch, head=args.head, tasks=tuple(t for t in args.tasks.split(",") if t),
                            conv_layers=args.conv_layers)
    steps = tuple(int(s) for s in args.lr_steps.split(",") if s) if args.lr_steps else None
    train_cfg = recipe(args.recipe, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       lr_step_epochs=steps, warmup_epochs=args.warmup_epochs, grad_clip=args.grad_clip,
                       weight_decay=args.weight_decay, augment=False if args.no_augment else None,
                       bf16=args.bf16, channels_last=args.channels_last, threads=args.threads, seed=args.seed)
    return model_cfg, train_cfg


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_train(args) -> int:
    from agegender.data.datasets import parse_extra, read_dataset
    from agegender.data.faceset import FaceSet, build_faceset
    from agegender.train import fit, init_distributed

    init_distributed()
    model_cfg, train_cfg = _configs(args)
    sets = []
    for name, root in [(args.dataset, args.data_root)] + [parse_extra(e) for e in args.extra]:
        records, info = read_dataset(name, root, image_root=args.image_root if name == args.dataset else None,
                                     skip_missing=args.skip_missing)
        sets.append(build_faceset(records, model_cfg.input_size, tag=name, progress=not args.no_progress))
    train_set = FaceSet.concat(sets) if len(sets) > 1 else sets[0]
    fit(model_cfg, train_cfg, train_set, args.out, resume=args.resume, progress=not args.no_progress, log=_log)
    _log(f"checkpoint written to {Path(args.out) / 'checkpoint'}")
    return 0


def cmd_cv(args) -> int:
    from agegender.cv import format_summary, run_cv
    from agegender.data.datasets import read_dataset
    from agegender.train import init_distributed

    init_distributed()
    model_cfg, train_cfg = _configs(args)
    records, info = read_dataset(args.dataset, args.data_root, image_root=args.image_root,
                                 skip_missing=args.skip_missing)
    only = [int(f) for f in args.only_folds.split(",")] if args.only_folds else None
    results = run_cv(records, info, model_cfg, train_cfg, args.out, k=args.folds, fold_seed=args.fold_seed,
                     only_folds=only, tune_val=args.tune_val, eval_every=args.eval_every,
                     command="agegender " + shlex.join(sys.argv[1:]), progress=not args.no_progress, log=_log)
    print(format_summary(results["summary"]))
    print(f"results: {Path(args.out) / 'results.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agegender", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train on all the data given and write a checkpoint")
    _add_data_args(p)
    p.add_argument("--extra", action="append", default=[], metavar="DATASET:PATH",
                   help="more training data, e.g. celeba_gender:../shared/data/celeba_gender (missing tasks masked)")
    _add_model_args(p)
    _add_train_args(p)
    p.add_argument("--out", required=True, help="run folder (checkpoint/, log.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("cv", help="k-fold cross-validation (subject-exclusive / duplicate-safe folds)")
    _add_data_args(p)
    _add_model_args(p)
    _add_train_args(p)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--fold-seed", type=int, default=0)
    p.add_argument("--only-folds", help="comma-separated fold indices to run (default: all)")
    p.add_argument("--tune-val", type=float, default=0.0,
                   help="score a validation split of this fraction carved from each fold's training part "
                        "(test folds untouched), for choosing lr / schedule")
    p.add_argument("--eval-every", type=int, default=0, help="evaluate every N epochs (learning curve)")
    p.add_argument("--out", required=True, help="run folder; finished folds are skipped on rerun")
    p.set_defaults(func=cmd_cv)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"agegender {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
