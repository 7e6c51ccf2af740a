"""Dead ReLU units in the paper net's FC layers, with and without BatchNorm there (ModelConfig.fc_norm).

Trains the cls-head paper net on a subset of fold 0's training part (the `cpu` recipe: lr 0.01, 1-epoch
warm-up) and after every epoch records the fraction of live units in each FC layer and the accuracy on a
validation split carved from the same training part (fold 0's test faces are not touched).

    python benchmarks/dead_units.py --data-root ../shared/data/utkface --fc-norm off --json a.json
    python benchmarks/dead_units.py --data-root ../shared/data/utkface --fc-norm on --json b.json
    python benchmarks/dead_units.py --combine a.json b.json --docs docs/RESULTS.md

The two trainings can run at the same time, one per core (taskset -c 0 / -c 1, --threads 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from agegender.provenance import write_section


def train(args) -> dict:
    from agegender.config import ModelConfig, recipe
    from agegender.data.datasets import read_dataset
    from agegender.data.faceset import build_faceset
    from agegender.data.folds import assign_folds, split_train_val
    from agegender.training.train import fit

    records, _ = read_dataset("utkface", args.data_root)
    folds = np.array(assign_folds(records, 5, seed=0))
    train_idx = np.flatnonzero(folds != 0)
    tr, va = split_train_val([records[i] for i in train_idx], 0.2, seed=0)
    rng = np.random.default_rng(0)
    tr = rng.permutation(train_idx[tr])[: args.train]
    va = rng.permutation(train_idx[va])[: args.val]
    faces = build_faceset(records, 64, tag="utkface", progress=False)
    model_cfg = ModelConfig(head=args.head, fc_norm=args.fc_norm == "on")
    train_cfg = recipe("cpu", epochs=args.epochs, lr_step_epochs=(), threads=args.threads, lr=args.lr,
                       grad_clip=args.grad_clip, probe_dead_units=True)
    with tempfile.TemporaryDirectory() as tmp:
        res = fit(model_cfg, train_cfg, faces.subset(tr), tmp, faces.subset(va), eval_every=1, progress=False,
                  log=lambda m: print(m, file=sys.stderr, flush=True))
    return {"fc_norm": args.fc_norm, "head": args.head, "lr": args.lr, "grad_clip": args.grad_clip,
            "train": len(tr), "val": len(va), "epochs": args.epochs,
            "curve": [{k: h[k] for k in ("epoch", "loss", "alive_fc1", "alive_fc2", "eval_gender_acc",
                                         "eval_age_strict_exact") if k in h} for h in res["history"]]}


def combine(paths: list[str]) -> str:
    runs = [json.loads(Path(p).read_text()) for p in paths]
    lines = ["| FC BatchNorm | head | lr | grad clip | epoch | train loss | live units FC1 | live units FC2 "
             "| val gender % | val age exact % (strict) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        setting = f"{run['fc_norm']} | {run.get('head', 'cls')} | {run.get('lr', 0.01):g} | {run.get('grad_clip', 0):g}"
        for row in run["curve"]:
            lines.append(f"| {setting} | {row['epoch']} | {row['loss']:.3f} | {100 * row['alive_fc1']:.1f} % "
                         f"| {100 * row['alive_fc2']:.1f} % | {row['eval_gender_acc']:.1f} "
                         f"| {row['eval_age_strict_exact']:.1f} |")
    r = runs[0]
    return (f"{r['train']} training and {r['val']} validation faces from fold 0's training part, the `cpu` "
            f"recipe (1-epoch warm-up) without its lr step, {r['epochs']} epochs, 1 thread each. A unit is live if "
            "it fires for at least one of 256 training faces.\n\n" + "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default="../shared/data/utkface")
    ap.add_argument("--fc-norm", choices=("on", "off"), default="off")
    ap.add_argument("--head", choices=("cls", "reg"), default="cls")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--grad-clip", type=float, default=0.0)
    ap.add_argument("--train", type=int, default=6000)
    ap.add_argument("--val", type=int, default=1500)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write this training's curve here")
    ap.add_argument("--combine", nargs="+", help="JSON files of earlier runs: print / write their table")
    ap.add_argument("--docs", help="with --combine: write the table as a section of this Markdown file")
    args = ap.parse_args()
    if args.combine:
        table = combine(args.combine)
        print(table)
        if args.docs:
            write_section(args.docs, "Dead units in the FC layers", table,
                          "python benchmarks/dead_units.py --fc-norm {off,on} ... && python benchmarks/dead_units.py "
                          "--combine ...")
        return
    result = train(args)
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
