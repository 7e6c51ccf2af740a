"""Table 3: single-task nets of 3-6 conv layers against the multi-task net, same folds, same schedule.

Rows (12): the paper's ten, single-task age and single-task gender with the paper's ``reg`` head at 3, 4,
5, 6 conv layers and the 4-conv multi-task net with the ``reg`` head and with the ``cls`` head; and two of
ours, single-task age and gender at 4 conv layers with ``cls`` heads, so that the multi-task ``cls`` net
(the head the bundled model uses) has single-task nets to be compared with. Every row is an
ordinary ``run_cv`` under ``OUT/<row>/``; the loop runs fold-major (fold 0 of every row, then fold 1, ...)
so that an interrupted ablation leaves a table with every row at the same number of folds, and a rerun
skips finished folds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agegender.config import ModelConfig, TrainConfig
from agegender.data.readers import Record
from agegender.experiments.cv import run_cv
from agegender.labels import task_spec
from agegender.metrics import format_mean_std, mean_std
from agegender.rundir import RESULTS


@dataclass(frozen=True)
class AblationRow:
    name: str
    tasks: tuple[str, ...]
    conv_layers: int
    head: str

    def model_config(self, fc_norm: bool = True) -> ModelConfig:
        return ModelConfig(tasks=self.tasks, conv_layers=self.conv_layers, head=self.head, fc_norm=fc_norm)


ROWS: tuple[AblationRow, ...] = (
    *(AblationRow(f"age-{n}conv", ("age",), n, "reg") for n in (3, 4, 5, 6)),
    *(AblationRow(f"gender-{n}conv", ("gender",), n, "reg") for n in (3, 4, 5, 6)),
    AblationRow("multi-reg-4conv", ("age", "gender"), 4, "reg"),
    AblationRow("age-cls-4conv", ("age",), 4, "cls"),
    AblationRow("gender-cls-4conv", ("gender",), 4, "cls"),
    AblationRow("multi-cls-4conv", ("age", "gender"), 4, "cls"),
)


# The paper's Table 3 (Adience, 5-fold; mean ± std %), gender / age exact, for the rows it has. Its
# single-task rows are regression nets, as ours with the reg head; its multi-task row is the joint L2 net.
PAPER_TABLE3: dict[str, tuple[str, str]] = {
    "age-3conv": ("", "47.6 ± 0.8"), "age-4conv": ("", "48.3 ± 0.7"),
    "age-5conv": ("", "49.0 ± 0.5"), "age-6conv": ("", "49.7 ± 0.6"),
    "gender-3conv": ("83.7 ± 0.7", ""), "gender-4conv": ("84.4 ± 0.5", ""),
    "gender-5conv": ("85.0 ± 1.0", ""), "gender-6conv": ("85.3 ± 0.8", ""),
    "multi-reg-4conv": ("86.0 ± 1.2", "46.0 ± 1.1"),
}


def select_rows(names: list[str] | None) -> tuple[AblationRow, ...]:
    if not names:
        return ROWS
    known = {r.name: r for r in ROWS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown ablation rows {unknown}; known: {', '.join(known)}")
    return tuple(known[n] for n in names)


def run_ablation(records: list[Record], data_info: dict, train_cfg: TrainConfig, out_dir: str | os.PathLike,
                 *, rows: tuple[AblationRow, ...] = ROWS, fc_norm: bool = True, k: int = 5,
                 folds: list[int] | None = None, fold_seed: int = 0, command: str = "", progress: bool = True,
                 log: Callable[[str], None] = print) -> None:
    out = Path(out_dir)
    for fold in folds if folds is not None else range(k):
        for row in rows:
            log(f"ablation: fold {fold}, row {row.name}")
            run_cv(records, data_info, row.model_config(fc_norm), train_cfg, out / row.name, k=k, fold_seed=fold_seed,
                   only_folds=[fold], command=command, progress=progress, log=log)


def load_row_folds(row_dir: Path) -> list[dict]:
    """Every finished fold's results under ``row_dir`` (read from disk, so parallel runs all count): a run
    folder's ``fold_K/results.json``, or the ``fold_K.json`` files of results committed under docs/results."""
    found = {}
    for path in sorted(row_dir.glob("fold_*.json")) + sorted(row_dir.glob("fold_*/" + RESULTS)):
        res = json.loads(path.read_text())
        found[res["fold"]] = res
    return [found[k] for k in sorted(found)]


def _cell(folds: list[dict], key: str) -> str:
    values = [f["metrics"][key] for f in folds if key in f["metrics"]]
    if not values:
        return ""
    return format_mean_std(mean_std(values))


def _pct(metrics: dict, key: str) -> str:
    return f"{metrics[key]:.1f}" if key in metrics else ""


def _gain(long: dict, short: dict, key: str) -> str:
    return f"{long[key] - short[key]:+.1f}" if key in long and key in short else "-"


def schedule_table(out_dir: str | os.PathLike, long_runs: list[str | os.PathLike]) -> str:
    """Markdown: ablation rows at the short schedule against full cv runs of the same net, tasks and head
    (the headline schedule), fold by fold, on the folds both have finished."""
    out = Path(out_dir)
    lines = ["| net | fold | short: epochs | gender % | age exact % (strict) | long: epochs | gender % "
             "| age exact % (strict) | long - short, gender / age |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for run in long_runs:
        summary = json.loads((Path(run) / RESULTS).read_text())
        model = ModelConfig.from_dict(summary["model"])
        row = next((r for r in ROWS if r.tasks == model.tasks and r.head == model.head
                    and r.conv_layers == model.conv_layers), None)
        if row is None or model.arch != "paper" or model.input_size != row.model_config().input_size:
            raise ValueError(f"{run}: a {model.arch} {model.head} run with tasks {','.join(model.tasks)}, "
                             f"{model.conv_layers} conv layers, {model.input_size} px input: no ablation row "
                             "trains that net")
        if Path(run).resolve() == (out / row.name).resolve():
            raise ValueError(f"{run}: that is the ablation's own row; --long takes a cv run at another schedule")
        short = {f["fold"]: f for f in load_row_folds(out / row.name)}
        # results.json lists the finished folds (a folder of committed results has no fold_K/ folders)
        longs = {f["fold"]: f for f in summary["folds"] if f.get("split") == "test"}
        longs.update({f["fold"]: f for f in load_row_folds(Path(run))})
        for long in (longs[k] for k in sorted(longs)):
            s = short.get(long["fold"])
            if s is None:
                continue
            a, b = s["metrics"], long["metrics"]
            lines.append(f"| {row.name} | {long['fold']} | {s['epochs']} | {_pct(a, 'gender_acc')} "
                         f"| {_pct(a, 'age_strict_exact')} | {long['epochs']} | {_pct(b, 'gender_acc')} "
                         f"| {_pct(b, 'age_strict_exact')} | {_gain(b, a, 'gender_acc')} / "
                         f"{_gain(b, a, 'age_strict_exact')} |")
    return "\n".join(lines)


def sharing_table(out_dir: str | os.PathLike, rows: tuple[AblationRow, ...] = ROWS) -> str:
    """Markdown: does sharing the trunk help? Each multi-task row against the single-task row of the same
    head and depth, task by task, paired by fold (the same test faces), on the folds both have finished."""
    out = Path(out_dir)
    lines = ["| head | task (metric) | folds | single-task | multi-task | multi - single, fold by fold "
             "| mean ± std | folds where multi is ahead |", "|---|---|---:|---:|---:|---|---:|---:|"]
    for multi in (r for r in rows if len(r.tasks) > 1):
        multi_folds = {f["fold"]: f["metrics"] for f in load_row_folds(out / multi.name)}
        for task in multi.tasks:
            single = next((r for r in rows if r.tasks == (task,) and r.head == multi.head
                           and r.conv_layers == multi.conv_layers), None)
            if single is None:
                continue
            spec = task_spec(task)  # the registry's headline metric of the task
            key, label = spec.headline[0], spec.metric_label
            single_folds = {f["fold"]: f["metrics"] for f in load_row_folds(out / single.name)}
            both = sorted(set(multi_folds) & set(single_folds))
            if not both:
                continue
            a = [single_folds[k][key] for k in both]
            b = [multi_folds[k][key] for k in both]
            diffs = [y - x for x, y in zip(a, b)]
            spread = mean_std(diffs)
            mean = f"{spread['mean']:+.1f}" + (f" ± {spread['std']:.1f}" if len(diffs) > 1 else "")
            lines.append(f"| {multi.head} | {task} ({label}) | {len(both)} | {sum(a) / len(a):.1f} "
                         f"| {sum(b) / len(b):.1f} | {', '.join(f'{d:+.1f}' for d in diffs)} "
                         f"| {mean} | {sum(d > 0 for d in diffs)} of {len(both)} |")
    return "\n".join(lines)


def ablation_table(out_dir: str | os.PathLike, rows: tuple[AblationRow, ...] = ROWS, k: int = 5) -> str:
    """Markdown: one line per row, mean ± std over its finished folds (and how many)."""
    out = Path(out_dir)
    lines = ["| row | tasks | conv layers | head | folds | gender acc % | age exact % (strict) "
             "| age 1-off % (strict) | age exact % (nearest) | paper (Adience): gender % | paper: age exact % |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        folds = load_row_folds(out / row.name)
        lines.append(f"| {row.name} | {'+'.join(row.tasks)} | {row.conv_layers} | {row.head} | {len(folds)}/{k} "
                     f"| {_cell(folds, 'gender_acc')} | {_cell(folds, 'age_strict_exact')} "
                     f"| {_cell(folds, 'age_strict_1off')} | {_cell(folds, 'age_exact')} "
                     f"| {' | '.join(PAPER_TABLE3.get(row.name, ('', '')))} |")
    return "\n".join(lines)
