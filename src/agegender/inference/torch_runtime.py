"""Run a training checkpoint folder with PyTorch behind the same interface as runtime.OnnxModel."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from agegender.training.checkpoint import load_checkpoint


class TorchModel:
    def __init__(self, folder: str | os.PathLike, threads: int | None = None):
        if threads:
            torch.set_num_threads(threads)
        self.path = Path(folder)
        self.model, self.meta = load_checkpoint(folder)
        self.size = int(self.meta["input"]["size"])
        self.tasks = list(self.meta["model"]["tasks"])
        self.labels = self.meta["labels"]
        self.head = self.meta["model"]["head"]
        self.precision = "fp32"  # a checkpoint runs in PyTorch, in fp32

    @torch.no_grad()
    def run(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(faces)).permute(0, 3, 1, 2).float()
        return {t: v.float().numpy() for t, v in self.model(x).items()}
