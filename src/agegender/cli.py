"""Command line: the only place that parses arguments. Heavy imports happen inside each command."""

from __future__ import annotations

import argparse
import os
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
                                     "folder; cv: a finished cv run with the same folds (fold K learns from "
                                     "its fold K)")
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


def _refuse_output_onto_input(out: str, inputs: list[str]) -> None:
    """--out naming one of the files the run reads (given, or inside a given folder) would replace the
    user's photo with records: refused, --force or not."""
    from agegender.inference.predict import IMAGE_SUFFIXES

    target = os.path.realpath(out)
    for item in inputs:
        real = os.path.realpath(item)
        inside = os.path.isdir(real) and target.startswith(real + os.sep) and \
            os.path.splitext(target)[1].lower() in IMAGE_SUFFIXES
        if target == real or inside:
            raise ValueError(f"--out {out} is one of the inputs ({item}); it would be replaced by the "
                             "records: write them elsewhere")


def _count_inputs_into(bar, inputs: list[str], skip: str | None) -> None:
    """Gives the progress bar its total: the inputs are counted on a side thread (a listing only, much
    faster than predicting), so the first predictions do not wait for a large folder's count."""
    import threading

    from agegender.inference.predict import iter_image_files

    def count() -> None:
        try:
            n = sum(1 for _ in iter_image_files(inputs, skip=skip))
        except OSError:
            return  # the prediction reports what cannot be read; the bar just has no total
        bar.total = n
        bar.refresh()

    threading.Thread(target=count, daemon=True).start()


def cmd_predict(args) -> int:
    import itertools

    from agegender.inference.annotate import Annotator
    from agegender.inference.output import printable, table_header, table_row, write_jsonl
    from agegender.inference.predict import Predictor, extra_tasks, iter_image_files

    fmt = args.format or ("table" if sys.stdout.isatty() and not args.out else "jsonl")
    if args.out and Path(args.out).exists() and not args.force:
        raise FileExistsError(f"--out {args.out} exists; pass --force to replace it")
    if args.out:
        _refuse_output_onto_input(args.out, args.paths)
    # the model's threads share the cores with the pool that decodes and detects: 2 workers + 2 ONNX threads
    # on 2 cores ran 0.93x the speed of 2 workers + 1 (benchmarks/folder_overlap.py)
    threads = args.threads if args.threads is not None else max(1, (os.cpu_count() or 1) // 2)
    predictor = Predictor(args.model, detector=args.detector, aligned=args.aligned, threads=threads,
                          batch_size=args.batch_size, mirror=args.mirror, precision=args.precision)
    annotator = Annotator(args.annotate, args.paths, force=args.force) if args.annotate else None
    stream = open(args.out, "x" if not args.force else "w") if args.out else sys.stdout  # noqa: SIM115
    from tqdm import tqdm

    bar = tqdm(desc="images", unit="img", file=sys.stderr, disable=args.no_progress or None, leave=False)
    if not bar.disable:
        _count_inputs_into(bar, args.paths, args.annotate)
    # a terminal that shows the records already shows their errors: print them once, not twice
    echo_errors = not (stream is sys.stdout and sys.stdout.isatty() and sys.stderr.isatty())
    failed = faces = 0
    collected = []
    years = "age_years" in predictor.model.tasks  # the table's age_years column only for a model that has it
    tasks = tuple(extra_tasks(predictor.model.labels))  # e.g. race: a column each
    try:
        if fmt == "table":
            stream.write(table_header(years=years, tasks=tasks) + "\n")
        from agegender.inference.video import is_video

        videos = [p for p in args.paths if is_video(p)]
        images = [p for p in args.paths if not is_video(p)]
        video_results = (r for v in videos for r in _video_records(predictor, v, args, annotator))
        results = itertools.chain(predictor.predict_paths(iter_image_files(images, skip=args.annotate)), video_results)
        for path, group in itertools.groupby(results, key=lambda r: r.path):
            group = list(group)
            bar.update(1)
            for r in group:
                if r.error:
                    failed += 1
                    if echo_errors:
                        tqdm.write(f"error: {printable(r.error)}", file=sys.stderr)
                else:
                    faces += 1
                if fmt == "jsonl":
                    write_jsonl(r, stream)
                elif fmt == "table":
                    stream.write(table_row(r, years=years, tasks=tasks) + "\n")
                else:
                    collected.append(r.to_dict())
            if annotator is not None and not group[0].error and not is_video(path):
                try:
                    annotator.write(path, group)
                except (OSError, ValueError) as err:  # the predictions stand; the run carries on
                    failed += 1
                    tqdm.write(f"error: {err}", file=sys.stderr)
        if fmt == "json":
            import json

            json.dump(collected, stream, indent=1)
            stream.write("\n")
    finally:
        bar.close()
        if stream is not sys.stdout:
            stream.close()
    print(f"{faces} faces; {failed} inputs failed", file=sys.stderr)
    return 1 if failed else 0


def _video_records(predictor, video: str, args, annotator=None):
    """One video's face records; a video that cannot be read gives one error record instead."""
    from agegender.inference.predict import FaceResult
    from agegender.inference.video import predict_video

    annotate = refused = None
    if annotator is not None:
        try:
            annotate = annotator.video_path(video)
        except ValueError as err:
            refused = str(err)
    try:
        yield from predict_video(predictor, video, every=args.every, max_frames=args.max_frames,
                                 annotate=annotate)
    except (FileNotFoundError, ValueError) as err:
        yield FaceResult(path=video, error=str(err))
        return
    if refused:  # the predictions stand; the copy is reported as this input's failure
        yield FaceResult(path=video, error=refused)


def cmd_predict_ray(args) -> int:
    try:
        from agegender.ray_batch import run
    except ImportError as err:
        print(f"agegender predict-ray: error: {err} (pip install \"agegender[ray]\")", file=sys.stderr)
        return 2
    faces, failed = run(args.paths, args.out, address=args.address, num_cpus=args.num_cpus, force=args.force,
                        model=args.model, detector=args.detector, aligned=args.aligned, mirror=args.mirror,
                        precision=args.precision, actors=args.actors, batch_size=args.batch_size)
    print(f"{faces} faces; {failed} inputs failed", file=sys.stderr)
    return 1 if failed else 0


def cmd_serve(args) -> int:
    from agegender.inference.predict import Predictor

    try:
        from agegender.serve import serve
    except ImportError as err:
        print(f"agegender serve: error: {err}", file=sys.stderr)
        return 2
    workers = args.workers or os.cpu_count() or 1
    # each worker thread runs one prediction at a time: one ONNX thread each unless told otherwise
    threads = args.threads if args.threads is not None else (1 if workers > 1 else None)
    predictor = Predictor(args.model, detector=args.detector, aligned=args.aligned, threads=threads,
                          mirror=args.mirror, precision=args.precision)
    serve(predictor, args.host, args.port, max_bytes=int(args.max_mb * 1024 * 1024), quiet=args.quiet,
          workers=workers, max_files=args.max_files, read_timeout=args.read_timeout)
    return 0


def cmd_demo(args) -> int:
    from agegender.inference.predict import EXAMPLE_PHOTO, asset_path

    photo = asset_path(EXAMPLE_PHOTO)
    print(f"agegender demo: the bundled photo {photo} (NASA, public domain)", file=sys.stderr)
    return cmd_predict(argparse.Namespace(paths=[str(photo)], model=args.model, detector="default", aligned=False,
                                          mirror=False, precision=args.precision, threads=None, batch_size=64,
                                          annotate=None, out=None, force=False, every=5, max_frames=None,
                                          format=args.format or "table", no_progress=True))


def cmd_export(args) -> int:
    import json

    calibration = None
    if args.calibration:
        calibration = _calibration_faces(args.calibration, args.calibration_size, _checkpoint_size(args.checkpoint))
    from agegender.export import export_onnx

    out = Path(args.out)
    if out.exists() and not args.force:
        raise FileExistsError(f"{out} exists; pass --force to replace it")
    report = export_onnx(args.checkpoint, out, args.precision, calibration)
    print(json.dumps(report, indent=1))
    worst = max(report["max_abs_diff_random"].values())
    if args.precision == "fp32" and worst >= 1e-3:
        print(f"agegender export: parity check failed (max abs diff {worst:.2e} >= 1e-3)", file=sys.stderr)
        return 1
    return 0


def _checkpoint_size(folder: str) -> int:
    """The input size a checkpoint was trained at (its meta.json), for faces made to feed it."""
    from agegender.training.checkpoint import find_checkpoint, read_meta

    found = find_checkpoint(folder)
    if found is None:
        raise FileNotFoundError(f"{folder}: no checkpoint (model.safetensors + meta.json) found")
    return int(read_meta(found)["input"]["size"])


def _calibration_faces(spec: str, n: int, size: int):
    import numpy as np

    from agegender.data.datasets import parse_extra, read_dataset
    from agegender.data.faceset import build_faceset

    name, root = parse_extra(spec)
    records, _ = read_dataset(name, root, verbose=False)
    # A fixed, spread-out sample (every k-th record in path order) keeps the calibration deterministic.
    records = sorted(records, key=lambda r: r.path)[:: max(1, len(records) // n)][:n]
    return np.asarray(build_faceset(records, size, tag=f"{name}-calib").images)


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


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a usage error otherwise, not a traceback later)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from agegender import __version__

    parser = argparse.ArgumentParser(prog="agegender", description=__doc__)
    parser.add_argument("--version", action="version", version=f"agegender {__version__}")
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

    p = sub.add_parser("report", help="Markdown tables and figures from cv run folders")
    p.add_argument("runs", nargs="+", help="cv run folders (or their results.json)")
    p.add_argument("--out", default="docs/report", help="output folder (default docs/report)")
    p.add_argument("--no-faces", action="store_true",
                   help="skip the per-face analysis (per-group accuracy, Fig. 3), which reruns each fold's model")
    p.add_argument("--threads", type=int, help="torch threads for those predictions")
    p.add_argument("--docs", help="also write the summary table (beside the paper's) as a section of this file")
    p.add_argument("--section", default="Table 1: 5-fold UTK-8 cross-validation")
    p.set_defaults(func=cmd_report)

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

    p = sub.add_parser("predict", help="age group and gender of the faces in images")
    p.add_argument("paths", nargs="+",
                   help="image files or folders (searched recursively), video files, or a camera index (0)")
    p.add_argument("--every", type=_positive_int, default=5, help="video: predict every N-th frame (default 5)")
    p.add_argument("--max-frames", type=_positive_int, help="video: stop after this many sampled frames")
    p.add_argument("--model", default=None, help="bundled 'default' (the paper net) or 'fast' (the lite net), an .onnx "
                                                  "file or a checkpoint folder")
    p.add_argument("--detector", default="default", help="face detector backend, or a YuNet .onnx file path")
    p.add_argument("--precision", choices=("auto", "float", "int8"), default="auto",
                   help="bundled models: auto (int8 where the CPU has VNNI int8 dot products, else float; the "
                        "default), float or int8 (docs/MODEL_CARD.md gives each one's accuracy and speed)")
    p.add_argument("--aligned", action="store_true", help="inputs are face crops already: no detection")
    p.add_argument("--mirror", action="store_true",
                   help="also run each face mirrored and average the two (a little more accurate, twice the "
                        "model's time; see docs/BENCHMARKS.md)")
    p.add_argument("--format", choices=("table", "json", "jsonl"),
                   help="default: table on a terminal, jsonl otherwise")
    p.add_argument("--out", help="write results to this file (refuses to replace one unless --force)")
    p.add_argument("--force", action="store_true",
                   help="allow --out, and the copies --annotate writes, to replace existing files")
    p.add_argument("--annotate", metavar="DIR", help="write a copy of each image with boxes and labels here")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--threads", type=int, help="ONNX Runtime threads (default: half the cores, at least 1: the "
                                                "other half decode and detect the next files; docs/BENCHMARKS.md)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("predict-ray", help="batch prediction scaled out on Ray Data (needs the [ray] extra; "
                                           "see agegender.ray_batch)")
    p.add_argument("paths", nargs="+", help="image files or folders: local paths or s3:// gs:// ... URIs")
    p.add_argument("--out", required=True, help="records.jsonl (one file, input order) or a folder / URI of "
                                                "Parquet files")
    p.add_argument("--address", help="a running Ray cluster (e.g. auto, or ray://HEAD:10001); default: start a "
                                     "local instance")
    p.add_argument("--num-cpus", type=_positive_int, help="CPUs of the local instance (default: all)")
    p.add_argument("--actors", type=_positive_int, help="predictor actors (default: one per CPU of the cluster)")
    p.add_argument("--model", default=None, help="as for predict")
    p.add_argument("--detector", default="default", help="as for predict")
    p.add_argument("--aligned", action="store_true", help="inputs are face crops already: no detection")
    p.add_argument("--mirror", action="store_true", help="as for predict")
    p.add_argument("--precision", choices=("auto", "float", "int8"), default="auto", help="as for predict")
    p.add_argument("--batch-size", type=_positive_int, default=16, help="files per map_batches call")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_predict_ray)

    p = sub.add_parser("serve", help="HTTP service and web page: POST an image to /predict, open / in a browser "
                                     "(needs the [serve] extra; see agegender.serve)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only; "
                                                        "0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--model", default=None, help="as for predict")
    p.add_argument("--detector", default="default", help="as for predict")
    p.add_argument("--aligned", action="store_true", help="uploads are face crops already: no detection")
    p.add_argument("--mirror", action="store_true", help="as for predict")
    p.add_argument("--precision", choices=("auto", "float", "int8"), default="auto", help="as for predict")
    p.add_argument("--workers", type=_positive_int, help="predictions run at once, each on its own thread with "
                                                        "its own detector (default: one per core)")
    p.add_argument("--threads", type=_positive_int, help="ONNX Runtime threads per prediction (default: 1 when "
                                                         "several workers, else all cores)")
    p.add_argument("--max-mb", type=float, default=20, help="largest request body accepted, in MB (default 20)")
    p.add_argument("--max-files", type=_positive_int, default=64, help="most files in one request (default 64)")
    p.add_argument("--read-timeout", type=float, default=30, help="seconds a request body may take to arrive "
                                                                  "(default 30; 408 after)")
    p.add_argument("--quiet", action="store_true", help="no request log on stderr")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="predict on the bundled public-domain photo")
    p.add_argument("--model", default=None)
    p.add_argument("--precision", choices=("auto", "float", "int8"), default="auto", help="as for predict")
    p.add_argument("--format", choices=("table", "json", "jsonl"))
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("export", help="export a checkpoint to ONNX and check it against PyTorch")
    p.add_argument("checkpoint", help="checkpoint folder (RUN/checkpoint)")
    p.add_argument("--out", required=True, help="output .onnx file")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32")
    p.add_argument("--calibration", metavar="DATASET:PATH", help="faces for int8 calibration and parity")
    p.add_argument("--calibration-size", type=int, default=512)
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_export)
    return parser


def _without_only_folds(argv: list[str]) -> list[str]:
    """The command as recorded: a run's results.json (and the report) name the command for the whole run,
    so `--only-folds`, which only says which process trains which folds, is left out."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--only-folds":
            skip = True
        elif not a.startswith("--only-folds="):
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest:
        # `predict a.jpg --format jsonl b.jpg`: paths after an option are paths too, in the order given
        if getattr(args, "paths", None) is not None and not any(a.startswith("-") for a in rest):
            args.paths += rest
        else:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.command_line = "agegender " + shlex.join(_without_only_folds(argv))  # recorded in results and docs
    from agegender.console import show_messages

    show_messages()
    try:
        return args.func(args)
    except BrokenPipeError:
        # the reader went away (`agegender predict ... | head`): nothing left to say to it, and no message
        # for the user, who asked for only the first lines; stdout to /dev/null so the exit flush is quiet
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (FileNotFoundError, FileExistsError, ValueError, OSError) as err:
        print(f"agegender {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
