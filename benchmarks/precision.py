"""fp32 vs fp16-weights vs int8 (static, calibrated) exports of the same fold model: UTK-8 accuracy on the
fold's held-out faces and speed, in one run.

int8 is calibrated on 512 faces of the fold's *training* part (never its test faces). Speed: ONNX Runtime,
latency per face at batch 1 on 1 thread (median), throughput at batch 128 on all cores.

    python benchmarks/precision.py --run ~/agegender-runs/cv-cls --folds 0,1,2,3,4 --docs docs/BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from agegender.decode import decode_task
from agegender.experiments.bench import time_calls
from agegender.inference.runtime import OnnxModel
from agegender.labels import MISSING, age_group_strict
from agegender.provenance import publish
from agegender.reporting.analysis import held_out_records


def calibration_faces(results: dict, fold: int, n: int, size: int) -> np.ndarray:
    from agegender.data.datasets import read_dataset
    from agegender.data.faceset import build_faceset
    from agegender.data.folds import assign_folds

    info = results["dataset"]
    records, _ = read_dataset(info["dataset"], info["root"], image_root=info.get("image_root"), verbose=False)
    folds = np.array(assign_folds(records, results["k"], seed=results["fold_seed"]))
    train = np.random.default_rng(0).permutation(np.flatnonzero(folds != fold))[:n]
    return np.asarray(build_faceset([records[i] for i in train], size, tag=info["dataset"], progress=False).images)


def accuracy(model: OnnxModel, faces: np.ndarray, records: list) -> dict:
    outs = [model.run(faces[i:i + 256]) for i in range(0, len(faces), 256)]
    age = decode_task("age", np.concatenate([o["age"] for o in outs]))[0]
    gender = decode_task("gender", np.concatenate([o["gender"] for o in outs]))[0]
    strict = np.array([age_group_strict(r.label("age_years")) for r in records])
    ok = strict != MISSING
    true_gender = np.array([r.label("gender") for r in records])
    return {"gender": 100 * float((gender == true_gender).mean()), "age": 100 * float((age[ok] == strict[ok]).mean()),
            "agreement_age": age, "agreement_gender": gender}


class OpenVinoModel:
    """The same ONNX file through the OpenVINO runtime (its CPU plugin reads ONNX, QDQ int8 included);
    same input and outputs as OnnxModel."""

    def __init__(self, path: Path, threads: int | None = None):
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": threads} if threads else {}
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        self.outputs = [(o.get_any_name(), o) for o in self.compiled.outputs]

    def run(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        res = self.compiled(np.ascontiguousarray(faces.transpose(0, 3, 1, 2), dtype=np.float32))
        return {name: res[o] for name, o in self.outputs}


def fold_rows(run: Path, results: dict, fold: int, args) -> tuple[dict, int]:
    """Each export of fold ``fold``'s model, scored on its held-out faces and timed: (rows by export, faces)."""
    from agegender.data.faceset import build_faceset
    from agegender.export import export_model
    from agegender.training.checkpoint import load_checkpoint

    fold_result = next(f for f in results["folds"] if f["fold"] == fold)
    records = held_out_records(results, fold_result)
    model, meta = load_checkpoint(run / f"fold_{fold}" / "checkpoint")
    size = meta["input"]["size"]
    faces = np.asarray(build_faceset(records, size, tag=results["dataset"]["dataset"], progress=False).images)
    calib = calibration_faces(results, fold, args.calibration_size, size)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        variants = {"fp32": ("fp32", True), "fp16": ("fp16", True), "int8": ("int8", True),
                    "int8, full-range weights": ("int8", False)}
        for name, (precision, reduce_range) in variants.items():
            print(f"fold {fold}, {name}: export and score", file=sys.stderr)
            path = Path(tmp) / f"{name.replace(' ', '_').replace(',', '')}.onnx"
            try:
                export_model(model, meta, path, precision, calibration=calib if precision == "int8" else None,
                             int8_reduce_range=reduce_range)
            except ValueError as err:  # export's own agreement check refused the file: that is the result
                print(f"{name}: {err}", file=sys.stderr)
                rows[name] = {"refused": str(err).split(" (")[1].split(";")[0]}
                continue
            runtimes = [("", OnnxModel)]
            if args.openvino and name in ("fp32", "int8"):
                runtimes.append((", OpenVINO runtime", OpenVinoModel))
            for suffix, runtime in runtimes:
                acc = accuracy(runtime(path), faces, records)
                one, many = runtime(path, threads=1), runtime(path, threads=os.cpu_count())
                lat = time_calls(lambda m=one: m.run(faces[:1]), warmup=5, min_runs=50, min_seconds=args.min_seconds)
                thr = time_calls(lambda m=many: m.run(faces[:128]), warmup=2, min_runs=5,
                                 min_seconds=args.min_seconds)
                rows[name + suffix] = {**acc, "bytes": path.stat().st_size,
                                       "latency_ms": 1000 * statistics.median(lat),
                                       "throughput": 128 / statistics.median(thr)}
    return rows, len(records)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="an `agegender cv` run folder")
    ap.add_argument("--fold", "--folds", dest="folds", default="0", help="fold, or folds comma-separated (default 0)")
    ap.add_argument("--calibration-size", type=int, default=512)
    ap.add_argument("--min-seconds", type=float, default=3.0)
    ap.add_argument("--openvino", action="store_true",
                    help="also run the fp32 and int8 files through the OpenVINO runtime (pip install openvino)")
    ap.add_argument("--docs")
    args = ap.parse_args()
    run = Path(args.run)
    results = json.loads((run / "results.json").read_text())
    folds = [int(f) for f in args.folds.split(",")]
    several = len(folds) > 1
    lines = [f"| {'fold | ' if several else ''}export | file MB | gender % | age exact % (strict) | same age group as "
             "fp32 % | latency ms (b1, 1 thread) | speed-up | faces/s (b128, all cores) | speed-up |",
             f"|{'---:|' if several else ''}---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    drops, faces_total = [], 0
    for fold in folds:
        rows, n_faces = fold_rows(run, results, fold, args)
        faces_total += n_faces
        base = rows["fp32"]
        lead = f"| {fold} " if several else ""
        for name, r in rows.items():
            if "refused" in r:
                lines.append(f"{lead}| {name} | not written: export's check refused it (same class as PyTorch on "
                             f"the calibration faces: {r['refused']}; 95 % needed) | | | | | | | |")
                continue
            same = 100 * float((r["agreement_age"] == base["agreement_age"]).mean())
            lines.append(f"{lead}| {name} | {r['bytes'] / 1e6:.1f} | {r['gender']:.2f} | {r['age']:.2f} | {same:.1f} "
                         f"| {r['latency_ms']:.2f} | {base['latency_ms'] / r['latency_ms']:.2f}x | "
                         f"{r['throughput']:.0f} | {r['throughput'] / base['throughput']:.2f}x |")
        drops.append((base["gender"] - rows["int8"]["gender"], base["age"] - rows["int8"]["age"]))
    per_fold = "; ".join(f"fold {f}: {g:+.2f} / {a:+.2f}" for f, (g, a) in zip(folds, drops, strict=True))
    mean = np.mean(drops, axis=0)
    body = (f"Fold{'s' if several else ''} {', '.join(map(str, folds))} of `{run.name}`: {faces_total:,} held-out "
            "faces; int8 calibrated on "
            f"{args.calibration_size} training faces of the fold, 7-bit weights (`reduce_range`, the export's "
            "default) and, for comparison, full-range 8-bit weights, which can saturate in int16 on CPUs "
            f"without VNNI. int8 accuracy drop vs fp32, gender / age points (positive = int8 worse): {per_fold}"
            + (f"; mean {mean[0]:+.2f} / {mean[1]:+.2f}" if several else "") + ".\n\n" + "\n".join(lines))
    publish(args.docs, f"Export precision: fp32, fp16, int8 ({run.name})", body)


if __name__ == "__main__":
    main()
