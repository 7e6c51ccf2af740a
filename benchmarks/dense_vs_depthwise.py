"""The small nets side by side: depthwise-separable ``lite`` (what `fast` is) against ``lite-dense``, the same
budget in dense 3x3 convolutions: share of the compute ceiling, speed, and cross-validated accuracy, in one run.

    python benchmarks/dense_vs_depthwise.py --cv lite=docs/results/cv-lite \
        --cv lite-dense=docs/results/cv-lite-dense --docs docs/BENCHMARKS.md

Each architecture is built with fresh weights and exported the way `agegender export` writes a float file
(the time of an fp32 graph does not depend on its weights), then timed like benchmarks/ceiling.py: aligned
64 px faces through ``OnnxModel.run`` at batch 128 on 1 and on all threads, and at batch 1 on one thread, beside
the fp32 ceiling measured in the same run. ``--cv ARCH=RUN`` adds a finished `agegender cv` run's 5-fold
accuracy (gender, strict age group) for that architecture.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundled_precision import speed  # noqa: E402
from ceiling import faces_per_second, macs_per_face, measured_ceiling  # noqa: E402

from agegender.config import ModelConfig  # noqa: E402
from agegender.export import export_onnx  # noqa: E402
from agegender.inference.runtime import OnnxModel  # noqa: E402
from agegender.models import count_parameters, create_model  # noqa: E402
from agegender.provenance import publish  # noqa: E402
from agegender.training.checkpoint import save_checkpoint  # noqa: E402

ARCHS = ("lite", "lite-dense")


def exported(arch: str, folder: Path) -> tuple[Path, int]:
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, head="cls")
    model = create_model(cfg).eval()
    path = folder / f"{arch}.onnx"
    export_onnx(save_checkpoint(folder / arch, model, cfg), path)
    return path, count_parameters(model)


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
    ap.add_argument("--seconds", type=float, default=4.0)
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
            meta = OnnxModel(file).meta
            arch = meta["model"]["arch"]
            nets.append((f"{name} (`{arch}`, {Path(file).name})", Path(file), None, arch))
        for label, path, params, arch in nets:
            macs = macs_per_face(path)
            batch1 = speed(path, 1, args.seconds)
            accuracy = cv_summary(cv[arch]) if arch in cv else "not run"
            for threads in threads_list:
                fps = faces_per_second(path, threads, args.batch, args.seconds)
                share = fps * macs / ceilings[threads]
                rows.append((label, params, macs / 1e6, threads, fps, fps * macs / 1e9, share, batch1, accuracy))
    lines = [f"Fresh-weight exports of each architecture (fp32, as `agegender export` writes them); faces/s at batch "
             f"{args.batch} through `OnnxModel.run`, median over {args.seconds:g} s; ms per face at batch 1 on one "
             "thread; the ceiling is benchmarks/ceiling.py's fp32 one (the faster of a large MatMul and a 3 x 3 "
             "convolution), measured in the same run. Accuracy: `agegender cv` on UTK-8, 5 folds, gender % / "
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
