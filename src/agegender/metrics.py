"""Accuracy metrics from predictions and labels (numpy only), and mean +- std over folds."""

from __future__ import annotations

import numpy as np

from agegender.labels import AGE_GROUPS, GENDERS, MISSING, TASKS, age_group_strict, task_spec


def confusion(true: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (true.astype(np.int64), pred.astype(np.int64)), 1)
    return m


def accuracy_report(pred: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict:
    """Metrics of predicted indices against labels; MISSING labels are not scored.

    gender_acc; age_exact / age_1off on the age labels given (for UTKFace: the nearest group of every
    face); when exact ages are known also age_strict_exact / age_strict_1off over the faces whose age
    lies inside an Adience group (the headline UTK-8 number). Accuracies in percent.
    """
    out: dict = {}
    if "gender" in pred and "gender" in labels:
        known = labels["gender"] != MISSING
        t, p = labels["gender"][known], pred["gender"][known]
        out["gender_acc"] = pct(p == t)
        out["gender_n"] = int(known.sum())
        out["gender_confusion"] = confusion(t, p, len(GENDERS)).tolist()
    if "age" in pred and "age" in labels:
        known = labels["age"] != MISSING
        t, p = labels["age"][known], pred["age"][known]
        out["age_exact"] = pct(p == t)
        out["age_1off"] = pct(np.abs(p - t) <= 1)
        out["age_n"] = int(known.sum())
        out["age_confusion"] = confusion(t, p, len(AGE_GROUPS)).tolist()
        if "age_years" in labels:
            strict = np.array([age_group_strict(a) if a != MISSING else MISSING for a in labels["age_years"]])
            ok = strict != MISSING
            out["age_strict_exact"] = pct(pred["age"][ok] == strict[ok])
            out["age_strict_1off"] = pct(np.abs(pred["age"][ok] - strict[ok]) <= 1)
            out["age_strict_n"] = int(ok.sum())
            out["age_strict_confusion"] = confusion(strict[ok], pred["age"][ok], len(AGE_GROUPS)).tolist()
    if "age_years" in pred and "age_years" in labels:
        known = labels["age_years"] != MISSING
        out["age_years_mae"] = float(np.abs(pred["age_years"][known] - labels["age_years"][known]).mean())
    for task in pred:  # every further categorical task of the registry (e.g. race): its accuracy
        if task in ("age", "gender") or task not in labels or not task_spec(task).categorical:
            continue
        known = labels[task] != MISSING
        out[f"{task}_acc"] = pct(pred[task][known] == labels[task][known])
        out[f"{task}_n"] = int(known.sum())
    return out


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
    keys = ["gender_acc", "age_strict_exact", "age_strict_1off", "age_exact", "age_1off", "age_years_mae"]
    keys += [f"{t}_acc" for t in TASKS if t not in ("age", "gender") and task_spec(t).categorical]
    return [k for k in keys if k in report]


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
