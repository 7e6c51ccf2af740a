"""Gender accuracy on held-out CelebA people (benchmarks/celeba_holdout.py's val.csv), models side by side.

    python benchmarks/holdout_eval.py --csv ~/agegender-runs/celeba-holdout/val.csv \
        --model default --model ~/agegender-runs/default-wft/checkpoint --docs docs/RESULTS.md

This is the validation set for fine-tuning the bundled default (it trained on every celeba_gender person;
these are people only in celeba_gender_more, never trained on by either model). Each crop goes through
``Predictor(aligned=True)`` (padded square, resized: what ``predict --aligned`` does), averaged with its
mirror image as ``predict`` does by default (``--no-mirror``: each crop once; tables before 2026-12-06 were
made without mirroring). A 95 % interval by bootstrap over people is given, and the
paired difference of each model against the first one.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from agegender.inference.predict import Predictor
from agegender.metrics import expected_calibration_error
from agegender.provenance import publish


def read(csv_path: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    with open(Path(csv_path).expanduser(), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    people = {p: i for i, p in enumerate(sorted({r["subject_id"] for r in rows}))}
    return ([r["path"] for r in rows], np.array([0 if r["gender"] == "male" else 1 for r in rows]),
            np.array([people[r["subject_id"]] for r in rows]))


def correct(model: str, paths: list[str], truth: np.ndarray, threads: int, mirror: bool = True) -> np.ndarray:
    predictor = Predictor(model, aligned=True, threads=threads, mirror=mirror)
    names = predictor.model.labels["gender"]
    got, probs = {}, {}
    for r in predictor.predict_paths(paths, workers=1):
        if r.error:
            raise RuntimeError(r.error)
        got[r.path] = names.index(r.gender)
        p = np.full(len(names), (1 - r.gender_confidence) / (len(names) - 1))
        p[got[r.path]] = r.gender_confidence
        probs[r.path] = p
    return np.array([got[p] for p in paths]) == truth, np.stack([probs[p] for p in paths])


def bootstrap(hits: np.ndarray, people: np.ndarray, reps: int = 2000) -> tuple[float, float]:
    """95 % interval of the mean of ``hits`` resampling people (all of a person's crops together)."""
    rng = np.random.default_rng(0)
    n = people.max() + 1
    sums, counts = np.bincount(people, np.asarray(hits, float), n), np.bincount(people, minlength=n)
    draws = rng.integers(0, n, (reps, n))
    means = sums[draws].sum(1) / counts[draws].sum(1)
    return tuple(100 * np.percentile(means, [2.5, 97.5]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", required=True)
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=True,
                    help="test-time mirroring, as predict (default on)")
    ap.add_argument("--docs")
    ap.add_argument("--section", default="Fine-tuning the default: held-out CelebA people")
    args = ap.parse_args()
    paths, truth, people = read(args.csv)
    rows, base = [], None
    for model in args.model:
        hits, probs = correct(model, paths, truth, args.threads, args.mirror)
        ece = expected_calibration_error(probs, truth)
        lo, hi = bootstrap(hits, people)
        diff = "-"
        if base is None:
            base = hits.astype(float)
        else:
            d = hits - base  # -1, 0, +1 per crop, paired
            dlo, dhi = bootstrap(d, people)
            diff = f"{100 * d.mean():+.2f} ({dlo:+.2f} to {dhi:+.2f})"
        male, female = truth == 0, truth == 1
        rows.append(f"| {model} | {100 * hits.mean():.2f} ({lo:.2f}-{hi:.2f}) | {100 * hits[male].mean():.2f} | "
                    f"{100 * hits[female].mean():.2f} | {ece:.2f} | {diff} |")
        print(rows[-1], flush=True)
    body = "\n".join([
        f"{len(paths):,} crops of {people.max() + 1} CelebA people in neither model's training data "
        f"(`{Path(args.csv).name}` from benchmarks/celeba_holdout.py), through `Predictor(aligned=True)` "
        f"({'with' if args.mirror else 'without'} test-time mirroring); "
        "95 % intervals by bootstrap over people; ECE: expected calibration error of the gender probability "
        "(15 bins); the last column is the paired difference against the first row.", "",
        "| model | gender % (95 % interval) | men % | women % | ECE % | vs first row, points |",
        "|---|---|---:|---:|---:|---|", *rows])
    publish(args.docs, args.section, body)


if __name__ == "__main__":
    main()
