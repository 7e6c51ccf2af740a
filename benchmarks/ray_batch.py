"""`agegender predict-ray` (local Ray instance, all cores) against `agegender predict FOLDER`, same files, same run.

    python benchmarks/ray_batch.py [--folder ../shared/data/fairface_ood/images] [--docs docs/BENCHMARKS.md]

Both as a user runs them (the CLI, start-up included); files/s and the ratio.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from agegender.provenance import publish  # noqa: E402

FAIRFACE = Path(__file__).resolve().parents[2] / "shared" / "data" / "fairface_ood" / "images"


def timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    dt = time.perf_counter() - t
    if run.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed: {run.stderr[-2000:]}")
    return dt, run.stderr.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folder", type=Path, default=FAIRFACE)
    ap.add_argument("--docs")
    args = ap.parse_args()
    n = sum(1 for p in args.folder.iterdir() if p.is_file())
    with tempfile.TemporaryDirectory() as tmp:
        single, s_summary = timed(["agegender", "predict", str(args.folder), "--format", "jsonl", "--out",
                                   f"{tmp}/a.jsonl", "--no-progress"])
        ray_t, r_summary = timed(["agegender", "predict-ray", str(args.folder), "--out", f"{tmp}/b.jsonl"])
    lines = [f"{n} files from `{args.folder.name}`, default model and detector, start-up included.", "",
             "| | wall s | files/s | summary |", "|---|---:|---:|---|",
             f"| `agegender predict FOLDER` (one process, thread pool) | {single:.1f} | {n / single:.1f} | "
             f"{s_summary} |",
             f"| `agegender predict-ray FOLDER` (local Ray, {os.cpu_count()} actors) | {ray_t:.1f} | {n / ray_t:.1f} | "
             f"{r_summary} |", "",
             f"Ratio predict-ray / predict: {single / ray_t:.2f}. On one machine Ray adds its start-up and "
             "scheduling; it pays when the cluster has more cores than one machine."]
    publish(args.docs, "Batch prediction on Ray Data (predict-ray)", "\n".join(lines))


if __name__ == "__main__":
    main()
