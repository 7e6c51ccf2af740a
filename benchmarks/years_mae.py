"""Age in years: MAE of cv runs with an ``age_years`` output on the faces their fold held out, overall and
by age band, beside the published figures of other tools on UTKFace (their own numbers, their own splits).

    python benchmarks/years_mae.py --data ../shared/data/utkface RUN [RUN ...] [--docs docs/RESULTS.md]

Every RUN is an `agegender cv` run with the same folds and `--tune-val` (as for benchmarks/pilot_eval.py),
so each is scored on the same faces: the validation split carved from the fold's training part, or the
test fold. The expected value of the year distribution (or the regressed value) is the prediction.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pilot_eval import face_images, scored_indices  # noqa: E402

from agegender.data.datasets import read_dataset  # noqa: E402
from agegender.provenance import publish  # noqa: E402
from agegender.rundir import RunDir  # noqa: E402
from agegender.training.checkpoint import load_checkpoint  # noqa: E402
from agegender.training.engine import predict_outputs  # noqa: E402
from agegender.training.years_head import BANDS  # noqa: E402

# Published UTKFace MAE of other tools (their own protocols; not measured here)
ANCHORS = (("face-api.js (its README)", 5.25), ("deepface (its README)", 4.65), ("MiVOLO (its paper)", 4.23))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--data", required=True, help="the UTKFace folder the runs trained on")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--docs")
    ap.add_argument("--section", default="Age in years: MAE by age band")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    records, _ = read_dataset("utkface", args.data, verbose=False)
    setups = {(i["k"], i["fold_seed"], i.get("tune_val", 0.0))
              for i in (json.loads((Path(r) / "results.json").read_text()) for r in args.runs)}
    if len(setups) != 1:
        raise SystemExit(f"the runs did not score the same faces (k, fold seed, tune_val differ: {sorted(setups)})")
    k, fold_seed, tune_val = setups.pop()
    chosen = [records[i] for i in scored_indices(records, k, fold_seed, args.fold, tune_val)]
    years = np.array([r.label("age_years") for r in chosen], dtype=np.float64)
    masks = [(years >= lo) & (years <= hi) for lo, hi in BANDS]
    heads = " | ".join(f"{lo}-{hi}" if hi < 200 else f"{lo}+" for lo, hi in BANDS)
    lines = [f"Fold {args.fold}, {'validation split ' + format(tune_val) if tune_val else 'test fold'} (k={k}, "
             f"fold seed {fold_seed}): {len(chosen)} UTKFace faces; faces per band: "
             + ", ".join(str(int(m.sum())) for m in masks) + ".", "",
             f"| model | MAE (years) | {heads} |", "|---|---:|" + "---:|" * len(BANDS)]
    for run in map(Path, args.runs):
        model, meta = load_checkpoint(RunDir(run).fold_checkpoint(args.fold))
        if "age_years" not in meta["model"]["tasks"]:
            raise SystemExit(f"{run}: no age_years output")
        pred = predict_outputs(model, face_images(chosen, meta["model"]["input_size"], "utkface"))["age_years"]
        err = np.abs(pred.astype(np.float64) - years)
        lines.append(f"| `{run.name}` | **{err.mean():.2f}** | " + " | ".join(f"{err[m].mean():.2f}" for m in masks)
                     + " |")
        print(lines[-1], file=sys.stderr, flush=True)
    lines += [f"| {name} | {mae:.2f} | " + " | ".join("-" for _ in BANDS) + " |" for name, mae in ANCHORS]
    lines += ["", "The anchors are each tool's own published UTKFace figure on its own split, not measured here "
              "on these faces: a rough scale, not a same-run comparison."]
    publish(args.docs, args.section, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
