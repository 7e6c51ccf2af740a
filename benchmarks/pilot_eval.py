"""Score several cv runs of the same fold side by side on the faces they all held out, gender by age band.

    python benchmarks/pilot_eval.py --data ../shared/data/utkface RUN [RUN ...] [--docs docs/RESULTS.md]

For choosing a recipe without touching a test fold: every RUN is an `agegender cv` run (cls heads) with
the same folds (k, fold seed) and the same `--tune-val`, so each finished fold was scored on the same
validation faces carved from that fold's training part. Each run's checkpoint is run on those faces at its
own input size; rows give gender accuracy overall and for true ages 0-12 / 13-19 / 20+ (where the peers
differ most), strict age-group accuracy, the same with test-time mirroring (probabilities of the face and
its mirror image averaged), with --ensemble the average of several runs' probabilities (all of them, or the
groups named, e.g. ``--ensemble 1+2,1+3``), and with --mix the
weights of the first two runs interpolated (WiSE-FT: the second run fine-tuned from the first). With --celeba,
a last column scores gender on the CelebA people the fold's validation split carved from CelebA's training
part (as `cv --tune-val --extra celeba_gender:...` does); a run that trained on those people (an `--extra`
run made before that carve existed) shows "trained on" there instead of a number. A paired
difference against the first run counts the faces one gets right and the other wrong, so the noise of
the comparison is visible: a gain of d points on n faces is about 1.4 * sqrt(flips) / n * 100 points wide
at 2 sigma. With --train-fit N, a second table scores every run on the same N faces of its own training
part: a net that fits its training faces little better than held-out ones underfits (capacity or
regularisation), one far better overfits.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from agegender.data.datasets import read_dataset
from agegender.data.faceset import build_faceset
from agegender.data.folds import assign_folds
from agegender.data.folds import fold_split as folds_split
from agegender.decode import softmax
from agegender.labels import MISSING, age_group_strict
from agegender.provenance import publish
from agegender.rundir import RunDir
from agegender.training.checkpoint import load_checkpoint
from agegender.training.engine import predict_outputs

BANDS = ((0, 12), (13, 19), (20, 200))


def fold_split(records, k: int, fold_seed: int, fold: int, tune_val: float) -> tuple[np.ndarray, np.ndarray]:
    """(trained, scored): indices into ``records`` of the faces fold ``fold`` of a cv run trained on and
    scored, as `run_cv` chose them (for the main dataset and each ``--extra`` alike); with ``tune_val`` the
    scored faces are the validation split carved from the training part, and the rest is what it trained on."""
    return folds_split(records, assign_folds(records, k, seed=fold_seed), fold, tune_val, fold_seed)


def scored_indices(records, k: int, fold_seed: int, fold: int, tune_val: float) -> np.ndarray:
    """Indices into ``records`` of the faces fold ``fold`` of a cv run scored."""
    return fold_split(records, k, fold_seed, fold, tune_val)[1]


def trained_on_celeba_scored(fold_result: dict) -> bool:
    """Whether a fold's training part held the CelebA people :func:`scored_indices` picks for it."""
    trained = "celeba_gender" in fold_result.get("extra_metrics", {})
    return trained and fold_result.get("extra_split", "test") != fold_result.get("split", "test")


_IMAGES: dict[tuple[str, int, int], np.ndarray] = {}


def face_images(records, size: int, tag: str) -> np.ndarray:
    """The faces of ``records`` at ``size`` px, built once per record list (every run and mix reuses them)."""
    key = (tag, size, id(records))
    if key not in _IMAGES:
        _IMAGES[key] = np.asarray(build_faceset(records, size, tag=tag, progress=False).images)
    return _IMAGES[key]


def run_probs(checkpoint: Path, records, threads: int, tag: str = "utkface", mix: tuple[Path, float] | None = None,
              ) -> dict[str, dict[str, np.ndarray]]:
    """{"plain"|"mirror": {task: probabilities}} of one checkpoint on ``records``; with ``mix`` = (other
    checkpoint, a), of the weights (1 - a) * checkpoint + a * other (BatchNorm statistics likewise)."""
    import torch

    torch.set_num_threads(threads)
    model, meta = load_checkpoint(checkpoint)
    if mix is not None:
        other, a = mix
        theirs = load_checkpoint(other)[0].state_dict()
        model.load_state_dict({name: (1 - a) * w + a * theirs[name] if w.is_floating_point() else theirs[name]
                               for name, w in model.state_dict().items()})
    images = face_images(records, meta["model"]["input_size"], tag)
    plain = predict_outputs(model, images)
    mirrored = predict_outputs(model, images[:, :, ::-1].copy())
    for task, out in plain.items():
        if out.ndim != 2:
            raise ValueError(f"{checkpoint}: task {task} has no softmax head; this benchmark needs --head cls runs")
    p = {t: softmax(v) for t, v in plain.items()}
    m = {t: (softmax(v) + softmax(mirrored[t])) / 2 for t, v in plain.items()}
    return {"plain": p, "mirror": m}


def row(name: str, probs: dict[str, np.ndarray], gender: np.ndarray, age: np.ndarray, years: np.ndarray,
        reference: np.ndarray | None, celeba: str | None = None) -> tuple[str, np.ndarray]:
    hit = probs["gender"].argmax(1) == gender
    bands = " / ".join(f"{100 * hit[(years >= lo) & (years <= hi)].mean():.1f}" for lo, hi in BANDS)
    known = age != MISSING
    age_hit = probs["age"].argmax(1)[known] == age[known]
    paired = ""
    if reference is not None:
        gained, lost = int((hit & ~reference).sum()), int((~hit & reference).sum())
        paired = f"{100 * (gained - lost) / len(hit):+.2f} ({gained} gained, {lost} lost)"
    extra = "" if celeba is None else f" {celeba} |"
    return (f"| {name} | {100 * hit.mean():.2f} | {bands} | {100 * age_hit.mean():.2f} | {paired} |{extra}", hit)


def celeba_cell(probs: dict[str, np.ndarray] | None, gender: np.ndarray) -> str:
    return "trained on" if probs is None else f"{100 * (probs['gender'].argmax(1) == gender).mean():.2f}"


def ensemble_groups(spec: str | None, n_runs: int) -> list[list[int]]:
    """0-based run indices of each ``--ensemble`` group: ``"all"`` is every run; ``"1+2,1+3"`` two pairs."""
    if not spec:
        return []
    if spec == "all":
        return [list(range(n_runs))] if n_runs > 1 else []
    groups = []
    for part in spec.split(","):
        try:
            group = [int(x) - 1 for x in part.split("+")]
        except ValueError:
            raise SystemExit(f"--ensemble: {part!r} is not run numbers joined by '+' (e.g. 1+2)") from None
        if len(group) < 2 or len(set(group)) != len(group) or not all(0 <= i < n_runs for i in group):
            raise SystemExit(f"--ensemble: {part!r} needs two or more different run numbers from 1 to {n_runs}")
        groups.append(group)
    return groups


def train_fit_table(args, records, names: list[str], setup: tuple, gender: np.ndarray, years: np.ndarray,
                    all_probs: list[dict]) -> list[str]:
    """Rows of gender accuracy on ``args.train_fit`` of each run's own training faces (the same faces for
    every run) beside its held-out accuracy, overall and by age band: a small gap with both low says the
    net underfits; where the gap is large is where having seen a face helps most."""
    pool = fold_split(records, *setup[:2], args.fold, setup[2])[0]
    chosen = [records[i] for i in np.sort(np.random.default_rng(0).choice(pool, min(args.train_fit, len(pool)),
                                                                       replace=False))]
    g = np.array([r.label("gender") for r in chosen])
    y = np.array([r.label("age_years") for r in chosen])

    def cells(hit: np.ndarray, ages: np.ndarray) -> str:
        bands = " / ".join(f"{100 * hit[(ages >= lo) & (ages <= hi)].mean():.1f}" for lo, hi in BANDS)
        return f"{100 * hit.mean():.2f} | {bands}"

    n_band = " / ".join(str(int(((y >= lo) & (y <= hi)).sum())) for lo, hi in BANDS)
    lines = ["", f"Fit to the training faces: gender on {len(chosen)} faces ({n_band} aged 0-12 / 13-19 / 20+) "
             f"drawn (seed 0) from the {len(pool)} this fold trained on, eval mode, beside the held-out faces "
             "above.", "",
             "| run | gender % on its training faces | aged 0-12 / 13-19 / 20+ | gender % held out "
             "| aged 0-12 / 13-19 / 20+ | gap, all / 0-12 / 20+ |", "|---|---:|---:|---:|---:|---:|"]
    for run, name, probs in zip(map(Path, args.runs), names, all_probs):
        fit = run_probs(RunDir(run).fold_checkpoint(args.fold), chosen, args.threads)["plain"]["gender"]
        fit = fit.argmax(1) == g
        held = probs["plain"]["gender"].argmax(1) == gender
        gaps = [100 * (fit[m1].mean() - held[m2].mean()) for m1, m2 in
                ((slice(None), slice(None)), (y <= 12, years <= 12), (y >= 20, years >= 20))]
        lines.append(f"| {name} | {cells(fit, y)} | {cells(held, years)} | {' / '.join(f'{d:+.1f}' for d in gaps)} |")
        print(lines[-1], file=sys.stderr, flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="cv run folders (the first is the reference of the paired column)")
    ap.add_argument("--data", required=True, help="the UTKFace folder the runs trained on")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--ensemble", nargs="?", const="all", metavar="GROUPS",
                    help="also rows for the average of runs' probabilities: of all of them, or of each "
                         "comma-separated group of 1-based run numbers joined by '+' (e.g. 1+2,1+3); bare, "
                         "it must follow the runs or precede another option")
    ap.add_argument("--celeba", help="the celeba_gender folder: add gender on the fold's CelebA validation people")
    ap.add_argument("--mix", help="comma-separated a in (0, 1): add rows for the weights (1 - a) * RUN1 + a * RUN2")
    ap.add_argument("--train-fit", type=int, default=0, metavar="N",
                    help="also score each run on N faces drawn from its own training part (eval mode, no "
                         "augmentation): how well it fits what it saw, beside how well it generalises")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--docs", help="write the table as a dated section of this Markdown file")
    ap.add_argument("--section", default="Recipe pilots (validation split of fold 0)")
    args = ap.parse_args(argv)
    mixes = [float(a) for a in args.mix.split(",")] if args.mix else []
    groups = ensemble_groups(args.ensemble, len(args.runs))
    if mixes and (len(args.runs) < 2 or not all(0 < a < 1 for a in mixes)):
        raise SystemExit("--mix needs two runs (the first and the one fine-tuned from it) and weights in (0, 1)")

    records, _ = read_dataset("utkface", args.data, verbose=False)
    setups, names, fold_results = set(), [], []
    for run in map(Path, args.runs):
        info = json.loads((run / "results.json").read_text())
        done = RunDir(run).fold_results(args.fold)
        if not done.is_file():
            raise SystemExit(f"{run}: fold {args.fold} is not finished")
        setups.add((info["k"], info["fold_seed"], info.get("tune_val", 0.0)))
        names.append(run.name)
        fold_results.append(json.loads(done.read_text()))
    if len(setups) != 1:
        raise SystemExit(f"the runs did not score the same faces (k, fold seed, tune_val differ: {sorted(setups)})")
    k, fold_seed, tune_val = setups.pop()
    idx = scored_indices(records, k, fold_seed, args.fold, tune_val)
    chosen = [records[i] for i in idx]
    gender = np.array([r.label("gender") for r in chosen])
    years = np.array([r.label("age_years") for r in chosen])
    age = np.array([age_group_strict(y) if y != MISSING else MISSING for y in years])
    if (gender == MISSING).any():
        raise SystemExit("some scored faces lack a gender label")
    n_band = " / ".join(str(int(((years >= lo) & (years <= hi)).sum())) for lo, hi in BANDS)
    celeba_records, celeba_gender = [], None
    if args.celeba:
        all_celeba, _ = read_dataset("celeba_gender", args.celeba, verbose=False)
        celeba_records = [all_celeba[i] for i in scored_indices(all_celeba, k, fold_seed, args.fold, tune_val)]
        celeba_gender = np.array([r.label("gender") for r in celeba_records])

    lines = [f"Fold {args.fold}, {'validation split ' + format(tune_val) if tune_val else 'test fold'} "
             f"(k={k}, fold seed {fold_seed}): {len(idx)} faces, {n_band} aged 0-12 / 13-19 / 20+; "
             f"strict age on the {int((age != MISSING).sum())} inside a group. Paired column: against "
             f"`{names[0]}` on the same faces."
             + (f" CelebA column: {len(celeba_records)} crops of the people this fold's "
                f"{'validation split' if tune_val else 'test fold'} holds out." if args.celeba else ""), "",
             "| run | gender % | gender % aged 0-12 / 13-19 / 20+ | age exact % (strict) | gender vs first run |"
             + (" CelebA gender % |" if args.celeba else ""),
             "|---|---:|---:|---:|---:|" + ("---:|" if args.celeba else "")]
    all_probs, all_celeba_probs, reference = [], [], None
    for run, name, fold_result in zip(map(Path, args.runs), names, fold_results):
        checkpoint = RunDir(run).fold_checkpoint(args.fold)
        probs = run_probs(checkpoint, chosen, args.threads)
        all_probs.append(probs)
        celeba_probs = None
        if args.celeba and not trained_on_celeba_scored(fold_result):
            celeba_probs = run_probs(checkpoint, celeba_records, args.threads, tag="celeba_gender")
        all_celeba_probs.append(celeba_probs)
        for variant in ("plain", "mirror"):
            label = name if variant == "plain" else f"{name}, mirror"
            cell = celeba_cell(celeba_probs and celeba_probs[variant], celeba_gender) if args.celeba else None
            text, hit = row(label, probs[variant], gender, age, years, reference, cell)
            if reference is None:
                reference = hit
            lines.append(text)
        print(lines[-2], lines[-1], sep="\n", file=sys.stderr, flush=True)
    for group in groups:
        members = [all_probs[i] for i in group]
        label = f"mean of all {len(group)}" if len(group) == len(names) else " + ".join(f"`{names[i]}`" for i in group)
        for variant in ("plain", "mirror"):
            mean = {t: np.mean([p[variant][t] for p in members], axis=0) for t in ("age", "gender")}
            cell = None
            if args.celeba:
                celeba = [all_celeba_probs[i] for i in group]
                cell = celeba_cell({"gender": np.mean([p[variant]["gender"] for p in celeba], axis=0)}
                                   if all(p is not None for p in celeba) else None, celeba_gender)
            lines.append(row(label + (", mirror" if variant == "mirror" else ""),
                             mean, gender, age, years, reference, cell)[0])
        print(lines[-2], lines[-1], sep="\n", file=sys.stderr, flush=True)
    first, second = (RunDir(r).fold_checkpoint(args.fold) for r in args.runs[:2]) if mixes else (None, None)
    clean = args.celeba and not any(map(trained_on_celeba_scored, fold_results[:2]))
    for a in mixes:
        probs = run_probs(first, chosen, args.threads, mix=(second, a))
        celeba_probs = run_probs(first, celeba_records, args.threads, "celeba_gender", (second, a)) if clean else None
        cell = celeba_cell(celeba_probs and celeba_probs["plain"], celeba_gender) if args.celeba else None
        lines.append(row(f"{1 - a:g} `{names[0]}` + {a:g} `{names[1]}` (weights)", probs["plain"], gender, age,
                         years, reference, cell)[0])
        print(lines[-1], file=sys.stderr, flush=True)
    if args.train_fit > 0:
        lines += train_fit_table(args, records, names, (k, fold_seed, tune_val), gender, years, all_probs)
    publish(args.docs, args.section, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
