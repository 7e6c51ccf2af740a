"""Readers: turn dataset files on disk into `Record`s. No torch, no image decoding.

Each reader is tested on fixtures laid out exactly like the real download (tests/fixtures.py).
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from agegender.console import log
from agegender.labels import (
    AGE_GROUPS,
    GENDERS,
    MISSING,
    adience_age,
    adience_gender,
    age_group_nearest,
)
from agegender.preprocess import IMAGE_SUFFIXES


@dataclass(frozen=True)
class Record:
    """One face image and its labels.

    ``labels`` maps task name to a class index (MISSING when unknown) or, for ``age_years``, to years.
    ``group`` is the unit that must never be split across folds (subject id, or identical-file group).
    ``fold`` is a fold fixed by the dataset itself (Adience's official folds), else None.
    """

    path: str
    labels: dict[str, float] = field(hash=False)
    group: str = ""
    fold: int | None = None

    def label(self, task: str) -> float:
        return self.labels.get(task, MISSING)


@dataclass
class ReadReport:
    """What a reader did: rows read, kept, and how many each clean-up rule mapped or dropped."""

    dataset: str
    rows: int = 0
    kept: int = 0
    rules: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.dataset}: {self.rows} rows, {self.kept} kept"]
        parts += [f"{rule}={n}" for rule, n in sorted(self.rules.items())]
        if self.problems:
            parts.append(f"{len(self.problems)} problems (first: {self.problems[0]})")
        return ", ".join(parts)


# --- UTKFace ----------------------------------------------------------------------------------------

def parse_utkface_name(name: str) -> dict[str, float]:
    """Labels from ``AGE_GENDER_RACE_DATETIME.jpg.chip.jpg`` (race may be missing). Raises ValueError."""
    fields = name.split(".")[0].split("_")
    if len(fields) == 4:
        age, gender, race = fields[0], fields[1], fields[2]
    elif len(fields) == 3:
        age, gender, race = fields[0], fields[1], None
    else:
        raise ValueError(f"expected AGE_GENDER_RACE_DATETIME, got {name!r}")
    if not (age.isdigit() and gender in ("0", "1") and (race is None or race in "01234" and len(race) == 1)):
        raise ValueError(f"malformed UTKFace label fields in {name!r}")
    years = int(age)
    return {
        "age_years": float(years),
        "age": age_group_nearest(years),
        "gender": int(gender),
        "race": int(race) if race is not None else MISSING,
    }


def read_utkface(root: str | os.PathLike, report: ReadReport | None = None) -> list[Record]:
    """All faces under ``root`` (recursively), labels parsed from the file names.

    Malformed names are reported with their path and skipped. ``group`` is the file name; the fold
    code regroups identical files (see folds.dedupe_identical).
    """
    report = report if report is not None else ReadReport("utkface")
    records = []
    for path in _image_files(root):
        report.rows += 1
        try:
            labels = parse_utkface_name(path.name)
        except ValueError as err:
            report.problems.append(f"{path}: {err}")
            report.rules["malformed-name"] += 1
            continue
        records.append(Record(str(path), labels, group=path.name))
    report.kept = len(records)
    for problem in report.problems[:5]:
        log.warning(f"warning: skipped {problem}")
    return records


# --- Adience ----------------------------------------------------------------------------------------

ADIENCE_LAYOUTS = {
    "aligned": "landmark_aligned_face",
    "faces": "coarse_tilt_aligned_face",
}


def adience_image_path(image_root: Path, layout: str, user: str, face_id: str, image: str) -> Path:
    return image_root / layout / user / f"{ADIENCE_LAYOUTS[layout]}.{face_id}.{image}"


def detect_adience_layout(image_root: Path) -> str:
    for layout in ADIENCE_LAYOUTS:
        if (image_root / layout).is_dir():
            return layout
    raise FileNotFoundError(
        f"{image_root}: no Adience image folder found (expected {' or '.join(ADIENCE_LAYOUTS)}/USER/...)")


def find_fold_files(root: Path) -> list[Path]:
    """The five ``fold_K_data.txt`` files, under ``root`` itself or the official sub-folders."""
    for folder in (root, root / "Folds" / "original_txt_files", root / "original_txt_files"):
        files = [folder / f"fold_{k}_data.txt" for k in range(5)]
        if all(f.is_file() for f in files):
            return files
    raise FileNotFoundError(f"{root}: fold_0_data.txt .. fold_4_data.txt not found")


def read_adience(root: str | os.PathLike, image_root: str | os.PathLike | None = None,
                 layout: str | None = None, report: ReadReport | None = None) -> list[Record]:
    """Records of the five official Adience folds with cleaned labels.

    ``root`` holds the fold files (directly or under Folds/original_txt_files); ``image_root`` (default
    ``root``) holds ``aligned/`` or ``faces/``. A row keeps whatever label survives clean-up; a row
    with neither age nor gender is dropped. ``report.rules`` counts each clean-up rule.
    """
    root = Path(root)
    image_root = Path(image_root) if image_root is not None else root
    fold_files = find_fold_files(root)
    layout = layout or detect_adience_layout(image_root)
    if layout not in ADIENCE_LAYOUTS:
        raise ValueError(f"unknown Adience layout {layout!r}; expected one of {list(ADIENCE_LAYOUTS)}")
    report = report if report is not None else ReadReport("adience")
    records = []
    for fold, fold_file in enumerate(fold_files):
        with open(fold_file, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                report.rows += 1
                try:
                    age, age_rule = adience_age(row["age"] or "")
                    gender, gender_rule = adience_gender(row["gender"] or "")
                except ValueError as err:
                    raise ValueError(f"{fold_file}: {err}") from None
                report.rules[f"age:{age_rule}"] += 1
                report.rules[f"gender:{gender_rule}"] += 1
                if age == MISSING and gender == MISSING:
                    report.rules["dropped-no-label"] += 1
                    continue
                path = adience_image_path(image_root, layout, row["user_id"], row["face_id"],
                                          row["original_image"])
                records.append(Record(str(path), {"age": age, "gender": gender},
                                      group=row["user_id"], fold=fold))
    report.kept = len(records)
    return records


def read_levi_fold(list_root: str | os.PathLike, image_root: str | os.PathLike,
                   test_fold: int) -> dict[str, list[Record]]:
    """Levi & Hassner's lists for one test fold: {"train", "val", "test"} -> records.

    ``list_root`` holds ``test_fold_is_K/`` (or is the ``train_val_txt_files_per_fold`` folder's parent).
    Age and gender lists are merged by image; a task an image is not listed for is MISSING.
    """
    list_root = Path(list_root)
    fold_dir = list_root / f"test_fold_is_{test_fold}"
    if not fold_dir.is_dir():
        fold_dir = list_root / "Folds" / "train_val_txt_files_per_fold" / f"test_fold_is_{test_fold}"
    if not fold_dir.is_dir():
        raise FileNotFoundError(f"{list_root}: test_fold_is_{test_fold}/ not found")
    image_root = Path(image_root)
    splits = {}
    for split in ("train", "val", "test"):
        merged: dict[str, dict[str, float]] = {}
        for task in ("age", "gender"):
            list_file = fold_dir / f"{task}_{split}.txt"
            with open(list_file, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        rel, label = line.split()
                        label_index = int(label)
                    except ValueError:
                        raise ValueError(f"{list_file}:{n}: expected 'PATH LABEL', got {line.strip()!r}") from None
                    merged.setdefault(rel, {"age": MISSING, "gender": MISSING})[task] = label_index
        splits[split] = [Record(str(image_root / "aligned" / rel), labels, group=rel.split("/")[0])
                         for rel, labels in sorted(merged.items())]
    return splits


# --- CelebA gender crops ----------------------------------------------------------------------------

def read_celeba_gender(root: str | os.PathLike) -> list[Record]:
    """``male/`` and ``female/`` crops; ``identities.csv`` (path, celeba_identity) gives the group."""
    root = Path(root)
    identities = {}
    id_file = root / "identities.csv"
    if id_file.is_file():
        with open(id_file, newline="", encoding="utf-8") as f:
            identities = {row["path"]: row["celeba_identity"] for row in csv.DictReader(f)}
    records = []
    for gender_index, gender in enumerate(GENDERS):
        folder = root / gender
        if not folder.is_dir():
            raise FileNotFoundError(f"{root}: expected folders male/ and female/")
        for path in _image_files(folder):
            rel = f"{gender}/{path.name}"
            group = "celeba:" + identities.get(rel, rel)
            records.append(Record(str(path), {"gender": gender_index}, group=group))
    return records


# --- generic CSV ------------------------------------------------------------------------------------

def _parse_gender(value: str) -> int:
    v = value.strip().lower()
    if v in ("", "u", "unknown", "none", "-1"):
        return MISSING
    for index, name in enumerate(GENDERS):
        if v in (name, name[0], str(index)):
            return index
    raise ValueError(f"unknown gender {value!r} (expected male/female, m/f or 0/1)")


def _parse_age_group(value: str) -> int:
    v = value.strip()
    if v in ("", "None", "-1"):
        return MISSING
    if v.isdigit() and int(v) < len(AGE_GROUPS):
        return int(v)
    if v in AGE_GROUPS:
        return AGE_GROUPS.index(v)
    raise ValueError(f"unknown age group {value!r} (expected 0-{len(AGE_GROUPS) - 1} or one of {AGE_GROUPS})")


def read_csv(csv_path: str | os.PathLike, image_root: str | os.PathLike | None = None,
             report: ReadReport | None = None) -> list[Record]:
    """A user's own data: columns ``path`` and ``gender``, one of ``age`` (years) or ``age_group``,
    optionally ``subject_id`` (folds never split a subject). Relative paths are resolved against
    ``image_root`` (default: the CSV's folder). Bad rows raise ValueError naming file and line."""
    csv_path = Path(csv_path)
    base = Path(image_root) if image_root is not None else csv_path.parent
    report = report if report is not None else ReadReport("csv")
    records = []
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or ())
        if "path" not in columns or not ({"age", "age_group", "gender"} & columns):
            raise ValueError(f"{csv_path}: needs a 'path' column and at least one of age, age_group, gender; "
                             f"found {sorted(columns)}")
        for line, row in enumerate(reader, 2):
            report.rows += 1
            try:
                labels: dict[str, float] = {"gender": _parse_gender(row.get("gender") or "")}
                if (row.get("age") or "").strip():
                    years = float(row["age"])
                    labels.update(age_years=years, age=age_group_nearest(years))
                else:
                    labels["age"] = _parse_age_group(row.get("age_group") or "")
            except ValueError as err:
                raise ValueError(f"{csv_path}:{line}: {err}") from None
            path = Path(row["path"])
            path = path if path.is_absolute() else base / path
            subject = (row.get("subject_id") or "").strip() or str(path)
            records.append(Record(str(path), labels, group=subject))
    report.kept = len(records)
    return records


# --- helpers ----------------------------------------------------------------------------------------

def _image_files(root: str | os.PathLike) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def check_files(records: list[Record], skip_missing: bool = False) -> list[Record]:
    """Fail (or, with ``skip_missing``, drop with a count) when images named by the labels are absent."""
    missing = [r.path for r in records if not os.path.isfile(r.path)]
    if not missing:
        return records
    if not skip_missing:
        first = "\n  ".join(missing[:5])
        raise FileNotFoundError(
            f"{len(missing)} of {len(records)} images named in the labels are missing, first:\n  {first}\n"
            "(pass --skip-missing to train on the rest)")
    log.warning(f"warning: skipping {len(missing)} of {len(records)} records whose image is missing")
    gone = set(missing)
    return [r for r in records if r.path not in gone]
