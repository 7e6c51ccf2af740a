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
        # the same files 5 times over (symlinks): the extra 4n files give the rate once both have started
        big = Path(tmp) / "x5"
        for k in range(5):
            (big / str(k)).mkdir(parents=True)
            for p in args.folder.iterdir():
                if p.is_file():
                    (big / str(k) / p.name).symlink_to(p.resolve())
        single, s_summary = timed(["agegender", "predict", str(args.folder), "--format", "jsonl", "--out",
                                   f"{tmp}/a.jsonl", "--no-progress"])
        single5, _ = timed(["agegender", "predict", str(big), "--format", "jsonl", "--out", f"{tmp}/a5.jsonl",
                            "--no-progress"])
        ray_t, r_summary = timed(["agegender", "predict-ray", str(args.folder), "--out", f"{tmp}/b.jsonl"])
        ray5, _ = timed(["agegender", "predict-ray", str(big), "--out", f"{tmp}/b5.jsonl"])
        # as before the read tasks were bounded: Ray started a worker process per read task (8 here)
        many_t, m_summary = timed(["agegender", "predict-ray", str(args.folder), "--out", f"{tmp}/c.jsonl",
                                   "--readers", "8"])
    rate = lambda t1, t5: 4 * n / max(t5 - t1, 1e-9)  # noqa: E731
    start = lambda t1, t5: t1 - n / rate(t1, t5)  # noqa: E731
    lines = [f"{n} files from `{args.folder.name}`, default model and detector, as a user runs them (start-up "
             f"included), and the same files 5 times over ({5 * n}): the difference gives the rate once running "
             "and the fixed start-up cost.", "",
             f"| | wall s ({n} files) | files/s | wall s ({5 * n}) | files/s once running | start-up s | summary |",
             "|---|---:|---:|---:|---:|---:|---|",
             f"| `agegender predict FOLDER` (one process, thread pool) | {single:.1f} | {n / single:.1f} | "
             f"{single5:.1f} | {rate(single, single5):.1f} | {start(single, single5):.1f} | {s_summary} |",
             f"| `agegender predict-ray FOLDER` (local Ray, {os.cpu_count()} actors) | {ray_t:.1f} | {n / ray_t:.1f} | "
             f"{ray5:.1f} | {rate(ray_t, ray5):.1f} | {start(ray_t, ray5):.1f} | {r_summary} |",
             f"| `agegender predict-ray FOLDER --readers 8` | {many_t:.1f} | {n / many_t:.1f} | | | | {m_summary} |",
             "",
             f"Ratio predict-ray / predict: {single / ray_t:.2f} with start-up, "
             f"{rate(ray_t, ray5) / rate(single, single5):.2f} once running. On one machine Ray adds its start-up "
             "(the local instance, a worker process per actor "
             "and per read task: the `--readers 8` row shows what unbounded reads cost, as they were before the "
             "default became one reader per 8 actors) and its scheduling; it pays when the cluster has more cores "
             "than one machine."]
    publish(args.docs, "Batch prediction on Ray Data (predict-ray)", "\n".join(lines))


if __name__ == "__main__":
    main()
