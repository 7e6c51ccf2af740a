"""What having trained on a face is worth: the same faces, the same recipe, seen and unseen.

    python benchmarks/seen_faces.py --run ~/agegender-runs/cv-cls-e30 [--folds 0,1] [--docs docs/RESULTS.md]

A peer that trained on UTKFace (face-api.js did, on an 80 / 20 split of its own) is partly scored on faces
it has seen when we score it on our held-out folds. This measures how much that is worth for our own
recipe, with no guesswork about which faces: for each pair of finished folds (A, B) of one `agegender cv`
run, the faces of test fold A are scored by fold A's model (which never saw them) and by fold B's model
(which trained on them, fold A being part of its training folds). Gender accuracy is reported by fine age
band beside each peer's answers on the same faces, read from the peer cache `benchmarks/peers.py` fills
(a peer is shown only if the cache holds every one of the faces).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from agegender.data.faceset import build_faceset
from agegender.provenance import publish
from agegender.training.checkpoint import load_checkpoint
from agegender.training.engine import predict_outputs

sys.path.insert(0, str(Path(__file__).parent))
from peers import PeerCache, held_out_folds  # noqa: E402

BANDS = ((0, 2), (3, 5), (6, 9), (10, 12), (13, 19), (20, 200), (0, 200))


def band_cells(hit: np.ndarray, years: np.ndarray) -> str:
    return " | ".join(f"{100 * hit[(years >= lo) & (years <= hi)].mean():.1f}" for lo, hi in BANDS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="an `agegender cv` run (no --tune-val) with 2+ finished folds")
    ap.add_argument("--folds", default="0,1", help="comma-separated finished folds to pair (default 0,1)")
    ap.add_argument("--peer-cache",
                    default=str(Path(os.environ.get("AGEGENDER_CACHE", Path.home() / ".cache" / "agegender"))
                                / "peer-predictions.json"),
                    help="peer predictions written by benchmarks/peers.py ('' for none)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--docs", help="write the table as a dated section of this Markdown file")
    ap.add_argument("--section", default="What having seen a face is worth (UTK-8 gender by age)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    run = Path(args.run)
    results = json.loads((run / "results.json").read_text())
    if results.get("tune_val", 0.0):
        raise SystemExit(f"{run}: trained with --tune-val; its test folds are what this compares, use a plain cv run")
    wanted = [int(f) for f in args.folds.split(",")]
    folds = {f: (records, ckpt) for f, records, ckpt in held_out_folds(run, wanted)}
    missing = sorted(set(wanted) - set(folds))
    if missing or len(set(wanted)) < 2:
        raise SystemExit(f"{run}: needs 2+ finished folds among {args.folds} (missing: {missing})")
    models = {f: load_checkpoint(ckpt)[0] for f, (_, ckpt) in folds.items()}

    unseen, seen, years, gender, records = [], [], [], [], []
    face_years = np.concatenate([[r.label("age_years") for r in folds[a][0]] for a in wanted])
    for a in wanted:  # each test fold, scored by its own model and by every other fold's model
        recs = folds[a][0]
        faces = np.asarray(build_faceset(recs, 64, tag="utkface", progress=False).images)
        g = np.array([r.label("gender") for r in recs])
        hit_own = predict_outputs(models[a], faces)["gender"].argmax(1) == g
        for b in wanted:
            if b == a:
                continue
            unseen.append(hit_own)
            seen.append(predict_outputs(models[b], faces)["gender"].argmax(1) == g)
            years.append(np.array([r.label("age_years") for r in recs]))
            gender.append(g)
            records.append(recs)
    unseen_hit, seen_hit, y = np.concatenate(unseen), np.concatenate(seen), np.concatenate(years)
    n_faces = len(face_years)
    header = " | ".join("all" if hi == 200 and lo == 0 else f"{lo}+" if hi == 200 else f"{lo}-{hi}"
                        for lo, hi in BANDS)
    counts = " / ".join(str(int(((face_years >= lo) & (face_years <= hi)).sum())) for lo, hi in BANDS[:-1])
    lines = [f"`{run.name}`, test folds {', '.join(map(str, wanted))} ({n_faces} faces: {counts} in the bands "
             f"below); each face scored by the model of its own fold (never saw it) and by the model of "
             f"{'each other' if len(wanted) > 2 else 'the other'} fold listed (trained on it), same recipe, "
             "same faces. Gender accuracy %:", "",
             f"| model | {header} |", "|---|" + "---:|" * len(BANDS),
             f"| ours, the model that never saw the face | {band_cells(unseen_hit, y)} |",
             f"| ours, a model that trained on the face | {band_cells(seen_hit, y)} |",
             "| difference (seen - unseen), points | "
             + " | ".join(f"{100 * (seen_hit[m].mean() - unseen_hit[m].mean()):+.1f}"
                          for m in ((y >= lo) & (y <= hi) for lo, hi in BANDS)) + " |"]
    if args.peer_cache and Path(args.peer_cache).is_file():
        cache = PeerCache(Path(args.peer_cache))
        flat = [r for recs in records for r in recs]
        g_all = np.concatenate(gender)
        keys = [cache.key(r) for r in flat]
        for name, table in cache.data.items():
            if not all(k in table for k in keys):
                print(f"{name}: not every face is in the peer cache; skipped", file=sys.stderr)
                continue
            hit = np.array([table[k][1] for k in keys]) == g_all
            lines.append(f"| {name} | {band_cells(hit, y)} |")
    publish(args.docs, args.section, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
