"""Dataset names -> records, in one place for the CLI, CV and benchmarks."""

from __future__ import annotations

from pathlib import Path

from agegender.console import log
from agegender.data.folds import dedupe_identical
from agegender.data.readers import (
    ReadReport,
    Record,
    check_files,
    read_adience,
    read_celeba_gender,
    read_csv,
    read_utkface,
)

DATASETS = ("utkface", "adience", "csv", "celeba_gender")


def read_dataset(name: str, root: str, *, image_root: str | None = None, skip_missing: bool = False,
                 verbose: bool = True) -> tuple[list[Record], dict]:
    """(records ready for folds, info for result files). UTKFace duplicates are grouped/dropped here."""
    report = ReadReport(name)
    info: dict = {"dataset": name, "root": str(Path(root).resolve())}
    if image_root:
        info["image_root"] = str(Path(image_root).resolve())
    if name == "utkface":
        records = read_utkface(_utk_folder(Path(root)), report)
        records, dup = dedupe_identical(records)
        info["duplicates"] = dup
    elif name == "adience":
        records = read_adience(root, image_root, report=report)
        records = check_files(records, skip_missing)
    elif name == "csv":
        records = check_files(read_csv(root, image_root, report=report), skip_missing)
    elif name == "celeba_gender":
        # several folders (celeba_gender,celeba_gender_more) are read as one dataset: a person may be in
        # more than one, and the folds split people, so they must be split together
        records = [r for part in root.split(",") for r in read_celeba_gender(part)]
        info["root"] = [str(Path(part).resolve()) for part in root.split(",")]
        report.rows = report.kept = len(records)
    else:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    info["read"] = {"rows": report.rows, "kept": report.kept, "rules": dict(report.rules),
                    "problems": len(report.problems), "records": len(records)}
    if verbose:
        log.info(report.summary())
    return records, info


def _utk_folder(root: Path) -> Path:
    # Accept the download's parent folder (utkface/) as well as UTKFace/ itself.
    return root / "UTKFace" if (root / "UTKFace").is_dir() else root


def parse_extra(spec: str) -> tuple[str, str]:
    """``DATASET:PATH`` (for --extra) -> (name, path)."""
    name, sep, path = spec.partition(":")
    if not sep or name not in DATASETS:
        raise ValueError(f"--extra expects DATASET:PATH with DATASET in {DATASETS}, got {spec!r}")
    return name, path
