"""Memory of `agegender predict` over a large folder: streamed results keep it flat.

Runs the CLI on a small folder and on a large one (UTKFace: 19,969 files) with the aligned-face path
(no detector, so the model and the decode pool are what is measured) and samples the process's resident
memory (VmRSS) every 0.2 s. Flat means the peak on 20,000 files is about the peak on 200.

    python benchmarks/predict_memory.py --small ../shared/data/utkface_200 --large ../shared/data/utkface \\
        --docs docs/BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from agegender.inference.predict import iter_image_files
from agegender.provenance import publish


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run(folder: str, out: Path, extra: list[str]) -> dict:
    exe = shutil.which("agegender") or sys.exit("agegender is not installed")
    cmd = [exe, "predict", folder, "--aligned", "--format", "jsonl", "--out", str(out), "--no-progress", *extra]
    samples: list[tuple[float, float]] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def sample():
        while proc.poll() is None:
            v = rss_mb(proc.pid)
            if v is not None:
                samples.append((time.perf_counter() - t0, v))
            time.sleep(0.2)

    th = threading.Thread(target=sample)
    th.start()
    _, err = proc.communicate()
    th.join()
    seconds = time.perf_counter() - t0
    lines = sum(1 for _ in out.open())
    if proc.returncode not in (0, 1):
        sys.exit(f"predict failed on {folder}: {err[-2000:]}")
    files = sum(1 for _ in iter_image_files([folder]))
    rss = [v for _, v in samples]
    quarter = [rss[min(len(rss) - 1, int(q * len(rss)))] for q in (0.25, 0.5, 0.75)] if rss else []
    return {"folder": folder, "files": files, "records": lines, "seconds": seconds,
            "files_per_s": files / seconds, "peak_mb": max(rss) if rss else float("nan"), "quarters_mb": quarter}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", default="../shared/data/utkface_200")
    ap.add_argument("--large", default="../shared/data/utkface")
    ap.add_argument("--threads", type=int, help="ONNX Runtime threads (default: all cores)")
    ap.add_argument("--docs", help="write the table as a section of this Markdown file")
    args = ap.parse_args()
    extra = ["--threads", str(args.threads)] if args.threads else []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("small", "large"):
            rows.append(run(getattr(args, name), Path(tmp) / f"{name}.jsonl", extra))
    lines = ["| input | files | JSONL records | wall s | files/s | peak RSS MB | RSS at 25 / 50 / 75 % of the run MB |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        quarters = " / ".join(f"{v:.0f}" for v in r["quarters_mb"])
        lines.append(f"| {r['folder']} | {r['files']:,} | {r['records']:,} | {r['seconds']:.1f} "
                     f"| {r['files_per_s']:.0f} | {r['peak_mb']:.0f} | {quarters} |")
    ratio = rows[1]["peak_mb"] / rows[0]["peak_mb"]
    body = "\n".join(lines) + (f"\n\nPeak memory on {rows[1]['files']:,} files is {ratio:.2f}x the peak on "
                               f"{rows[0]['files']:,} files (bundled model, `--aligned`, default batch 64).")
    publish(args.docs, "Streaming prediction memory", body)


if __name__ == "__main__":
    main()
