"""Assemble a Markdown report (docs/report/report.md and its PNGs) from cv run folders.

Per run: the per-fold table, summed confusion matrices (and their PNG), the first fold's learning curve,
and, from each finished fold's re-predicted held-out faces, accuracy by age group / gender / UTKFace race,
calibration error and a Fig. 3-style grid of right and wrong faces.

The face analysis needs the folds' checkpoints, which live in run folders that may not outlive the machine
they were trained on; each run's analysis is therefore also kept beside the report (``NAME_faces.json``:
the folds it covers and its Markdown) and reused when the checkpoints at hand cover fewer folds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from agegender.reporting import report
from agegender.rundir import RunDir


def build_report(run_paths: list[str | os.PathLike], out_dir: str | os.PathLike, *, faces: bool = True,
                 threads: int | None = None, log: Callable[[str], None] = print) -> dict[str, dict]:
    """Write ``out_dir/report.md`` (+ PNGs); returns {run name: results} for further tables."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = {Path(r).name: (Path(r), report.load_run(r)) for r in run_paths}
    results_by_name = {n: r for n, (_, r) in runs.items()}
    lines = ["# Cross-validation report", "", report.summary_table(results_by_name), ""]
    for name, (run_dir, results) in runs.items():
        command = f"`{results['command']}`" if results.get("command") else "(in progress: no results.json yet)"
        lines += [f"## {name}", "", command, "", report.fold_table(results), "", report.confusions(results), ""]
        if results["folds"] and len(results["folds"][0].get("curve", [])) > 1:
            lines += ["Learning curve (first fold):", "", report.curve_table(results), ""]
        if results["summary"].get("folds_done"):
            report.plot_confusions(results["summary"], out / f"{name}_confusion.png", title=name)
            lines += [f"![confusion matrices]({name}_confusion.png)", ""]
        if faces:
            lines += face_analysis(name, run_dir, results, out, threads, log)
    if any(len(r["folds"][0].get("curve", [])) > 1 for r in results_by_name.values() if r["folds"]):
        report.plot_curves(results_by_name, out / "curves.png")
        lines += ["![learning curves](curves.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    return results_by_name


def face_analysis(name: str, run_dir: Path, results: dict, out: Path, threads: int | None,
                  log: Callable[[str], None] = print) -> list[str]:
    """Per-group accuracy, calibration and the Fig. 3 grid from the finished folds' held-out predictions."""
    from agegender.reporting.analysis import breakdown, calibration, fold_predictions

    finished = [f for f in results["folds"] if f.get("split") in ("test", "val")
                and RunDir(run_dir).fold_checkpoint(f["fold"]).exists()]
    kept = out / f"{name}_faces.json"
    if kept.is_file() and (out / f"{name}_examples.png").is_file():
        saved = json.loads(kept.read_text())
        if len(saved["folds"]) > len(finished):
            log(f"{name}: checkpoints of {len(finished)} fold(s) here; reusing the analysis of folds "
                f"{saved['folds']} from {kept}")
            return saved["lines"]
    if not finished:
        return []
    preds = []
    for f in finished:
        log(f"{name}: predictions of fold {f['fold']}")
        preds.append(fold_predictions(run_dir, results, f, threads=threads))
    report.plot_examples(preds[0], out / f"{name}_examples.png")
    folds = ", ".join(str(f["fold"]) for f in finished)
    ece = calibration(preds)
    calib = ("Calibration (expected calibration error, 15 bins; 0 = probabilities mean what they say): "
             + ", ".join(f"{t} {v:.1f} %" for t, v in ece.items()) + ".") if ece else ""
    lines = [f"Accuracy by group (held-out faces of folds {folds}, pooled):", "",
             report.breakdown_tables(breakdown(preds)), calib, "",
             f"Held-out faces of fold {finished[0]['fold']}, right and wrong (like the paper's Fig. 3):", "",
             f"![examples]({name}_examples.png)", ""]
    kept.write_text(json.dumps({"folds": [f["fold"] for f in finished], "lines": lines}, indent=1) + "\n")
    return lines
