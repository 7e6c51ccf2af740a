"""`predict FOLDER` with detection: files/s and how busy the cores are, one worker against several, in one run.

    python benchmarks/folder_overlap.py --data ../shared/data/fairface_ood/images --docs docs/BENCHMARKS.md

``Predictor.predict_paths`` decodes and detects in a pool of worker threads (one detector instance each)
while the calling thread classifies the previous window, so decode, detect and classify overlap. Each row
runs the same photos through it with a given pool size and ONNX Runtime thread count; CPU use is the
process's CPU seconds over wall seconds (2.0 = both cores busy all the time on a 2-core machine). The first
pass over the photos is not timed (file cache warm for every row).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from agegender.inference.predict import Predictor, iter_image_files
from agegender.provenance import publish


def run(paths: list[str], model: str, workers: int, threads: int | None, detector: str,
        mirror: bool = True) -> tuple[float, float, int]:
    predictor = Predictor(model, detector=detector, threads=threads, mirror=mirror)
    t0, c0 = time.perf_counter(), time.process_time()
    faces = sum(1 for r in predictor.predict_paths(paths, workers=workers) if not r.error)
    wall = time.perf_counter() - t0
    return len(paths) / wall, (time.process_time() - c0) / wall, faces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/fairface_ood/images")
    ap.add_argument("--model", default="default")
    ap.add_argument("--detector", default="default")
    ap.add_argument("--docs")
    args = ap.parse_args()
    paths = list(iter_image_files([args.data]))
    for p in paths:
        Path(p).read_bytes()
    cores = os.cpu_count() or 1
    default = (min(4, cores), max(1, cores // 2))
    configs = [(1, 1, True, "one worker, one model thread (nothing overlapped but the pool's read-ahead)"),
               (*default, True, f"{default[0]} workers, {default[1]} model thread(s) (`agegender predict`'s default)"),
               (cores, cores, True, f"{cores} workers, {cores} model threads (the default before 2026-12-03)"),
               (1, 1, False, "one worker, one model thread, `--no-mirror`"),
               (*default, False, f"{default[0]} workers, {default[1]} model thread(s), `--no-mirror`")]
    rows, base = [], {}
    for workers, threads, mirror, label in configs:
        rate, cpu, faces = run(paths, args.model, workers, threads, args.detector, mirror)
        base.setdefault(mirror, rate)  # against one worker with the same mirroring
        rows.append(f"| {label} | {workers} | {threads} | {rate:.1f} | {rate / base[mirror]:.2f}x | {cpu:.2f} | "
                    f"{faces} |")
        print(rows[-1], flush=True)
    body = "\n".join([
        f"{len(paths)} photos from `{args.data}` through `Predictor.predict_paths` (model {args.model}, detector "
        f"{args.detector}; test-time mirroring, `predict`'s default, except where the row says `--no-mirror`) "
        f"on this {cores}-core machine; CPU use = process CPU seconds / wall seconds.", "",
        "| setting | pool workers | ONNX Runtime threads | files/s | vs one worker | CPU use (cores) | faces |",
        "|---|---:|---:|---:|---:|---:|---:|", *rows])
    publish(args.docs, "predict FOLDER: overlap of decode, detect and classify", body)


if __name__ == "__main__":
    main()
