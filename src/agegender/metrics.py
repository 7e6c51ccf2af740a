"""Accuracy metrics from predictions and labels (numpy only), and mean +- std over folds."""

from __future__ import annotations

import numpy as np

from agegender.labels import MISSING, TASKS, age_group_strict, task_spec


def confusion(true: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (true.astype(np.int64), pred.astype(np.int64)), 1)
    return m


def accuracy_report(pred: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict:
    """Metrics of predicted indices (or values) against labels, per task of the registry, by its kind;
    MISSING labels are not scored. Accuracies in percent.

    classes: TASK_acc, TASK_n, TASK_confusion. ordinal: TASK_exact, TASK_1off, TASK_n, TASK_confusion on
    the labels given (for UTKFace: the nearest group of every face), and where the exact values of its
    ``exact_from`` task are known also TASK_strict_exact / _1off / _n / _confusion over the faces whose
    value lies inside a group (the headline UTK-8 number). years: TASK_mae.
    """
    out: dict = {}
    for task in [t for t in TASKS if t in pred and t in labels]:  # registry order: stable key order
        spec = task_spec(task)
        known = labels[task] != MISSING
        t, p = labels[task][known], pred[task][known]
        if spec.kind == "years":
            out[f"{task}_mae"] = float(np.abs(p - t).mean())
        elif spec.kind == "classes":
            out[f"{task}_acc"] = pct(p == t)
            out[f"{task}_n"] = int(known.sum())
            out[f"{task}_confusion"] = confusion(t, p, spec.num_classes).tolist()
        else:
            out.update(_ordinal(task, t, p, spec.num_classes))
            if spec.exact_from in labels:
                strict = np.array([age_group_strict(a) if a != MISSING else MISSING for a in labels[spec.exact_from]])
                ok = strict != MISSING
                out.update(_ordinal(f"{task}_strict", strict[ok], pred[task][ok], spec.num_classes))
    return out


def _ordinal(key: str, true: np.ndarray, pred: np.ndarray, n: int) -> dict:
    return {f"{key}_exact": pct(pred == true), f"{key}_1off": pct(np.abs(pred - true) <= 1),
            f"{key}_n": int(true.size), f"{key}_confusion": confusion(true, pred, n).tolist()}


def pct(hits: np.ndarray, empty: float | None = float("nan")) -> float | None:
    """Share of True in percent; ``empty`` when there is nothing to count."""
    return float(100.0 * hits.mean()) if hits.size else empty


def format_mean_std(v: dict, digits: int = 1) -> str:
    """``mean_std``'s dict as "m ± s", or "m" alone for one fold (no spread to show)."""
    return f"{v['mean']:.{digits}f} ± {v['std']:.{digits}f}" if v["n"] > 1 else f"{v['mean']:.{digits}f}"


def mean_std(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0, "n": int(a.size)}


def headline_keys(report: dict) -> list[str]:
    """The registry's headline metrics that ``report`` holds, in registry order."""
    return [k for spec in TASKS.values() for k in spec.headline if k in report]


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE in percent: the gap between confidence (top probability) and accuracy, averaged over equal-width
    confidence bins weighted by their share of samples. 0 = the probabilities mean what they say."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"expected probs (N, C) and labels (N,), got {probs.shape} and {labels.shape}")
    if len(labels) == 0:
        return float("nan")
    conf = probs.max(axis=1)
    hit = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        sel = index == b
        if sel.any():
            gap += sel.mean() * abs(conf[sel].mean() - hit[sel].mean())
    return float(100.0 * gap)


# --- over folds (cv writes these into results.json; report reads them back) ---------------------------

def curve_rows(history: list[dict]) -> list[dict]:
    """The per-epoch numbers a results file keeps: loss, evaluation, train/eval shift, live FC units."""
    return [{k: v for k, v in h.items() if k.startswith(("eval_", "loss", "shift_", "alive_")) or k == "epoch"}
            for h in history]


def summarize(fold_results: list[dict]) -> dict:
    """Mean +- std over folds of each headline metric, and the summed confusion matrices."""
    if not fold_results:
        return {}
    summary = {}
    for key in headline_keys(fold_results[0]["metrics"]):
        summary[key] = mean_std([r["metrics"][key] for r in fold_results])
    for key in ("gender_confusion", "age_confusion", "age_strict_confusion"):
        if key in fold_results[0]["metrics"]:
            summary[key] = np.sum([r["metrics"][key] for r in fold_results], axis=0).tolist()
    names = sorted({name for r in fold_results for name in r.get("extra_metrics", {})})
    for name in names:  # held-out parts of --extra datasets, e.g. CelebA people never trained on
        scored = [r["extra_metrics"][name] for r in fold_results if name in r.get("extra_metrics", {})]
        summary.setdefault("extra", {})[name] = {key: mean_std([m[key] for m in scored])
                                                 for key in headline_keys(scored[0])}
    summary["folds_done"] = sorted(r["fold"] for r in fold_results)
    return summary
