"""Turn raw network outputs (numpy) into labels and probabilities. No torch: prediction uses it."""

from __future__ import annotations

import numpy as np

from agegender.labels import task_spec


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def merge_mirrored(plain: dict[str, np.ndarray], mirrored: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs of the faces and of their mirror images combined into one set of raw outputs (test-time
    augmentation): class probabilities are averaged (returned as log-probabilities, which
    ``decode_task``'s softmax turns back into exactly those averages), regressed values are averaged."""
    merged = {}
    for task, a in plain.items():
        b = mirrored[task]
        if a.ndim == 2:
            merged[task] = np.log((softmax(a.astype(np.float64)) + softmax(b.astype(np.float64))) / 2)
        else:
            merged[task] = (a.astype(np.float64) + b) / 2
    return merged


def decode_task(task: str, out: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(predicted index or value per sample, class probabilities or None).

    Logits (N, C) -> argmax of softmax; a regressed class index (N,) -> rounded and clipped to
    0..C-1 (the paper's head has no probabilities); a real-valued task -> the value itself.
    """
    spec = task_spec(task)
    if out.ndim == 2:
        probs = softmax(out.astype(np.float64))
        return probs.argmax(axis=1), probs
    if spec.categorical:
        return np.clip(np.rint(out), 0, spec.num_classes - 1).astype(np.int64), None
    return out.astype(np.float64), None
