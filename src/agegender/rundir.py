"""The layout of a cross-validation run folder, in one place:

    RUN/results.json                 the run: command, folds, summary (rewritten after every fold)
    RUN/fold_K/results.json          fold K finished: its metrics
    RUN/fold_K/checkpoint/           fold K's model (meta.json, model.safetensors, optimizer.pt)
    RUN/fold_K/log.jsonl             fold K's training log

cv writes it; report, the ablation, `--teacher` / `--init RUN` and the benchmarks read it through RunDir.
"""

from __future__ import annotations

import os
from pathlib import Path

RESULTS = "results.json"
CHECKPOINT = "checkpoint"


class RunDir:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @property
    def results(self) -> Path:
        return self.root / RESULTS

    def fold(self, k: int) -> Path:
        return self.root / f"fold_{k}"

    def fold_results(self, k: int) -> Path:
        return self.fold(k) / RESULTS

    def fold_checkpoint(self, k: int) -> Path:
        return self.fold(k) / CHECKPOINT

    def finished_folds(self) -> list[Path]:
        """results.json of every finished fold, in fold order."""
        return sorted(self.root.glob(f"fold_*/{RESULTS}"), key=_fold_number)

    def checkpoint_metas(self) -> list[Path]:
        """meta.json of every fold checkpoint (finished or still training), in fold order."""
        return sorted(self.root.glob(f"fold_*/{CHECKPOINT}/meta.json"), key=_fold_number)


def _fold_number(path: Path) -> int:
    part = next(p for p in path.parts[::-1] if p.startswith("fold_"))
    return int(part.removeprefix("fold_"))
