"""How well models fit UTKFace faces they trained on: gender and strict age group (and MAE for a years
model) on a fixed sample, models side by side. A check that a fine-tune broke nothing on its own training
faces, not an accuracy (docs/RESULTS.md, "Fine-tuning the default for real photos").

    python benchmarks/seen_fit.py --model src/agegender/assets/default.onnx --model ~/agegender-runs/default-wft.onnx \
        --docs docs/RESULTS.md
"""

from __future__ import annotations

import argparse

import numpy as np

from agegender.data.datasets import read_dataset
from agegender.inference.predict import Predictor
from agegender.labels import GENDERS, MISSING, age_group_strict
from agegender.provenance import publish


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--utk", default="../shared/data/utkface")
    ap.add_argument("--faces", type=int, default=3000)
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=True,
                    help="test-time mirroring, as predict (default on; tables before 2026-12-06 were made without)")
    ap.add_argument("--docs")
    ap.add_argument("--section", default="Fine-tuning the default: fit on its own UTKFace faces")
    args = ap.parse_args()
    records, _ = read_dataset("utkface", args.utk, verbose=False)
    records = list(np.random.default_rng(0).permutation(np.array(records, dtype=object))[:args.faces])
    rows = []
    for model in args.model:
        predictor = Predictor(model, aligned=True, threads=args.threads, mirror=args.mirror)
        out = {r.path: r for r in predictor.predict_paths([r.path for r in records])}
        got = [out[r.path] for r in records]
        gender = np.mean([g.gender == GENDERS[int(r.labels["gender"])] for g, r in zip(got, records)])
        strict = [(g.age_group_index, age_group_strict(r.labels["age_years"])) for g, r in zip(got, records)]
        age = np.mean([p == s for p, s in strict if s != MISSING])
        years = [abs(g.age_years - r.labels["age_years"]) for g, r in zip(got, records) if g.age_years is not None]
        mae = f"{np.mean(years):.2f}" if years else "-"
        rows.append(f"| {model} | {100 * gender:.2f} | {100 * age:.2f} | {mae} |")
        print(rows[-1], flush=True)
    body = "\n".join([
        f"{len(records):,} UTKFace faces (a fixed seed-0 sample) that every model here trained on, through "
        f"`Predictor(aligned=True)` ({'with' if args.mirror else 'without'} test-time mirroring): fit, not "
        "accuracy.", "",
        "| model | gender % | strict age group % | MAE (years) |", "|---|---:|---:|---:|", *rows])
    publish(args.docs, args.section, body)


if __name__ == "__main__":
    main()
