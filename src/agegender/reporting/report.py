"""Markdown tables (and PNG figures, with matplotlib) from cv results files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from agegender.labels import AGE_GROUPS, GENDERS, TASKS
from agegender.metrics import format_mean_std
from agegender.rundir import RunDir


def metric_columns(*metric_dicts: dict) -> list[tuple[str, str]]:
    """(key, heading) of the registry's headline metrics that any of ``metric_dicts`` holds (all of them
    when none is given), in registry order (gender, the age groups, age in years, race...): the report's
    columns."""
    return [(key, label) for spec in TASKS.values()
            for key, label in zip(spec.headline, spec.headline_labels, strict=True)
            if not metric_dicts or any(key in m for m in metric_dicts)]


# The paper's Table 1 on Adience (5-fold, subject-exclusive) and the baseline it compares with.
PAPER_TABLE1 = """For comparison, on **Adience** (another dataset: not comparable beyond a rough sense of scale):

| method (Adience) | gender % | age exact % |
|---|---|---|
| the paper (joint multi-task CNN) | 86.0 ± 1.2 | 46.0 ± 1.1 |
| Levi & Hassner 2015 | 85.9 ± 1.4 | 49.5 ± 4.4 |"""


def load_run(run_dir: str | os.PathLike) -> dict:
    """A cv run folder's results.json, or one assembled from its finished folds."""
    run = Path(run_dir)
    path = run / "results.json" if run.is_dir() else run
    if path.is_file():
        return json.loads(path.read_text())
    folds = [json.loads(p.read_text()) for p in RunDir(run).finished_folds()]
    if not folds:
        folds = [_in_progress(p) for p in RunDir(run).checkpoint_metas()]
    if not folds:
        raise FileNotFoundError(f"{run_dir}: no results.json and no finished folds")
    from agegender.metrics import summarize

    return {"folds": folds, "summary": summarize(folds), "command": "", "train": {}, "model": {}}


def _mean_cell(v: dict | None) -> str:
    if not v:
        return "-"
    return format_mean_std(v)


def extra_columns(runs: dict[str, dict]) -> list[tuple[str, str]]:
    """(extra dataset, metric) pairs scored on held-out people by some run (``cv --extra``)."""
    return sorted({(name, key) for r in runs.values() for name, m in r["summary"].get("extra", {}).items()
                   for key in m})


def summary_row(name: str, results: dict, extras: list[tuple[str, str]] = (), columns=None) -> str:
    columns = columns or metric_columns(results["summary"])
    cells = [_mean_cell(results["summary"].get(key)) for key, _ in columns]
    cells += [_mean_cell(results["summary"].get("extra", {}).get(d, {}).get(key)) for d, key in extras]
    folds = len(results["summary"].get("folds_done", []))
    return f"| {name} | " + " | ".join(cells) + f" | {folds} |"


def summary_table(runs: dict[str, dict]) -> str:
    extras = extra_columns(runs)
    columns = metric_columns(*(r["summary"] for r in runs.values()))
    labels = [label for _, label in columns] + [f"{d} {key.removesuffix('_acc')} (held-out people)"
                                                 for d, key in extras]
    head = "| run | " + " | ".join(labels) + " | folds |"
    sep = "|---" * (len(labels) + 2) + "|"
    return "\n".join([head, sep, *(summary_row(name, r, extras, columns) for name, r in runs.items())])


def fold_table(results: dict) -> str:
    columns = metric_columns(*(f["metrics"] for f in results["folds"]))
    lines = ["| fold | split | n train | n eval | " + " | ".join(label for _, label in columns)
             + " | train img/s | train s |", "|---" * (len(columns) + 6) + "|"]
    for f in results["folds"]:
        m = f["metrics"]
        cells = " | ".join(f"{m[k]:.2f}" if k in m else "-" for k, _ in columns)
        lines.append(f"| {f['fold']} | {f['split']} | {f['n_train']} | {f['n_eval']} | {cells} | "
                     f"{f['train_images_per_s']:.0f} | {f['train_seconds']:.0f} |")
    return "\n".join(lines)


def curve_table(results: dict, fold: int | None = None) -> str:
    """Per-epoch evaluation of one fold (the learning curve used to choose the schedule)."""
    f = results["folds"][0] if fold is None else next(x for x in results["folds"] if x["fold"] == fold)
    keys = [(f"eval_{k}", label) for k, label in metric_columns()[:3]]
    shift = [k for k in f["curve"][0] if k.startswith("shift_")]
    lines = ["| epoch | train loss | " + " | ".join(label for _, label in keys)
             + "".join(f" | {k}" for k in shift) + " |", "|---" * (len(keys) + 2 + len(shift)) + "|"]
    for row in f["curve"]:
        cells = " | ".join(f"{row[k]:.2f}" if k in row else "-" for k, _ in keys)
        extra = "".join(f" | {row[k]:+.3f}" for k in shift)
        lines.append(f"| {row['epoch']} | {row['loss']:.4f} | {cells}{extra} |")
    return "\n".join(lines)


def confusion_table(matrix: list[list[int]], labels: tuple[str, ...]) -> str:
    lines = ["| true \\ predicted | " + " | ".join(labels) + " | n | recall |", "|---" * (len(labels) + 3) + "|"]
    for name, row in zip(labels, matrix, strict=True):
        n = sum(row)
        recall = 100.0 * row[labels.index(name)] / n if n else float("nan")
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + f" | {n} | {recall:.1f} |")
    return "\n".join(lines)


def confusions(results: dict) -> str:
    s = results["summary"]
    parts = []
    if "age_strict_confusion" in s:
        parts += ["Age groups (strict, summed over folds):", "", confusion_table(s["age_strict_confusion"], AGE_GROUPS)]
    elif "age_confusion" in s:
        parts += ["Age groups (summed over folds):", "", confusion_table(s["age_confusion"], AGE_GROUPS)]
    if "gender_confusion" in s:
        parts += ["", "Gender (summed over folds):", "", confusion_table(s["gender_confusion"], GENDERS)]
    return "\n".join(parts)


def plot_curves(runs: dict[str, dict], out_png: str | os.PathLike) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, results in runs.items():
        curve = results["folds"][0]["curve"]
        epochs = [r["epoch"] for r in curve]
        for ax, key, title in ((axes[0], "eval_gender_acc", "gender accuracy (%)"),
                               (axes[1], "eval_age_strict_exact", "age-group exact, strict (%)")):
            ax.plot(epochs, [r.get(key) for r in curve], marker="o", ms=3, label=name)
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def _in_progress(meta_path: Path) -> dict:
    """A fold still training: its curve so far from the checkpoint's history, marked in progress."""
    from agegender.metrics import curve_rows

    meta = json.loads(meta_path.read_text())
    history = meta.get("history", [])
    last = history[-1] if history else {}
    return {
        "fold": int(meta_path.parent.parent.name.split("_")[1]), "split": "in progress",
        "n_train": last.get("train_images", 0), "n_eval": 0,
        "metrics": {k[5:]: v for k, v in last.items() if k.startswith("eval_")},
        "train_images_per_s": last.get("train_images_per_s", 0.0),
        "train_seconds": sum(h.get("train_seconds", 0.0) for h in history),
        "curve": curve_rows(history),
        "epochs_done": meta.get("epoch", 0), "epochs": (meta.get("train") or {}).get("epochs"),
    }


def breakdown_tables(tables: dict[str, list[dict]]) -> str:
    """Markdown for analysis.breakdown(): exact and 1-off accuracy per age group, gender and race."""
    def fmt(v):
        return "-" if v is None else f"{v:.1f}"

    parts = []
    for title, rows in tables.items():
        parts += [f"By {title}:" if title != "all" else "All held-out faces:", "",
                  "| group | n | gender acc % | age exact % (strict) | age 1-off % (strict) |",
                  "|---|---:|---:|---:|---:|"]
        parts += [f"| {r['group']} | {r['n']} | {fmt(r['gender_acc'])} | {fmt(r['age_exact'])} | {fmt(r['age_1off'])} |"
                  for r in rows]
        parts.append("")
    return "\n".join(parts)


def plot_confusions(summary: dict, out_png: str | os.PathLike, title: str = "") -> None:
    """Age (strict) 8x8 and gender 2x2 confusion matrices summed over folds, row-normalised colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    mats = [(key, labels) for key, labels in (("age_strict_confusion", AGE_GROUPS), ("gender_confusion", GENDERS))
            if key in summary]
    fig, axes = plt.subplots(1, len(mats), figsize=(5.2 * len(mats), 4.6), squeeze=False,
                             gridspec_kw={"width_ratios": [len(lab) for _, lab in mats]})
    for ax, (key, labels) in zip(axes[0], mats, strict=True):
        m = np.asarray(summary[key], dtype=np.float64)
        norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(labels)), labels, rotation=45, fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title("age group (strict)" if key.startswith("age") else "gender")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def plot_examples(preds, out_png: str | os.PathLike, per_kind: int = 12, seed: int = 0) -> None:
    """The paper's Fig. 3: held-out faces predicted right (black captions) and wrong (red), with the
    true and predicted labels. ``preds``: one analysis.FoldPredictions. Gap-age faces are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    strict = preds.strict_age()
    has_age, has_gender = "age" in preds.pred, "gender" in preds.pred
    ok = strict != -1 if has_age else np.ones(len(preds.paths), dtype=bool)
    right = np.ones(len(ok), dtype=bool)
    if has_age:
        right &= preds.pred["age"] == strict
    if has_gender:
        right &= preds.pred["gender"] == preds.labels["gender"]
    rng = np.random.default_rng(seed)
    picks = []
    for want in (True, False):
        pool = np.flatnonzero(ok & (right == want))
        picks += [(i, want) for i in rng.choice(pool, size=min(per_kind, len(pool)), replace=False)]
    cols = 6
    rows = -(-len(picks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.7, rows * 2.15), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (i, good) in zip(axes.flat, picks, strict=False):
        with Image.open(preds.paths[i]) as im:
            ax.imshow(im.convert("RGB").resize((96, 96)))

        def label(age, gender):
            parts = []
            if has_age:
                parts.append(AGE_GROUPS[int(age)])
            if has_gender:
                parts.append(GENDERS[int(gender)][0].upper())
            return " ".join(parts)

        true = label(strict[i] if has_age else 0, preds.labels["gender"][i] if has_gender else 0)
        pred = label(preds.pred["age"][i] if has_age else 0, preds.pred["gender"][i] if has_gender else 0)
        ax.set_title(f"true {true}\npred {pred}", fontsize=7.5, color="black" if good else "red")
    fig.suptitle("held-out faces: correct (black) and wrong (red)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
