"""Test-time mirroring on or off, for the bundled models in one run: what it costs and what it changes.

    python benchmarks/mirror_default.py --data ../shared/data --docs docs/BENCHMARKS.md

Cost, on one thread (median of ``--runs`` calls after a warm-up):
- one 640x480 JPEG with one face (composed as in photo_e2e.py) through ``Predictor.predict``: decode,
  detect, crop and the model, the whole user's path;
- 64 aligned faces through ``Predictor.predict_faces`` (faces/s).
Mirroring runs both views of every face in one batch (``Predictor._classify``).

Predictions, mirror off against on, on faces chosen without looking at fairface_ood:
- gender on the held-out CelebA people of benchmarks/celeba_holdout.py (people no bundled model trained
  on), paired per crop with a 95 % interval by bootstrap over people;
- UTKFace faces every bundled model trained on (a fixed seed-0 sample): gender, strict age group and
  MAE in years: fit, not accuracy, but paired, so it shows which way mirroring moves each figure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from celeba_holdout import split  # noqa: E402
from detectors import load_crops  # noqa: E402
from holdout_eval import bootstrap  # noqa: E402
from photo_e2e import compose  # noqa: E402

from agegender.data.datasets import read_dataset  # noqa: E402
from agegender.experiments.bench import time_calls  # noqa: E402
from agegender.inference.predict import Predictor  # noqa: E402
from agegender.labels import GENDERS, MISSING, age_group_strict  # noqa: E402
from agegender.preprocess import load_image, resize_face, square_face  # noqa: E402
from agegender.provenance import publish  # noqa: E402


def median_ms(fn, runs: int) -> float:
    return 1000 * statistics.median(time_calls(fn, warmup=2, min_runs=runs, min_seconds=0.0, max_runs=runs))


def celeba_val(data: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """celeba_holdout.py's val.csv, built in memory: crops, gender (1 = female), person index."""
    rows = split(data)["val"]
    people = {p: i for i, p in enumerate(sorted({r["subject_id"] for r in rows}))}
    return ([r["path"] for r in rows], np.array([r["gender"] == "female" for r in rows], int),
            np.array([people[r["subject_id"]] for r in rows]))


def aligned(paths: list[str], size: int) -> np.ndarray:
    """What ``predict --aligned`` feeds the model: each crop padded square and resized."""
    return np.stack([resize_face(square_face(load_image(p)), size) for p in paths])


def predict(model: str, precision: str, faces: np.ndarray, mirror: bool) -> list:
    pred = Predictor(model, aligned=True, threads=1, precision=precision, mirror=mirror)
    return [r for i in range(0, len(faces), 256) for r in pred.predict_faces(faces[i:i + 256])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--models", default="default:float,default:int8,fast",
                    help="comma-separated bundled NAME:PRECISION")
    ap.add_argument("--utk-faces", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--docs")
    ap.add_argument("--section", default="Test-time mirroring by default")
    args = ap.parse_args()
    data = Path(args.data)
    models = [(m.partition(":")[0], m.partition(":")[2] or "float") for m in args.models.split(",")]

    cost = ["| model | photo ms, mirror off | photo ms, mirror on | x | 64 faces: faces/s off | faces/s on | x |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.jpg"
        Image.fromarray(compose(load_crops(data), 1, seed=1)).save(photo, quality=90)
        for name, precision in models:
            plain, both = (Predictor(name, threads=1, precision=precision, mirror=m) for m in (False, True))
            assert len(plain.predict(photo)) == 1
            faces = np.stack([plain._file_faces(str(photo))[0][0]] * 64)
            # call by call in turn, so that a change in the machine's load falls on both alike
            for p in (plain, both):
                p.predict(photo)
            off, on = [], []
            for _ in range(args.runs):
                for p, times in ((plain, off), (both, on)):
                    t = time.perf_counter()
                    p.predict(photo)
                    times.append(1000 * (time.perf_counter() - t))
            off_b = 64e3 / median_ms(lambda p=plain, f=faces: p.predict_faces(f), max(5, args.runs // 4))
            on_b = 64e3 / median_ms(lambda p=both, f=faces: p.predict_faces(f), max(5, args.runs // 4))
            o, n = statistics.median(off), statistics.median(on)
            cost.append(f"| {name} ({precision}) | {o:.2f} | {n:.2f} | {n / o:.2f} | {off_b:.0f} | {on_b:.0f} | "
                        f"{on_b / off_b:.2f} |")
            print(cost[-1], flush=True)

    paths, truth, people = celeba_val(data)
    records, _ = read_dataset("utkface", str(data / "utkface"), verbose=False)
    records = list(np.random.default_rng(0).permutation(np.array(records, dtype=object))[:args.utk_faces])
    utk_gender = np.array([int(r.labels["gender"]) for r in records])
    utk_age = np.array([r.labels["age_years"] for r in records], float)
    strict = np.array([age_group_strict(a) for a in utk_age])
    inside = strict != MISSING
    acc = ["| model | held-out CelebA gender %, off | on | on - off, points (95 % interval) | UTKFace (trained on) "
           "gender % off / on | strict age group % off / on | MAE years off / on |",
           "|---|---:|---:|---|---|---|---|"]
    size = Predictor(models[0][0], aligned=True, threads=1, precision=models[0][1]).model.size
    celeba_faces, utk_faces = aligned(paths, size), aligned([r.path for r in records], size)
    for name, precision in models:
        row = [f"{name} ({precision})"]
        hits = {}
        for mirror in (False, True):
            got = predict(name, precision, celeba_faces, mirror)
            hits[mirror] = np.array([GENDERS.index(g.gender) for g in got]) == truth
        d = hits[True].astype(float) - hits[False]
        lo, hi = bootstrap(d, people)
        row += [f"{100 * hits[False].mean():.2f}", f"{100 * hits[True].mean():.2f}",
                f"{100 * d.mean():+.2f} ({lo:+.2f} to {hi:+.2f})"]
        fit = {}
        for mirror in (False, True):
            got = predict(name, precision, utk_faces, mirror)
            g = 100 * np.mean(np.array([GENDERS.index(r.gender) for r in got]) == utk_gender)
            a = 100 * np.mean(np.array([r.age_group_index for r in got])[inside] == strict[inside])
            mae = np.mean(np.abs(np.array([r.age_years for r in got], float) - utk_age))
            fit[mirror] = (g, a, mae)
        row += [f"{fit[False][0]:.2f} / {fit[True][0]:.2f}", f"{fit[False][1]:.2f} / {fit[True][1]:.2f}",
                f"{fit[False][2]:.3f} / {fit[True][2]:.3f}"]
        acc.append("| " + " | ".join(row) + " |")
        print(acc[-1], flush=True)

    years = years_merge_check(utk_faces, utk_age)
    body = "\n".join([
        "Cost: one 640x480 JPEG with one face through `Predictor.predict` (decode, detect, crop, model: the "
        f"user's path), 1 thread, median of {args.runs} calls each after a warm-up, off and on calls alternating; "
        "and 64 aligned faces through `predict_faces`. Mirroring runs the face and its mirror image in one batch.", "",
        *cost, "",
        f"Predictions: gender on {len(paths):,} crops of {people.max() + 1} held-out CelebA people "
        "(benchmarks/celeba_holdout.py's val.csv: people no bundled model trained on), paired per crop, 95 % "
        "interval by bootstrap over people; and {0:,} UTKFace faces every bundled model trained on (fixed seed-0 "
        "sample; strict age on the {1:,} whose age lies inside a group): fit, not accuracy, paired.".format(
            len(records), int(inside.sum())), "",
        *acc, "",
        "How the two views' years are merged, `default` float file, the same UTKFace faces (MAE in years): "
        "`predict` averages the two views' `age_years` (each the median of that view's year distribution); the "
        "cross-validated figures in docs/RESULTS.md took the median of the two views' averaged distributions "
        "(read here from the graph's year probabilities).", "",
        "| one view | mean of the two views' medians (`predict`) | median of the averaged distributions |",
        "|---:|---:|---:|", f"| {years[0]:.3f} | {years[1]:.3f} | {years[2]:.3f} |"])
    publish(args.docs, args.section, body)


def years_merge_check(faces: np.ndarray, ages: np.ndarray) -> tuple[float, float, float]:
    """MAE of: one view's age_years; the mean of both views' (predict's merge); the median of both views'
    averaged year distributions (``heads.years_median``, as benchmarks/years_point_estimate.py scores it)."""
    import onnx
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper

    from agegender.inference.predict import bundled_file
    from agegender.models.heads import years_median

    model = onnx.load(str(bundled_file("default", "float")))
    producers = {o: n for n in model.graph.node for o in n.output}
    node = producers["age_years"]
    while node.op_type != "CumSum":  # back from the median to the year probabilities it is taken of
        node = producers[node.input[0]]
    probs = node.input[0]
    model.graph.output.append(helper.make_tensor_value_info(probs, TensorProto.FLOAT, ["batch", 101]))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    def run(x):
        return session.run(["age_years", probs], {"image": np.ascontiguousarray(x.transpose(0, 3, 1, 2), np.float32)})

    y1, p1 = run(faces)
    y2, p2 = run(np.ascontiguousarray(faces[:, :, ::-1]))
    both = years_median(torch.from_numpy((p1 / p1.sum(1, keepdims=True) + p2 / p2.sum(1, keepdims=True)) / 2))
    return (float(np.mean(np.abs(y1 - ages))), float(np.mean(np.abs((y1 + y2) / 2 - ages))),
            float(np.mean(np.abs(both.numpy() - ages))))


if __name__ == "__main__":
    main()
