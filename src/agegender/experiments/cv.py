"""k-fold cross-validation: one training per fold, results per fold and mean +- std, resumable fold by fold."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from agegender.config import ModelConfig, TrainConfig
from agegender.data.faceset import FaceSet, build_faceset
from agegender.data.folds import assign_folds, fold_split, scored_split
from agegender.data.readers import Record
from agegender.metrics import curve_rows, summarize
from agegender.provenance import commit, machine_line
from agegender.rundir import RunDir
from agegender.training.engine import bf16_supported, evaluate
from agegender.training.train import dist_info, fit


def run_info() -> dict:
    return {"commit": commit(short=False), "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine_line(),
            "python": platform.python_version()}


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def run_cv(records: list[Record], data_info: dict, model_cfg: ModelConfig, train_cfg: TrainConfig,
           out_dir: str | os.PathLike, *, k: int = 5, fold_seed: int = 0, only_folds: list[int] | None = None,
           tune_val: float = 0.0, eval_every: int = 0, command: str = "", progress: bool = True,
           splits: list[tuple[np.ndarray, np.ndarray]] | None = None,
           extras: list[tuple[str, list[Record]]] = (), teacher_run: str | os.PathLike | None = None,
           init_run: str | os.PathLike | None = None, log=print) -> dict:
    """Train and test each fold; write ``out/fold_K/results.json`` and ``out/results.json``.

    Folds whose results exist are skipped (resume); an interrupted fold resumes from its checkpoint.
    With ``tune_val`` > 0 each fold's *training part* is split into train / validation and only the
    validation split is scored: the test fold is not touched (for choosing lr and schedule).
    ``splits`` gives explicit (train indices, test indices) per fold instead (Levi & Hassner's lists).
    ``extras`` are more datasets (name, records), e.g. CelebA gender crops: each is split into the same
    number of folds by its own groups (CelebA: by person), fold K trains on the main training part plus
    every extra's training part, and each extra's held-out part is scored separately
    (``extra_metrics``); the headline metrics stay those of the main dataset's test fold.
    ``teacher_run``: a finished cv run (cls heads) with the same folds; fold K distils from its fold K,
    which never saw fold K's test faces. ``init_run``: likewise, fold K starts from the weights of its
    fold K (fine-tuning, e.g. on more data).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if splits is None:
        folds = np.array(assign_folds(records, k, seed=fold_seed))
        splits = [(np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in range(k)]
    run = _Run(records, data_info, model_cfg, train_cfg, RunDir(out), splits, fold_seed, tune_val, eval_every,
               command, progress, log, extras, teacher_run, init_run)
    for fold in range(len(splits)):
        done = run.dir.fold_results(fold)
        selected = only_folds is None or fold in only_folds
        if done.is_file():  # finished earlier (or by a parallel run): still part of the summary
            if selected:
                log(f"fold {fold}: results exist, skipped")
            run.fold_results[fold] = json.loads(done.read_text())
            continue
        if not selected:
            continue
        if run.fold_results:
            run.write_summary()
        run.train_fold(fold)
    return run.write_summary()


@dataclass
class _Run:
    """One cross-validation run: its data (built once), its folds, and the results so far."""

    records: list[Record]
    data_info: dict
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    dir: RunDir
    splits: list[tuple[np.ndarray, np.ndarray]]
    fold_seed: int
    tune_val: float
    eval_every: int
    command: str
    progress: bool
    log: Callable[[str], None]
    extras: list[tuple[str, list[Record]]]
    teacher_run: str | os.PathLike | None
    init_run: str | os.PathLike | None
    fold_results: dict[int, dict] = field(default_factory=dict)  # fold -> its results

    def __post_init__(self):
        self.k = len(self.splits)
        self.rank, _ = dist_info()
        size = self.model_cfg.input_size
        self.faces = build_faceset(self.records, size, tag=self.data_info["dataset"], progress=self.progress)
        self.extra_sets = []  # (name, records, faces, fold per face)
        for name, extra_records in self.extras:
            extra_folds = np.array(assign_folds(extra_records, self.k, seed=self.fold_seed))
            extra_faces = build_faceset(extra_records, size, tag=name, progress=self.progress)
            self.extra_sets.append((name, extra_records, extra_faces, extra_folds))
        self.t0 = time.perf_counter()

    def write_summary(self) -> dict:
        """out/results.json with every fold finished so far: rewritten after each fold, so a run that is
        still going (or was stopped) can be reported on. Folds finished meanwhile by a parallel run
        (``--only-folds`` on another core) are read back from disk, so neither run drops the other's."""
        for f in range(self.k):
            other = self.dir.fold_results(f)
            if f not in self.fold_results and other.is_file():
                self.fold_results[f] = json.loads(other.read_text())
        folds = [self.fold_results[f] for f in sorted(self.fold_results)]
        results = {
            "command": self.command, "dataset": self.data_info, "k": self.k, "fold_seed": self.fold_seed,
            "fold_sizes": [len(test) for _, test in self.splits],
            "model": self.model_cfg.to_dict(), "train": self.train_cfg.to_dict(), "tune_val": self.tune_val,
            "summary": summarize(folds), "folds": folds,
            "wall_seconds_this_session": time.perf_counter() - self.t0, **run_info(),
        }
        if self.rank == 0:
            write_json(self.dir.results, results)
        return results

    def _fold_cfg(self, fold: int) -> TrainConfig:
        cfg = self.train_cfg
        if self.teacher_run is not None:
            cfg = dataclasses.replace(cfg, teacher=str(run_fold(self.teacher_run, fold, self.k, self.fold_seed,
                                                                "teacher")))
        if self.init_run is not None:
            cfg = dataclasses.replace(cfg, init=str(run_fold(self.init_run, fold, self.k, self.fold_seed, "init")))
        return cfg

    def train_fold(self, fold: int) -> dict:
        train_idx, test_idx = scored_split(self.records, *self.splits[fold], self.tune_val, self.fold_seed)
        split = "val" if self.tune_val > 0 else "test"
        extra_parts = []  # (name, faces, training indices, scored indices) of each extra for this fold
        for name, extra_records, extra_faces, f in self.extra_sets:
            # with tune_val the extra's test people stay untouched too: score people carved from its training part
            extra_train, extra_eval = fold_split(extra_records, f, fold, self.tune_val, self.fold_seed)
            extra_parts.append((name, extra_faces, extra_train, extra_eval))
        train_set = self.faces.subset(train_idx)
        if extra_parts:
            train_set = FaceSet.concat([train_set] + [s.subset(tr) for _, s, tr, _ in extra_parts])
        self.log(f"fold {fold}: {len(train_idx)} train / {len(test_idx)} {split}"
                 + "".join(f"; {name}: {len(tr)} train / {len(ev)} {split}" for name, _, tr, ev in extra_parts))
        started = time.perf_counter()
        res = fit(self.model_cfg, self._fold_cfg(fold), train_set, self.dir.fold(fold), self.faces.subset(test_idx),
                  resume=True, eval_every=self.eval_every, progress=self.progress, log=self.log)
        cfg, history = self.train_cfg, res["history"]
        extra_metrics = {}
        if self.rank == 0:
            for name, extra_faces, _, scored in extra_parts:  # each extra's held-out people, scored on its own
                held_out = extra_faces.subset(scored)
                extra_metrics[name], _ = evaluate(res["model"], held_out, bf16=cfg.bf16,
                                                  channels_last=cfg.channels_last)
                extra_metrics[name]["n_eval"] = len(held_out)
        result = {
            "fold": fold, "split": split, "n_train": len(train_idx), "n_eval": len(test_idx),
            "metrics": res["metrics"],
            **({"extra_metrics": extra_metrics, "n_train_extra": len(train_set) - len(train_idx), "extra_split": split}
               if self.extra_sets else {}),
            "epochs": cfg.epochs,
            # what ran, not what was asked: bf16 autocast is skipped on a CPU without native bf16
            "precision": "bf16 autocast" if cfg.bf16 and bf16_supported() else "fp32",
            "train_seconds": float(sum(h["train_seconds"] for h in history)),
            "train_images_per_s": float(np.median([h["train_images_per_s"] for h in history])),
            "wall_seconds_this_session": time.perf_counter() - started,
            "curve": curve_rows(history),
            **run_info(),
        }
        if self.rank == 0:  # under torchrun only rank 0 evaluates and writes
            write_json(self.dir.fold_results(fold), result)
        self.fold_results[fold] = result
        return result


def run_fold(run: str | os.PathLike, fold: int, k: int, fold_seed: int, role: str = "teacher") -> Path:
    """The checkpoint of another cv run's fold ``fold`` (a teacher, or the weights to start from), after
    checking it is finished and split alike, so that it never saw this fold's test faces."""
    run = RunDir(run)
    done = run.fold_results(fold)
    if not done.is_file():
        raise FileNotFoundError(f"{role} run {run}: fold {fold} is not finished ({done} missing)")
    summary = run.results
    if summary.is_file():
        info = json.loads(summary.read_text())
        if (info.get("k"), info.get("fold_seed")) != (k, fold_seed):
            raise ValueError(f"{role} run {run}: folds k={info.get('k')} seed={info.get('fold_seed')}, this run "
                             f"k={k} seed={fold_seed}: its fold {fold} may have trained on this fold's test faces")
    return run.fold_checkpoint(fold)


def format_summary(summary: dict) -> str:
    lines = []
    for key, v in summary.items():
        if isinstance(v, dict) and "mean" in v:
            lines.append(f"{key:>18}: {v['mean']:.2f} +- {v['std']:.2f}  (n={v['n']} folds)")
    for name, metrics in summary.get("extra", {}).items():
        for key, v in metrics.items():
            lines.append(f"{name + ' ' + key:>18}: {v['mean']:.2f} +- {v['std']:.2f}  (n={v['n']} folds, held out)")
    return "\n".join(lines)

