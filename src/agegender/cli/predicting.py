"""Commands that predict: predict, predict-ray, serve, demo (torch-free unless given a checkpoint)."""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

from agegender.cli.common import _positive_int


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
    from agegender.inference.annotate import Annotator
    from agegender.inference.output import table_header, table_tasks
    from agegender.inference.predict import Predictor, iter_image_files

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
    from agegender.console import progress_bar

    bar = progress_bar(None, "images", enabled=False if args.no_progress else None, mininterval=0.1, unit="img")
    if not bar.disable:
        _count_inputs_into(bar, args.paths, args.annotate)
    # a terminal that shows the records already shows their errors: print them once, not twice
    echo_errors = not (stream is sys.stdout and sys.stdout.isatty() and sys.stderr.isatty())
    tasks = table_tasks(predictor.model.tasks)  # age, gender and the model's further tasks (age_years, race...)
    try:
        if fmt == "table":
            stream.write(table_header(tasks=tasks) + "\n")
        from agegender.inference.video import is_video

        videos = [p for p in args.paths if is_video(p)]
        images = [p for p in args.paths if not is_video(p)]
        video_results = (r for v in videos for r in _video_records(predictor, v, args, annotator))
        results = itertools.chain(predictor.predict_paths(iter_image_files(images, skip=args.annotate)), video_results)
        faces, failed = _write_records(results, fmt, stream, tasks, bar, echo_errors, annotator)
    finally:
        bar.close()
        if stream is not sys.stdout:
            stream.close()
    print(f"{faces} faces; {failed} inputs failed", file=sys.stderr)
    return 1 if failed else 0


def _write_records(results, fmt: str, stream, tasks, bar, echo_errors: bool, annotator) -> tuple[int, int]:
    """Write every record in ``fmt``, annotate each photo's faces, count (faces, failed inputs); an
    annotation that cannot be written is an error line and a failure, and the run carries on."""
    from agegender.console import write_line
    from agegender.inference.output import printable, table_row, write_jsonl
    from agegender.inference.video import is_video

    failed = faces = 0
    collected = []
    for path, group in itertools.groupby(results, key=lambda r: r.path):
        group = list(group)
        bar.update(1)
        for r in group:
            if r.error:
                failed += 1
                if echo_errors:
                    write_line(f"error: {printable(r.error)}")
            else:
                faces += 1
            if fmt == "jsonl":
                write_jsonl(r, stream)
            elif fmt == "table":
                stream.write(table_row(r, tasks=tasks) + "\n")
            else:
                collected.append(r.to_dict())
        if annotator is not None and not group[0].error and not is_video(path):
            try:
                annotator.write(path, group)
            except (OSError, ValueError) as err:  # the predictions stand; the run carries on
                failed += 1
                write_line(f"error: {err}")
    if fmt == "json":
        import json

        json.dump(collected, stream, indent=1)
        stream.write("\n")
    return faces, failed


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
                        precision=args.precision, actors=args.actors, batch_size=args.batch_size,
                        readers=args.readers)
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
                                          mirror=True, precision=args.precision, threads=None, batch_size=64,
                                          annotate=None, out=None, force=False, every=5, max_frames=None,
                                          format=args.format or "table", no_progress=True))


def add_commands(sub) -> None:
    """Add this group's subcommands to the top-level parser's ``sub``."""
    for add in (_add_predict, _add_predict_ray, _add_serve, _add_demo):
        add(sub)


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="age group and gender of the faces in images")
    p.add_argument("paths", nargs="+",
                   help="image files or folders (searched recursively), video files, or a camera index (0)")
    p.add_argument("--every", type=_positive_int, default=5, help="video: predict every N-th frame (default 5)")
    p.add_argument("--max-frames", type=_positive_int, help="video: stop after this many sampled frames")
    p.add_argument("--model", default=None, help="bundled 'default' (the paper net) or 'fast' (the small lite-dense "
                                                  "net), an .onnx file or a checkpoint folder")
    p.add_argument("--detector", default="default", help="face detector backend, or a YuNet .onnx file path")
    p.add_argument("--precision", choices=("auto", "float", "int8"), default="auto",
                   help="bundled models: auto (int8 where the CPU has VNNI int8 dot products, else float; the "
                        "default), float or int8 (docs/MODEL_CARD.md gives each one's accuracy and speed)")
    p.add_argument("--aligned", action="store_true", help="inputs are face crops already: no detection")
    p.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=True,
                   help="run each face also mirrored, in the same batch, and average the two (the default: lower "
                        "age-in-years error on new faces for about 1.2x a photo's time; --no-mirror runs each face "
                        "once, for batch jobs where speed comes first; docs/BENCHMARKS.md, 'Test-time mirroring "
                        "by default')")
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


def _add_predict_ray(sub) -> None:
    p = sub.add_parser("predict-ray", help="batch prediction scaled out on Ray Data (needs the [ray] extra; "
                                           "see agegender.ray_batch)")
    p.add_argument("paths", nargs="+", help="image files or folders: local paths or s3:// gs:// ... URIs")
    p.add_argument("--out", required=True, help="records.jsonl (one file, input order) or a folder / URI of "
                                                "Parquet files")
    p.add_argument("--address", help="a running Ray cluster (e.g. auto, or ray://HEAD:10001); default: start a "
                                     "local instance")
    p.add_argument("--num-cpus", type=_positive_int, help="CPUs of the local instance (default: all)")
    p.add_argument("--actors", type=_positive_int, help="predictor actors (default: one per CPU of the cluster)")
    p.add_argument("--readers", type=_positive_int, help="concurrent file-read tasks (default: one per 8 actors)")
    p.add_argument("--model", default=None, help="as for predict")
    p.add_argument("--detector", default="default", help="as for predict")
    p.add_argument("--aligned", action="store_true", help="inputs are face crops already: no detection")
    p.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=True, help="as for predict")
    p.add_argument("--precision", choices=("auto", "float", "int8"), default="auto", help="as for predict")
    p.add_argument("--batch-size", type=_positive_int, default=16, help="files per map_batches call")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_predict_ray)


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="HTTP service and web page: POST an image to /predict, open / in a browser "
                                     "(needs the [serve] extra; see agegender.serve)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only; "
                                                        "0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--model", default=None, help="as for predict")
    p.add_argument("--detector", default="default", help="as for predict")
    p.add_argument("--aligned", action="store_true", help="uploads are face crops already: no detection")
    p.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=True, help="as for predict")
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


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="predict on the bundled public-domain photo")
    p.add_argument("--model", default=None)
    p.add_argument("--precision", choices=("auto", "float", "int8"), default="auto", help="as for predict")
    p.add_argument("--format", choices=("table", "json", "jsonl"))
    p.set_defaults(func=cmd_demo)
