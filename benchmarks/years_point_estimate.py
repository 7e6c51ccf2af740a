"""Which point estimate of the years distribution gives the lowest MAE: its mean, its median, or either
averaged over the face and its mirror image? (``ModelConfig.years_estimate`` picks mean or median.)

The years layer (`agegender fit-years`) gives a distribution over 0-100 years, and its loss has an L1
term on the distribution's expected value. The median minimises the expected absolute error under the
distribution itself, so it may score a lower MAE. The choice is made on validation faces inside each fold
model's training faces (the layer fitted on 4/5 of them, scored on the other 1/5, split by the fixed inner
folds; the trunk trained on all of them, so that MAE is optimistic, but the layer did not); the test fold,
which neither the trunk nor the layer saw, is scored afterwards with the layer fitted on all the training
faces, for every estimate.

    python benchmarks/years_point_estimate.py --data ../shared/data/utkface RUN --folds 1,2,3 \\
        [--docs docs/RESULTS.md]

RUN: an `agegender cv` run (no --tune-val) of a model with an 8-group softmax age head.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pilot_eval import fold_split  # noqa: E402

from agegender.config import YearsFit  # noqa: E402
from agegender.data.datasets import read_dataset  # noqa: E402
from agegender.data.faceset import build_faceset  # noqa: E402
from agegender.data.folds import assign_folds  # noqa: E402
from agegender.models.heads import YEARS_DIST, years_median  # noqa: E402
from agegender.provenance import publish  # noqa: E402
from agegender.rundir import RunDir  # noqa: E402
from agegender.training.years_head import (  # noqa: E402
    BANDS,
    face_features,
    fit_layer,
    head_outputs,
    mae_by_band,
    years_model,
)

ESTIMATES = ("mean", "median", "mean, mirror", "median, mirror")


@torch.no_grad()
def year_probs(model, feats: torch.Tensor) -> np.ndarray:
    """(N, bins) probabilities over the years (the head in training mode returns them; it has no dropout)."""
    return head_outputs(model, feats, training=True)[YEARS_DIST].exp().double().numpy()


def median(p: np.ndarray) -> np.ndarray:
    """Interpolated median of each row of year probabilities: the one ``age_years`` uses."""
    return years_median(torch.from_numpy(p)).numpy()


def estimates(p: np.ndarray, p_mirror: np.ndarray) -> dict[str, np.ndarray]:
    grid = np.arange(p.shape[1])
    both = (p + p_mirror) / 2
    return {"mean": p @ grid, "median": median(p), "mean, mirror": both @ grid, "median, mirror": median(both)}


def score(model, feats: torch.Tensor, feats_mirror: torch.Tensor, years: np.ndarray) -> dict[str, dict]:
    """MAE by estimate, overall and per age band."""
    est = estimates(year_probs(model, feats), year_probs(model, feats_mirror))
    return {k: mae_by_band(v, years) for k, v in est.items()}


def score_fold(run: Path, records, images: np.ndarray, years: np.ndarray, fold: int, fit: YearsFit) -> dict:
    info = json.loads((run / "results.json").read_text())
    if info.get("tune_val"):
        raise SystemExit(f"{run}: a --tune-val run; this needs the test fold")
    trained, scored = fold_split(records, info["k"], info["fold_seed"], fold, 0.0)
    model, _ = years_model(str(RunDir(run).fold_checkpoint(fold)), fit.age_bins, log=lambda _: None)
    both = face_features(model, images[trained], mirror=True)  # faces, then their mirror images
    n = len(trained)
    plain, flipped = both[:n], both[n:]
    test = face_features(model, images[scored], mirror=True)
    m = len(scored)
    inner = np.asarray(assign_folds([records[i] for i in trained], 5, seed=0))
    fit_rows, val = np.flatnonzero(inner != 0), np.flatnonzero(inner == 0)
    fit_layer(model, torch.cat([plain[fit_rows], flipped[fit_rows]]), years[trained][fit_rows], fit,
              log=lambda _: None)
    validation = score(model, plain[val], flipped[val], years[trained][val])
    fit_layer(model, both, years[trained], fit, log=lambda _: None)
    return {"fold": fold, "validation_faces": int(len(val)), "validation": validation,
            "test_faces": m, "test": score(model, test[:m], test[m:], years[scored])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("--data", required=True, help="the UTKFace folder the run trained on")
    ap.add_argument("--folds", default="1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", help="folder keeping each fold's scores, reused on a rerun (default: none)")
    ap.add_argument("--docs")
    ap.add_argument("--section", default="Age in years: mean or median of the distribution")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    fit = YearsFit()
    run = Path(args.run)
    records, _ = read_dataset("utkface", args.data, verbose=False)
    images = build_faceset(records, 64, tag="utkface", progress=False).images
    years = np.clip(np.array([r.label("age_years") for r in records], np.float64), 0, fit.age_bins - 1)
    rows = []
    for fold in (int(f) for f in args.folds.split(",")):
        cached = Path(args.cache, f"{run.name}-fold{fold}.json") if args.cache else None
        if cached is not None and cached.is_file():
            r = json.loads(cached.read_text())  # seeded: the same run and fold give the same numbers
        else:
            r = score_fold(run, records, images, years, fold, fit)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_text(json.dumps(r))
        rows.append(r)
        print(json.dumps(r), file=sys.stderr, flush=True)
    heads = " | ".join(ESTIMATES)
    lines = [f"`{run.name}`, folds {', '.join(str(r['fold']) for r in rows)}; the years layer fitted with the "
             f"defaults of `agegender fit-years` ({fit.epochs} epochs, mirror images). Validation: 1/5 of "
             "each fold model's training faces (inner fold 0), the layer fitted on the other 4/5 (the trunk trained "
             "on these faces, so their MAE is optimistic; it serves to choose between the estimates). Test: the "
             "fold's test faces (unseen by trunk and layer), the layer fitted on all the training faces. "
             "MAE in years; \"mirror\": the distributions of the face and its mirror image averaged.", "",
             f"| fold | faces | {heads} |", "|---|---:|" + "---:|" * len(ESTIMATES)]
    for part in ("validation", "test"):
        for r in rows:
            lines.append(f"| {r['fold']}, {part} | {r[part + '_faces']:,} | "
                         + " | ".join(f"{r[part][k]['mae']:.3f}" for k in ESTIMATES) + " |")
        if len(rows) > 1:
            lines.append(f"| mean, {part} | {sum(r[part + '_faces'] for r in rows):,} | "
                         + " | ".join(f"**{np.mean([r[part][k]['mae'] for r in rows]):.3f}**" for k in ESTIMATES)
                         + " |")
    bands = [f"{lo}-{hi}" if hi < 200 else f"{lo}+" for lo, hi in BANDS]
    lines += ["", "Test faces by true age band (MAE in years, mean over the folds above):", "",
              f"| estimate | {' | '.join(bands)} |", "|---|" + "---:|" * len(bands)]
    for k in ESTIMATES:
        lines.append(f"| {k} | " + " | ".join(f"{np.mean([r['test'][k]['bands'][b]['mae'] for r in rows]):.2f}"
                                              for b in bands) + " |")
    publish(args.docs, args.section, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
