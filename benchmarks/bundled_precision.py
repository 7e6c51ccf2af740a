"""The bundled files side by side, float and int8: accuracy, agreement and speed, in one run.

    python benchmarks/bundled_precision.py --holdout ~/agegender-runs/celeba-holdout/val.csv \
        --utk ../shared/data/utkface --docs docs/BENCHMARKS.md

For every bundled model with an int8 file (NAME.int8.onnx beside NAME.onnx): gender accuracy on held-out
CelebA people (benchmarks/celeba_holdout.py's val.csv: people the models never trained on), agreement of
the int8 file with the float one on UTKFace faces (the models trained on them, so agreement, not
accuracy), and latency at batch 1 / throughput at batch 64 on one ONNX Runtime thread. ``--precision
auto`` picks int8 only on a CPU with VNNI int8 dot products (the machine line says whether this one has
them).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from holdout_eval import read  # noqa: E402

from agegender.inference.predict import BUNDLED_MODELS, Predictor, bundled_file  # noqa: E402
from agegender.inference.runtime import OnnxModel, int8_is_faster  # noqa: E402
from agegender.provenance import publish  # noqa: E402


def outputs(predictor: Predictor, paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(gender index, age group index) per file, in order."""
    by_path = {}
    for r in predictor.predict_paths(paths, workers=1):
        if r.error:
            raise RuntimeError(r.error)
        by_path[r.path] = (predictor.model.labels["gender"].index(r.gender), r.age_group_index)
    got = np.array([by_path[p] for p in paths])
    return got[:, 0], got[:, 1]


def speed(path: Path, batch: int, seconds: float = 3.0) -> float:
    """Median ms per face."""
    model = OnnxModel(path, threads=1)
    x = np.random.default_rng(0).integers(0, 256, (batch, model.size, model.size, 3), dtype=np.uint8)
    model.run(x)
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        t = time.perf_counter()
        model.run(x)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times) / batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--holdout", required=True, help="val.csv of benchmarks/celeba_holdout.py")
    ap.add_argument("--utk", default="../shared/data/utkface")
    ap.add_argument("--utk-faces", type=int, default=2000)
    ap.add_argument("--docs")
    ap.add_argument("--section", default="Bundled files: float and int8", help="section of --docs to write")
    args = ap.parse_args()
    paths, truth, _ = read(args.holdout)
    from agegender.data.datasets import read_dataset

    records, _ = read_dataset("utkface", args.utk, verbose=False)
    utk = [r.path for r in np.random.default_rng(0).permutation(np.array(records, dtype=object))[:args.utk_faces]]
    rows = []
    for name in BUNDLED_MODELS:
        files = [p for p in ("float", "int8") if bundled_file(name, p).is_file()]
        if "int8" not in files:
            continue
        ref = None
        for precision in files:
            path = bundled_file(name, precision)
            pred = Predictor(name, aligned=True, threads=1, precision=precision)
            gender, _ = outputs(pred, paths)
            ug, ua = outputs(pred, utk)
            ref = ref or (ug, ua)
            rows.append(f"| {name} | {path.name} ({pred.model.precision}, {path.stat().st_size / 1e6:.1f} MB) | "
                        f"{100 * (gender == truth).mean():.2f} | {100 * (ug == ref[0]).mean():.2f} | "
                        f"{100 * (ua == ref[1]).mean():.2f} | {speed(path, 1):.2f} | {1000 / speed(path, 64):,.0f} |")
            print(rows[-1], flush=True)
    body = "\n".join([
        f"Held-out CelebA people: {len(paths):,} crops (`{Path(args.holdout).name}`); agreement with the float "
        f"file on {len(utk):,} UTKFace faces; one ONNX Runtime thread. This CPU "
        f"{'has' if int8_is_faster() else 'lacks'} the int8 instructions (VNNI or AVX2) under which the int8 file "
        f"is faster: `--precision auto` picks {'int8' if int8_is_faster() else 'the float file'} here.", "",
        "| model | file | gender % on held-out CelebA people | same gender as float, UTKFace % | same age group "
        "as float, UTKFace % | ms / face, batch 1 | faces/s, batch 64 |",
        "|---|---|---:|---:|---:|---:|---:|", *rows])
    publish(args.docs, args.section, body)


if __name__ == "__main__":
    main()
