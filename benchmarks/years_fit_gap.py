"""How optimistic is `agegender fit-years`' cross-validated MAE when the trunk has seen the faces?

The bundled default trained on every UTKFace face, so its years layer (`agegender fit-years --init
default`) can only be cross-validated on faces its trunk saw: the layer is refitted without each fold, the
trunk is not. This benchmark measures that optimism on a cv run whose fold K trunk did *not* see fold K's
test faces: the same years fit is (a) cross-validated on the fold's own training faces, as for the default,
and (b) fitted on all of them and scored on the test fold, which neither trunk nor layer saw. (b) - (a)
is the optimism; the strict age-group accuracy on the same two sets shows the trunk's own fit beside it.

    python benchmarks/years_fit_gap.py --data ../shared/data/utkface RUN [RUN ...] [--folds 0,1] \\
        [--default-results RUN/results.json] [--docs docs/RESULTS.md]

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
from agegender.labels import MISSING, age_group_strict  # noqa: E402
from agegender.provenance import publish  # noqa: E402
from agegender.rundir import RunDir  # noqa: E402
from agegender.training.years_head import (  # noqa: E402
    BANDS,
    cross_validate,
    face_features,
    fit_layer,
    head_outputs,
    mae_by_band,
    predict_years,
    years_model,
)


def strict_accuracy(model, feats: torch.Tensor, years: np.ndarray) -> float:
    with torch.no_grad():
        groups = head_outputs(model, feats)["age"].argmax(1).numpy()
    strict = np.array([age_group_strict(y) for y in years])
    keep = strict != MISSING
    return float((groups[keep] == strict[keep]).mean() * 100)


def score_run(run: Path, records, images: np.ndarray, years: np.ndarray, fold: int, fit: YearsFit,
              estimate: str) -> dict:
    info = json.loads((run / "results.json").read_text())
    if info.get("tune_val"):
        raise SystemExit(f"{run}: a --tune-val run; this needs the test fold")
    trained, scored = fold_split(records, info["k"], info["fold_seed"], fold, 0.0)
    model, _ = years_model(str(RunDir(run).fold_checkpoint(fold)), fit.age_bins, log=lambda _: None)
    model.head.years_estimate = estimate
    feats_train = face_features(model, images[trained], fit.mirror)
    feats_test = face_features(model, images[scored], mirror=False)
    inner = assign_folds([records[i] for i in trained], 5, seed=0)
    seen = cross_validate(model, feats_train, years[trained], inner, fit, log=lambda _: None)
    fit_layer(model, feats_train, years[trained], fit, log=lambda _: None)
    unseen = mae_by_band(predict_years(model, feats_test), years[scored])
    return {"run": run.name, "seen": seen["pooled"], "unseen": unseen,
            "strict_seen": strict_accuracy(model, feats_train[:len(trained)], years[trained]),
            "strict_unseen": strict_accuracy(model, feats_test, years[scored])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--data", required=True, help="the UTKFace folder the runs trained on")
    ap.add_argument("--folds", default="0", help="comma-separated folds of each run (a mean row when several)")
    ap.add_argument("--default-results", help="results.json of `agegender fit-years --init default`, shown beside")
    ap.add_argument("--estimate", choices=("median", "mean"), default="median",
                    help="age_years as the year distribution's median (what fit-years gives) or mean")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", help="folder keeping each run's scores, reused on a rerun (default: none)")
    ap.add_argument("--docs")
    ap.add_argument("--section", default="Age in years for the default: how optimistic the fit's own CV is")
    args = ap.parse_args(argv)
    folds = [int(f) for f in args.folds.split(",")]
    torch.set_num_threads(args.threads)
    fit = YearsFit()
    records, _ = read_dataset("utkface", args.data, verbose=False)
    images = build_faceset(records, 64, tag="utkface", progress=False).images
    years = np.clip(np.array([r.label("age_years") for r in records], np.float64), 0, fit.age_bins - 1)
    heads = " | ".join(f"{lo}-{hi}" if hi < 200 else f"{lo}+" for lo, hi in BANDS)
    which = f"Fold{'s' if len(folds) > 1 else ''} {', '.join(map(str, folds))}"
    lines = [f"{which} of each run; years layer fitted with the defaults of `agegender fit-years` "
             f"({fit.epochs} epochs, weight decay {fit.weight_decay}, mirror images), age_years the "
             f"distribution's {args.estimate}. \"seen\": 5-fold CV of the "
             "layer over the faces the fold's trunk trained on (what `fit-years` reports for the default); "
             "\"unseen\": the layer fitted on all of them, scored on the fold's test faces, which the trunk "
             "never saw. Strict: age-group accuracy of the trunk's own group head on the same faces.", "",
             f"| model | faces | MAE (years) | {heads} | strict age group % |",
             "|---|---:|---:|" + "---:|" * len(BANDS) + "---:|"]

    def row(name: str, part: dict, strict: float | None) -> str:
        bands = " | ".join(f"{part['bands'][k]['mae']:.2f}" for k in part["bands"])
        return (f"| {name} | {part['faces']:,} | **{part['mae']:.2f}** | {bands} | "
                f"{'-' if strict is None else format(strict, '.1f')} |")

    for run in map(Path, args.runs):
        unseen = []
        for fold in folds:
            cached = Path(args.cache, f"{run.name}-fold{fold}-{args.estimate}.json") if args.cache else None
            if cached is not None and cached.is_file():
                r = json.loads(cached.read_text())  # the same run, fold and fit (all seeded): the same numbers
            else:
                r = score_run(run, records, images, years, fold, fit, args.estimate)
                if cached is not None:
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    cached.write_text(json.dumps(r))
            unseen.append(r["unseen"])
            lines.append(row(f"`{r['run']}` fold {fold}, seen (layer CV)", r["seen"], r["strict_seen"]))
            lines.append(row(f"`{r['run']}` fold {fold}, unseen (test fold)", r["unseen"], r["strict_unseen"]))
            lines.append(f"| optimism of \"seen\" | | {r['unseen']['mae'] - r['seen']['mae']:+.2f} | "
                         + " | ".join(f"{r['unseen']['bands'][k]['mae'] - r['seen']['bands'][k]['mae']:+.2f}"
                                      for k in r["seen"]["bands"])
                         + f" | {r['strict_unseen'] - r['strict_seen']:+.1f} |")
            print(lines[-3:], file=sys.stderr, flush=True)
        if len(unseen) > 1:
            maes = np.array([u["mae"] for u in unseen])
            bands = " | ".join(f"{np.mean([u['bands'][k]['mae'] for u in unseen]):.2f}" for k in unseen[0]["bands"])
            lines.append(f"| `{run.name}` unseen, mean of {len(unseen)} folds (sd) | "
                         f"{sum(u['faces'] for u in unseen):,} | **{maes.mean():.2f}** ({maes.std(ddof=1):.2f}) | "
                         f"{bands} | - |")
    if args.default_results:
        d = json.loads(Path(args.default_results).read_text())
        lines.append(row("bundled default, seen (layer CV; `fit-years --init default`)", d["cv"]["pooled"], None))
    publish(args.docs, args.section, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
