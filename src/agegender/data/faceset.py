"""A FaceSet: decoded faces (N, S, S, 3) uint8 plus one label array per task. No torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agegender.data.cache import load_images
from agegender.data.readers import Record
from agegender.labels import MISSING


@dataclass
class FaceSet:
    images: np.ndarray  # (N, S, S, 3) uint8, RGB
    labels: dict[str, np.ndarray]  # task -> (N,) float32, MISSING where unknown
    records: list[Record]

    def __len__(self) -> int:
        return len(self.records)

    def subset(self, index) -> FaceSet:
        index = np.asarray(index, dtype=np.int64)
        return FaceSet(self.images[index], {t: v[index] for t, v in self.labels.items()},
                       [self.records[i] for i in index])

    @staticmethod
    def concat(sets: list[FaceSet]) -> FaceSet:
        tasks = sorted({t for s in sets for t in s.labels})
        labels = {t: np.concatenate([s.labels.get(t, np.full(len(s), MISSING, np.float32)) for s in sets])
                  for t in tasks}
        return FaceSet(np.concatenate([np.asarray(s.images) for s in sets]), labels,
                       [r for s in sets for r in s.records])


def label_arrays(records: list[Record], tasks: set[str] | None = None) -> dict[str, np.ndarray]:
    tasks = tasks or {t for r in records for t in r.labels}
    return {t: np.array([r.label(t) for r in records], dtype=np.float32) for t in sorted(tasks)}


def build_faceset(records: list[Record], size: int, tag: str, progress: bool = True) -> FaceSet:
    images = load_images([r.path for r in records], size, tag=tag, progress=progress)
    return FaceSet(images, label_arrays(records), records)
