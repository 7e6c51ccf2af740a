"""Turn raw network outputs (numpy) into labels and probabilities. No torch: prediction uses it."""

from __future__ import annotations

import numpy as np

from agegender.labels import task_spec


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


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
