"""The small nets side by side: depthwise-separable ``lite`` (what `fast` is) against ``lite-dense``, the same
budget in dense 3x3 convolutions: share of the compute ceiling, speed, and cross-validated accuracy, in one run.

    python benchmarks/dense_vs_depthwise.py --cv lite=docs/results/cv-lite \
        --cv lite-dense=docs/results/cv-lite-dense --docs docs/BENCHMARKS.md

Each architecture is built with fresh weights and exported the way `agegender export` writes a float file
(the time of an fp32 graph does not depend on its weights), then timed in turns (every round takes each net
once, so a busy spell on a shared machine falls on all of them): aligned 64 px faces through
``OnnxModel.run`` at batch 128 on 1 and on all threads, and at batch 1 on one thread, beside the fp32 ceiling
measured in the same run. ``--cv ARCH=RUN`` adds a finished `agegender cv` run's 5-fold
accuracy (gender, strict age group) for that architecture.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ceiling import macs_per_face, measured_ceiling  # noqa: E402

from agegender.config import ModelConfig  # noqa: E402
from agegender.export import export_onnx  # noqa: E402
from agegender.inference.runtime import OnnxModel  # noqa: E402
from agegender.models import count_parameters, create_model  # noqa: E402
from agegender.provenance import publish  # noqa: E402
from agegender.training.checkpoint import save_checkpoint  # noqa: E402

ARCHS = ("lite", "lite-dense")
BATCH1_CALLS = 20  # batch-1 calls per net and round


def exported(arch: str, folder: Path) -> tuple[Path, int]:
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, head="cls")
    model = create_model(cfg).eval()
    path = folder / f"{arch}.onnx"
    export_onnx(save_checkpoint(folder / arch, model, cfg), path)
    return path, count_parameters(model)


def interleaved(paths: list[Path], threads_list: list[int], batch: int, rounds: int
                ) -> tuple[dict[tuple[int, int], float], list[float]]:
    """Faces/s at ``batch`` per (net, threads) and ms per face at batch 1 on one thread, each the median
    over ``rounds`` rounds that take every net in turn (the order rotating), so a busy spell on this shared
    machine falls on all of them alike."""
    models = {(i, t): OnnxModel(p, threads=t) for i, p in enumerate(paths) for t in threads_list}
    size = models[0, threads_list[0]].size
    faces = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    for model in models.values():
        model.run(faces)
    rates: dict[tuple[int, int], list[float]] = {key: [] for key in models}
    single: list[list[float]] = [[] for _ in paths]
    for r in range(rounds):
        for i in np.roll(np.arange(len(paths)), r):
            for t in threads_list:
                start = time.perf_counter()
                models[i, t].run(faces)
                rates[i, t].append(batch / (time.perf_counter() - start))
            for _ in range(BATCH1_CALLS):
                start = time.perf_counter()
                models[i, 1].run(faces[:1])
                single[i].append(1000 * (time.perf_counter() - start))
    return ({key: statistics.median(v) for key, v in rates.items()}, [statistics.median(v) for v in single])


def cv_summary(run: str) -> str:
    summary = json.loads((Path(run) / "results.json").read_text())["summary"]
    g, a = summary["gender_acc"], summary["age_strict_exact"]
    return f"{g['mean']:.1f} ± {g['std']:.1f} / {a['mean']:.1f} ± {a['std']:.1f} ({g['n']} folds)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cv", action="append", default=[], metavar="ARCH=RUN",
                    help="a finished `agegender cv` run of that architecture (its results.json)")
    ap.add_argument("--onnx", action="append", default=[], metavar="NAME=FILE",
                    help="also time this exported file (a trained model: the bundled fast.onnx, say)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=30, help="rounds of one batch per net and thread count")
    ap.add_argument("--runs", type=int, default=7, help="timed ceiling calls (the best counts)")
    ap.add_argument("--docs")
    args = ap.parse_args()
    cv = dict(item.split("=", 1) for item in args.cv)
    threads_list = sorted({1, os.cpu_count() or 1})
    ceilings = {t: measured_ceiling(False, t, args.runs) for t in threads_list}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        nets = [(f"`{arch}`", *exported(arch, Path(tmp)), arch) for arch in ARCHS]
        for item in args.onnx:
            name, file = item.split("=", 1)
            arch = OnnxModel(file).meta["model"]["arch"]
            nets.append((f"{name} (`{arch}`, {Path(file).name})", Path(file), None, arch))
        rates, batch1 = interleaved([path for _, path, _, _ in nets], threads_list, args.batch, args.rounds)
        # the ceiling again after the models: the better of the two, so a busy moment lowers no ratio
        ceilings = {t: max(c, measured_ceiling(False, t, args.runs)) for t, c in ceilings.items()}
        for i, (label, path, params, arch) in enumerate(nets):
            macs = macs_per_face(path)
            accuracy = cv_summary(cv[arch]) if arch in cv else "not run"
            for threads in threads_list:
                fps = rates[i, threads]
                share = fps * macs / ceilings[threads]
                rows.append((label, params, macs / 1e6, threads, fps, fps * macs / 1e9, share, batch1[i], accuracy))
    lines = [f"Fresh-weight exports of each architecture (fp32, as `agegender export` writes them); faces/s at batch "
             f"{args.batch} through `OnnxModel.run` (on 2 threads: one slice per thread, as `predict` runs it) and ms "
             f"per face at batch 1 on one thread, each the median over {args.rounds} rounds that take every net in "
             f"turn ({BATCH1_CALLS} batch-1 calls a round); the ceiling is benchmarks/ceiling.py's fp32 one (the "
             "faster of a large MatMul and a 3 x 3 convolution, best of the runs before and after the nets). "
             "Accuracy: `agegender cv` on UTK-8, 5 folds, gender % / "
             "strict age group %, same recipe (`--recipe cpu`, no teacher); a trained file's row shows its "
             "architecture's.", "",
             "| threads | fp32 ceiling, G multiply-adds/s |", "|---:|---:|"]
    lines += [f"| {t} | {c / 1e9:.1f} |" for t, c in ceilings.items()]
    lines += ["", "| net | parameters | M multiply-adds / face | threads | faces/s, batch "
              f"{args.batch} | G multiply-adds/s | share of ceiling | ms / face, batch 1, 1 thread | "
              "5-fold CV, gender / strict age |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {a} | {f'{p:,}' if p else '-'} | {m:.1f} | {t} | {fps:,.0f} | {r:.1f} | **{s:.0%}** | {b:.3f} "
              f"| {acc} |" for a, p, m, t, fps, r, s, b, acc in rows]
    publish(args.docs, "Depthwise or dense: the small net against the compute ceiling", "\n".join(lines))


if __name__ == "__main__":
    main()
