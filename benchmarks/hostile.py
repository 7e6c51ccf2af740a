"""The generated hostile corpus (tests/fixtures.hostile_corpus) through `agegender predict` and the service.

    python benchmarks/hostile.py [--docs docs/BENCHMARKS.md]

Counts: files, bad files with one clear error record naming them, good files predicted (detection may find no
face in a generated face: counted apart), tracebacks, inputs modified.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from fixtures import hostile_corpus  # noqa: E402

from agegender.inference.predict import Predictor  # noqa: E402
from agegender.provenance import publish  # noqa: E402
from agegender.serve import create_app, running  # noqa: E402


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def tally(records: list[dict], kinds: dict[str, str]) -> dict[str, int]:
    by: dict[str, list] = {}
    for r in records:
        by.setdefault(r["path"].rsplit("/", 1)[-1], []).append(r)
    bad = [n for n, k in kinds.items() if k == "bad"]
    good = [n for n, k in kinds.items() if k == "ok"]
    return {"records for files": len(by), "bad with one clear error": sum(
                len(by.get(n, [])) == 1 and n in by[n][0].get("error", "") for n in bad),
            "good predicted": sum(all("error" not in r for r in by.get(n, [{"error": ""}])) for n in good),
            "good with no face found": sum(any(r.get("error", "").endswith("no face found") for r in by.get(n, []))
                                           for n in good)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        kinds = hostile_corpus(folder)
        before = digests(folder)
        rows = []
        for label, extra in (("predict FOLDER (detection)", []), ("predict FOLDER --aligned", ["--aligned"])):
            run = subprocess.run(["agegender", "predict", str(folder), "--format", "jsonl", "--no-progress", *extra],
                                 capture_output=True, text=True)
            records = [json.loads(line) for line in run.stdout.splitlines()]
            rows.append((label, tally(records, kinds), "Traceback" in run.stderr, run.returncode))
        boundary = uuid.uuid4().hex
        body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{n}"\r\n\r\n'
                        .encode() + (folder / n).read_bytes() + b"\r\n" for n in kinds) + f"--{boundary}--\r\n".encode()
        with running(create_app(Predictor(), max_bytes=64 * 2**20)) as address:
            conn = http.client.HTTPConnection(*address, timeout=300)
            conn.request("POST", "/predict", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
            resp = conn.getresponse()
            out = json.loads(resp.read())
        rows.append(("serve, one multipart request (detection)", tally(out["results"], kinds), False, resp.status))
        modified = sum(before[n] != h for n, h in digests(folder).items())
    n_bad = sum(k == "bad" for k in kinds.values())
    lines = [f"{len(kinds)} files ({n_bad} bad: truncated, bit-flipped, zero-byte, not an image, "
             "a 100000x100000 PNG bomb; "
             f"{len(kinds) - n_bad} good: CMYK, 16-bit, palette, alpha, 8 EXIF orientations, animated GIF, "
             "2-page TIFF, 1x1, 4000x3000, 50 faces in one picture, odd names). The good ones are generated "
             "faces: the detector need not find them, and `--aligned` reads each as one face.", "",
             "| path | records for files | bad with one clear error | good predicted | good: no face found | "
             "tracebacks | exit / status |", "|---|---:|---:|---:|---:|---|---|"]
    for label, t, tb, code in rows:
        lines.append(f"| {label} | {t['records for files']} / {len(kinds)} | {t['bad with one clear error']} / "
                     f"{n_bad} | {t['good predicted']} | {t['good with no face found']} | {'yes' if tb else 'none'} "
                     f"| {code} |")
    lines += ["", f"Inputs modified: {modified} of {len(kinds)}."]
    publish(args.docs, "Hostile input corpus", "\n".join(lines))


if __name__ == "__main__":
    main()
