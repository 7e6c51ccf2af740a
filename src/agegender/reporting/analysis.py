"""Per-face predictions of a cv run's held-out faces, and accuracy broken down by group.

A fold's predictions are recomputed from its checkpoint on exactly the faces it was scored on (the
same reader, fold assignment and validation split as ``run_cv``) and cached as
``fold_K/predictions.npz``; the breakdowns and Fig. 3 are drawn from them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agegender.labels import AGE_GROUPS, MISSING, TASKS, age_group_strict
from agegender.metrics import expected_calibration_error, pct

PREDICTIONS = "predictions.npz"


@dataclass
class FoldPredictions:
    paths: list[str]
    labels: dict[str, np.ndarray]  # task -> (N,) true labels, MISSING where unknown
    pred: dict[str, np.ndarray]  # task -> (N,) predicted index
    probs: dict[str, np.ndarray]  # task -> (N, C) for softmax heads only

    def strict_age(self) -> np.ndarray:
        """The headline age label: the group an exact age lies in, MISSING for gap ages."""
        years = self.labels.get("age_years")
        if years is None:
            return self.labels["age"]
        return np.array([age_group_strict(a) if a != MISSING else MISSING for a in years], dtype=np.float32)


def held_out_records(results: dict, fold_result: dict):
    """The records a fold was scored on, rebuilt the way run_cv chose them."""
    from agegender.data.datasets import read_dataset
    from agegender.data.folds import assign_folds, fold_split

    info = results["dataset"]
    if info.get("protocol") == "levi":
        raise ValueError("per-face predictions of a Levi-list run are not rebuilt; rerun with the fold protocol")
    records, _ = read_dataset(info["dataset"], info["root"], image_root=info.get("image_root"), verbose=False)
    folds = assign_folds(records, results["k"], seed=results["fold_seed"])
    fold = fold_result["fold"]
    tune_val = results["tune_val"] if fold_result["split"] == "val" else 0.0
    _, index = fold_split(records, folds, fold, tune_val, results["fold_seed"])
    if len(index) != fold_result["n_eval"]:
        raise ValueError(f"fold {fold}: rebuilt {len(index)} held-out faces but the run scored "
                         f"{fold_result['n_eval']}: the data under {info['root']} changed")
    return [records[i] for i in index]


def fold_predictions(run_dir: str | os.PathLike, results: dict, fold_result: dict,
                     threads: int | None = None) -> FoldPredictions:
    """Load ``fold_K/predictions.npz`` or compute it from ``fold_K/checkpoint`` (needs torch)."""
    fold_dir = Path(run_dir) / f"fold_{fold_result['fold']}"
    cache = fold_dir / PREDICTIONS
    if not cache.is_file():
        import torch

        from agegender.data.faceset import build_faceset
        from agegender.decode import decode_task
        from agegender.training.checkpoint import load_checkpoint
        from agegender.training.engine import predict_outputs

        if threads:
            torch.set_num_threads(threads)
        records = held_out_records(results, fold_result)
        model, meta = load_checkpoint(fold_dir / "checkpoint")
        faces = build_faceset(records, meta["input"]["size"], tag=results["dataset"]["dataset"], progress=False)
        outputs = predict_outputs(model, faces.images)
        arrays: dict[str, np.ndarray] = {"paths": np.array([r.path for r in records])}
        for task, labels in faces.labels.items():
            arrays[f"label_{task}"] = labels
        for task, out in outputs.items():
            index, probs = decode_task(task, out)
            arrays[f"pred_{task}"] = index
            if probs is not None:
                arrays[f"probs_{task}"] = probs.astype(np.float32)
        tmp = fold_dir / "predictions.tmp.npz"
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, cache)
    with np.load(cache) as z:
        def pick(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix):]: z[k] for k in z.files if k.startswith(prefix)}
        return FoldPredictions([str(p) for p in z["paths"]], pick("label_"), pick("pred_"), pick("probs_"))


def breakdown(preds: list[FoldPredictions]) -> dict[str, list[dict]]:
    """Accuracy by true age group (strict: exact and 1-off), and by the classes of every categorical task
    of the registry the faces are labelled with (gender, UTKFace's race).

    Each row: {"group", "n", "gender_acc", "age_exact", "age_1off"} (percent; None where a task is absent).
    """
    labels = {t: np.concatenate([p.labels[t] for p in preds]) for t in preds[0].labels}
    pred = {t: np.concatenate([p.pred[t] for p in preds]) for t in preds[0].pred}
    strict = np.concatenate([p.strict_age() for p in preds])

    def row(name: str, mask: np.ndarray) -> dict:
        out: dict = {"group": name, "n": int(mask.sum()), "gender_acc": None, "age_exact": None, "age_1off": None}
        if "gender" in pred:
            m = mask & (labels["gender"] != MISSING)
            out["gender_acc"] = _pct(pred["gender"][m] == labels["gender"][m])
        if "age" in pred:
            m = mask & (strict != MISSING)
            out["age_exact"] = _pct(pred["age"][m] == strict[m])
            out["age_1off"] = _pct(np.abs(pred["age"][m] - strict[m]) <= 1)
            out["age_n"] = int(m.sum())
        return out

    everyone = np.ones(len(strict), dtype=bool)
    tables = {"all": [row("all", everyone)],
              "age group (strict)": [row(g, strict == i) for i, g in enumerate(AGE_GROUPS)]}
    for spec in TASKS.values():  # a table per class of every labelled categorical task (gender, race...)
        if spec.kind == "classes" and spec.name in labels and (labels[spec.name] != MISSING).any():
            title = f"{spec.name} ({spec.source})" if spec.source else spec.name
            tables[title] = [row(name, labels[spec.name] == i) for i, name in enumerate(spec.labels)]
    return tables


def calibration(preds: list[FoldPredictions]) -> dict[str, float]:
    """Expected calibration error (percent, 15 bins) of each softmax head, against the labels it was
    trained on (age: the nearest group of every face), pooled over folds."""
    out = {}
    for task in preds[0].probs:
        probs = np.concatenate([p.probs[task] for p in preds])
        labels = np.concatenate([p.labels[task] for p in preds])
        known = labels != MISSING
        out[task] = expected_calibration_error(probs[known], labels[known].astype(np.int64))
    return out


def _pct(hits: np.ndarray) -> float | None:
    return pct(hits, empty=None)
