"""Commands that train and evaluate: train, cv, ablation, report, bench (torch is imported when they run)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--arch", default="paper", help="registered architecture (default: paper)")
    g.add_argument("--head", choices=("reg", "cls"), default="reg",
                   help="reg: the paper's joint L2 regression; cls: softmax heads (default: reg)")
    g.add_argument("--tasks", default="age,gender", help="comma-separated tasks, e.g. age,gender,race")
    g.add_argument("--conv-layers", type=int, default=4, help="paper trunk depth 3..6 (default 4)")
    g.add_argument("--input-size", type=int, default=64,
                   help="side of the square face input in pixels (default 64, the paper's)")
    _add_fc_norm_arg(g)
    g.add_argument("--age-bins", type=int, default=0,
                   help="age as one softmax over the years 0..N-1 (e.g. 101; needs the age_years task): age in "
                        "years is its expected value and the 8 age groups are summed from it (default 0: off)")


def _add_fc_norm_arg(g) -> None:
    g.add_argument("--fc-norm", action=argparse.BooleanOptionalAction, default=None,
                   help="BatchNorm in the FC layers (default: on, except with --recipe paper; see docs/RESULTS.md)")


def _fc_norm(args) -> bool:
    return args.fc_norm if args.fc_norm is not None else args.recipe != "paper"


def _add_train_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training (defaults: the recipe's)")
    from agegender.config import RECIPES

    g.add_argument("--recipe", default="recommended", choices=list(RECIPES),
                   help="named recipe (default: recommended, the 30-epoch schedule that cross-validated best): "
                        "paper (the paper's verbatim: lr 0.1, no FC BatchNorm), cpu (15 epochs), ablation "
                        "(Table 3's short schedule), finetune (a second stage after --init), wild (recommended + "
                        "augmentation for real photos), wild-finetune (a further stage with that augmentation, "
                        "e.g. after --init default); see docs/RESULTS.md")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--lr-steps", help="comma-separated epochs at which lr is divided by 10")
    g.add_argument("--grad-clip", type=float)
    g.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast (used only where the CPU has native bf16)")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    g.add_argument("--seed", type=int)
    g.add_argument("--task-weights", metavar="TASK=W,...",
                   help="weight of each task's loss in the sum, e.g. gender=2 (default: 1 for every task)")
    g.add_argument("--teacher", help="knowledge distillation from a cls-head teacher: train: its checkpoint "
                                     "folder, an exported .onnx file or a bundled model (default); cv: a "
                                     "finished cv run with the same folds (fold K learns from its fold K)")
    g.add_argument("--init", help="start from the weights of the same model (fine-tuning): train: its checkpoint "
                                  "folder, an exported .onnx file, or a bundled model (default, fast); cv: a "
                                  "finished cv run with the same folds (fold K starts from its fold K); pair with "
                                  "--recipe finetune or wild-finetune. An 8-group age head may grow into a years "
                                  "head (--age-bins)")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any training or model setting of the recipe, e.g. --set weight_decay=1e-4 "
                        "--set lr_step_epochs=20,25 --set augment_policy=wild --set probe_dead_units=true "
                        "(repeat; applied after the flags; saved with the run like every setting)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", required=True, choices=("utkface", "adience", "csv", "celeba_gender"))
    g.add_argument("--data-root", required=True,
                   help="dataset folder (adience: the fold files' folder; csv: the CSV file)")
    g.add_argument("--image-root", help="adience: folder holding aligned/ or faces/ (default: --data-root)")
    g.add_argument("--skip-missing", action="store_true", help="drop records whose image file is missing")


def _train_config(args):
    import dataclasses

    from agegender.config import parse_overrides

    _, overrides = parse_overrides(getattr(args, "set", None))
    return dataclasses.replace(_flag_train_config(args), **overrides)


def _flag_train_config(args):
    from agegender.config import recipe

    steps = tuple(float(s) for s in args.lr_steps.split(",") if s) if args.lr_steps else None
    return recipe(args.recipe, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  lr_step_epochs=steps, grad_clip=args.grad_clip,
                  bf16=args.bf16, channels_last=args.channels_last, threads=args.threads, seed=args.seed,
                  teacher=getattr(args, "teacher", None) if getattr(args, "command", "") == "train" else None,
                  init=getattr(args, "init", None) if getattr(args, "command", "") == "train" else None,
                  task_weights=_task_weights(getattr(args, "task_weights", None), _tasks(args)))


def _tasks(args) -> tuple[str, ...]:
    return tuple(t for t in getattr(args, "tasks", "age,gender").split(",") if t)


def _task_weights(text: str | None, tasks: tuple[str, ...]) -> dict[str, float] | None:
    """'gender=2,age=1' -> {'gender': 2.0, 'age': 1.0}; a task the model lacks or a bad weight is an error."""
    if not text:
        return None
    weights = {}
    for item in text.split(","):
        task, sep, value = item.partition("=")
        task = task.strip()
        try:
            w = float(value)
        except ValueError:
            w = float("nan")
        if not sep or task not in tasks or not 0 <= w < float("inf"):
            raise ValueError(f"--task-weights: {item!r} is not TASK=WEIGHT with TASK one of {', '.join(tasks)} "
                             "and WEIGHT a finite number >= 0")
        weights[task] = w
    return weights


def _configs(args):
    from agegender.config import ModelConfig, parse_overrides

    model_set, _ = parse_overrides(getattr(args, "set", None))
    model_cfg = ModelConfig(**{**dict(arch=args.arch, head=args.head, tasks=_tasks(args),
                                      conv_layers=args.conv_layers, input_size=args.input_size,
                                      fc_norm=_fc_norm(args), age_bins=args.age_bins), **model_set})
    return model_cfg, _train_config(args)


def _log(msg: str) -> None:
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 talks
        print(msg, file=sys.stderr, flush=True)


def cmd_train(args) -> int:
    from agegender.data.datasets import parse_extra, read_dataset
    from agegender.data.faceset import FaceSet, build_faceset
    from agegender.training.train import dist_info, fit, init_distributed

    init_distributed()
    model_cfg, train_cfg = _configs(args)
    sets = []
    for name, root in [(args.dataset, args.data_root)] + [parse_extra(e) for e in args.extra]:
        records, _ = read_dataset(name, root, image_root=args.image_root if name == args.dataset else None,
                                     skip_missing=args.skip_missing)
        sets.append(build_faceset(records, model_cfg.input_size, tag=name, progress=not args.no_progress))
    train_set = FaceSet.concat(sets) if len(sets) > 1 else sets[0]
    fit(model_cfg, train_cfg, train_set, args.out, resume=args.resume, progress=not args.no_progress, log=_log)
    if dist_info()[0] == 0:
        _log(f"checkpoint written to {Path(args.out) / 'checkpoint'}")
    return 0


def cmd_cv(args) -> int:
    from agegender.data.datasets import parse_extra, read_dataset
    from agegender.experiments.cv import format_summary, run_cv
    from agegender.training.train import dist_info, init_distributed

    init_distributed()
    model_cfg, train_cfg = _configs(args)
    splits = None
    if args.protocol == "levi":
        records, info, splits = _levi_protocol(args)
    else:
        records, info = read_dataset(args.dataset, args.data_root, image_root=args.image_root,
                                     skip_missing=args.skip_missing)
    extras = []
    for spec in args.extra:
        name, root = parse_extra(spec)
        extra_records, extra_info = read_dataset(name, root, skip_missing=args.skip_missing)
        extras.append((name, extra_records))
        info.setdefault("extra", []).append(extra_info)
    only = [int(f) for f in args.only_folds.split(",")] if args.only_folds else None
    results = run_cv(records, info, model_cfg, train_cfg, args.out, k=args.folds, fold_seed=args.fold_seed,
                     only_folds=only, tune_val=args.tune_val, eval_every=args.eval_every,
                     command=args.command_line, progress=not args.no_progress,
                     splits=splits, extras=extras, teacher_run=args.teacher, init_run=args.init, log=_log)
    if dist_info()[0] != 0:
        return 0
    print(format_summary(results["summary"]))
    print(f"results: {Path(args.out) / 'results.json'}")
    return 0


def cmd_ablation(args) -> int:
    from agegender.data.datasets import read_dataset
    from agegender.experiments.ablation import ablation_table, run_ablation, select_rows, sharing_table
    from agegender.provenance import write_section

    if args.teacher or args.init:
        raise ValueError("--teacher / --init: the ablation compares architectures trained from labels alone")
    train_cfg = _train_config(args)
    rows = select_rows([r for r in args.rows.split(",") if r] if args.rows else None)
    if not args.table_only:
        records, info = read_dataset(args.dataset, args.data_root, image_root=args.image_root,
                                     skip_missing=args.skip_missing)
        folds = [int(f) for f in args.only_folds.split(",")] if args.only_folds else None
        run_ablation(records, info, train_cfg, args.out, rows=rows, fc_norm=_fc_norm(args), k=args.folds,
                     folds=folds, fold_seed=args.fold_seed, command=args.command_line,
                     progress=not args.no_progress, log=_log)
    table = ablation_table(args.out, rows, k=args.folds)
    table += ("\n\nDoes sharing the trunk help? Each multi-task row against the single-task row of the same head "
              "and depth, paired by fold (the same test faces):\n\n" + sharing_table(args.out, rows))
    if args.long:
        from agegender.experiments.ablation import schedule_table

        table += ("\n\nRows at the short schedule against cross-validation runs of the same net, tasks and head "
                  "at the headline schedule, on the folds both have finished:\n\n"
                  + schedule_table(args.out, args.long))
    print(table)
    if args.docs:
        write_section(args.docs, args.section, table, args.command_line)
        _log(f"wrote section '{args.section}' of {args.docs}")
    return 0


def _levi_protocol(args):
    """Records and per-fold (train, test) indices from Levi & Hassner's test_fold_is_K lists."""
    import numpy as np

    from agegender.data.readers import check_files, read_levi_fold

    if args.dataset != "adience":
        raise ValueError("--protocol levi applies to --dataset adience")
    image_root = args.image_root or args.data_root
    list_root = args.levi_lists or args.data_root
    index: dict[str, int] = {}
    records, splits = [], []
    for fold in range(5):
        parts = read_levi_fold(list_root, image_root, fold)
        ids = {}
        for name in ("train", "val", "test"):
            for r in parts[name]:
                if r.path not in index:
                    index[r.path] = len(records)
                    records.append(r)
            ids[name] = np.array([index[r.path] for r in parts[name]], dtype=np.int64)
        # Levi & Hassner train on train and report test; their val list is for their own model selection.
        splits.append((ids["train"], ids["test"]))
    kept = check_files(records, args.skip_missing)
    if len(kept) != len(records):
        keep = {r.path for r in kept}
        ok = np.array([r.path in keep for r in records])
        new_index = np.cumsum(ok) - 1
        splits = [(new_index[tr[ok[tr]]], new_index[te[ok[te]]]) for tr, te in splits]
        records = kept
    info = {"dataset": "adience", "protocol": "levi", "lists": str(list_root), "records": len(records)}
    return records, info, splits


def cmd_report(args) -> int:
    from agegender.reporting import report
    from agegender.reporting.report_doc import build_report

    runs = build_report(args.runs, args.out, faces=not args.no_faces, threads=args.threads, log=_log)
    print(f"wrote {Path(args.out) / 'report.md'}")
    if args.docs:
        from agegender.provenance import write_section

        table = report.summary_table(runs)
        write_section(args.docs, args.section, table + "\n\n" + report.PAPER_TABLE1, args.command_line)
        _log(f"wrote section '{args.section}' of {args.docs}")
    return 0


def cmd_bench_speed(args) -> int:
    import json

    from agegender.experiments.bench import measure_speed, rows_to_json, speed_markdown
    from agegender.provenance import write_section

    archs = tuple(a for a in args.archs.split(",") if a)
    threads = tuple(int(t) for t in args.threads.split(","))
    rows = measure_speed(archs, threads, tuple(args.runtimes.split(",")), batch=args.batch,
                         min_seconds=args.min_seconds, progress=_log)
    table = speed_markdown(rows)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(rows_to_json(rows), indent=1))
    if args.docs:
        note = ("Ratios are to ours in the same runtime and thread setting. The paper's phone row (0.5 s vs "
                "5.2 s for Levi & Hassner's net, about 10x) cannot be measured here: no phone-class device, "
                "and one x86 thread is not a phone.")
        write_section(args.docs, args.section, table + "\n" + note, args.command_line)
        _log(f"wrote section '{args.section}' of {args.docs}")
    return 0


def add_commands(sub) -> None:
    """Add this group's subcommands to the top-level parser's ``sub``."""
    for add in (_add_train, _add_cv, _add_ablation, _add_report, _add_bench):
        add(sub)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train on all the data given and write a checkpoint")
    _add_data_args(p)
    p.add_argument("--extra", action="append", default=[], metavar="DATASET:PATH",
                   help="more training data, e.g. celeba_gender:../shared/data/celeba_gender (missing tasks masked)")
    _add_model_args(p)
    _add_train_args(p)
    p.add_argument("--out", required=True, help="run folder (checkpoint/, log.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    p.set_defaults(func=cmd_train)


def _add_cv(sub) -> None:
    p = sub.add_parser("cv", help="k-fold cross-validation (subject-exclusive / duplicate-safe folds)")
    _add_data_args(p)
    _add_model_args(p)
    _add_train_args(p)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--protocol", choices=("folds", "levi"), default="folds",
                   help="adience: the 5 official subject-exclusive folds, or Levi & Hassner's per-fold lists")
    p.add_argument("--levi-lists", help="folder holding test_fold_is_K/ (default: --data-root)")
    p.add_argument("--fold-seed", type=int, default=0)
    p.add_argument("--only-folds", help="comma-separated fold indices to run (default: all)")
    p.add_argument("--tune-val", type=float, default=0.0,
                   help="score a validation split of this fraction carved from each fold's training part "
                        "(test folds untouched), for choosing lr / schedule")
    p.add_argument("--eval-every", type=int, default=0, help="evaluate every N epochs (learning curve)")
    p.add_argument("--extra", action="append", default=[], metavar="DATASET:PATH",
                   help="more training data split into the same folds by its own groups (CelebA: by person); "
                        "each fold also scores the extra's held-out part")
    p.add_argument("--out", required=True, help="run folder; finished folds are skipped on rerun")
    p.set_defaults(func=cmd_cv)


def _add_ablation(sub) -> None:
    p = sub.add_parser("ablation", help="Table 3: single-task nets of 3-6 conv layers vs the multi-task net")
    _add_data_args(p)
    _add_train_args(p)
    p.set_defaults(recipe="ablation")
    _add_fc_norm_arg(p)
    p.add_argument("--rows", help="comma-separated row names (default: all 12)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--fold-seed", type=int, default=0)
    p.add_argument("--only-folds", help="comma-separated fold indices to run (default: all)")
    p.add_argument("--out", required=True, help="ablation folder: one cv run per row; finished folds are skipped")
    p.add_argument("--table-only", action="store_true", help="only (re)write the table from finished folds")
    p.add_argument("--long", action="append", default=[], metavar="CV_RUN",
                   help="a cv run of a row's net (same tasks, head, depth) at the longer headline schedule "
                        "(e.g. cv-cls, cv-reg): the table then shows short vs long fold by fold")
    p.add_argument("--docs", help="write the table as a dated section of this Markdown file")
    p.add_argument("--section", default="Table 3: ablation (UTK-8, 5 folds)")
    p.set_defaults(func=cmd_ablation)


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="Markdown tables and figures from cv run folders")
    p.add_argument("runs", nargs="+", help="cv run folders (or their results.json)")
    p.add_argument("--out", default="docs/report", help="output folder (default docs/report)")
    p.add_argument("--no-faces", action="store_true",
                   help="skip the per-face analysis (per-group accuracy, Fig. 3), which reruns each fold's model")
    p.add_argument("--threads", type=int, help="torch threads for those predictions")
    p.add_argument("--docs", help="also write the summary table (beside the paper's) as a section of this file")
    p.add_argument("--section", default="Table 1: 5-fold UTK-8 cross-validation")
    p.set_defaults(func=cmd_report)


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks: `bench speed` times the paper's Table 2 networks")
    bench = p.add_subparsers(dest="bench", required=True)
    p = bench.add_parser("speed", help="latency (batch 1) and throughput of paper, AlexNet, VGG-16, Levi's CNN")
    p.add_argument("--archs", default="paper,alexnet,vgg16,levi")
    p.add_argument("--threads", default="1,0", help="comma-separated thread settings; 0 = all cores")
    p.add_argument("--runtimes", default="pytorch,onnxruntime")
    p.add_argument("--batch", type=int, default=32, help="batch size for throughput (default 32)")
    p.add_argument("--min-seconds", type=float, default=2.0, help="time each measurement at least this long")
    p.add_argument("--json", help="write the raw rows here")
    p.add_argument("--docs", help="write the table as a dated section of this Markdown file")
    p.add_argument("--section", default="Table 2: speed of four architectures")
    p.set_defaults(func=cmd_bench_speed)
