"""Folds, computed in one place. Every fold assignment is a pure function of the records and a seed.

- Datasets with fixed folds (Adience) keep them; we check they are subject-exclusive.
- Otherwise records are grouped by ``Record.group`` (subject id; for UTKFace, the set of byte-identical
  files), groups are stratified by age group x gender and dealt round-robin in the order of a hash of
  (seed, group key): independent of file order, stable when files are added.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import replace

from agegender.console import log
from agegender.data.readers import Record


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def file_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def dedupe_identical(records: list[Record], digests: list[str] | None = None) -> tuple[list[Record], dict]:
    """Put byte-identical files into one fold group; drop groups whose labels disagree.

    Returns the kept records (``group`` = content digest) and counts for the run log.
    """
    digests = digests if digests is not None else [file_digest(r.path) for r in records]
    by_digest: dict[str, list[Record]] = defaultdict(list)
    for record, digest in zip(records, digests, strict=True):
        by_digest[digest].append(record)
    kept, stats = [], {"duplicate_groups": 0, "conflicting_groups": 0, "dropped_records": 0}
    for digest, members in by_digest.items():
        if len(members) > 1:
            stats["duplicate_groups"] += 1
            label_sets = {(m.label("age_years"), m.label("age"), m.label("gender")) for m in members}
            if len(label_sets) > 1:
                stats["conflicting_groups"] += 1
                stats["dropped_records"] += len(members)
                continue
        kept.extend(replace(m, group="sha1:" + digest) for m in members)
    if stats["conflicting_groups"]:
        log.warning(f"dropped {stats['conflicting_groups']} groups of identical images with conflicting labels "
                    f"({stats['dropped_records']} files); {stats['duplicate_groups']} identical groups in all")
    return kept, stats


def assign_folds(records: list[Record], k: int, seed: int = 0) -> list[int]:
    """Fold index per record. Fixed folds are kept; else stratified, group-exclusive, hash-ordered."""
    if not records:
        return []
    if all(r.fold is not None for r in records):
        folds = [int(r.fold) for r in records]
        check_disjoint(records, folds)
        return folds
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        groups[r.group or r.path].append(i)
    # Stratum of a group: the (age, gender) of its first record (a group is one subject or one image).
    strata: dict[tuple, list[str]] = defaultdict(list)
    for key, members in groups.items():
        first = records[members[0]]
        strata[(first.label("age"), first.label("gender"))].append(key)
    fold_of_group = {}
    offset = 0
    for stratum in sorted(strata, key=repr):
        keys = sorted(strata[stratum], key=lambda g: _hash(f"{seed}:{g}"))
        for rank, key in enumerate(keys):
            # The offset keeps small strata from all starting at fold 0.
            fold_of_group[key] = (rank + offset) % k
        offset += len(keys)
    return [fold_of_group[r.group or r.path] for r in records]


def check_disjoint(records: list[Record], folds: list[int]) -> None:
    """Raise if any group (subject) appears in more than one fold."""
    seen: dict[str, int] = {}
    for r, f in zip(records, folds, strict=True):
        key = r.group or r.path
        if seen.setdefault(key, f) != f:
            raise ValueError(f"group {key!r} appears in folds {seen[key]} and {f}: folds are not subject-exclusive")


def split_train_val(records: list[Record], val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices of a group-exclusive validation split carved from ``records`` (for tuning, never a test fold)."""
    k = max(2, round(1 / val_fraction))
    folds = assign_folds([replace(r, fold=None) for r in records], k, seed=seed + 1000)
    train = [i for i, f in enumerate(folds) if f != 0]
    val = [i for i, f in enumerate(folds) if f == 0]
    return train, val



def scored_split(records: list[Record], train_idx, test_idx, tune_val: float = 0.0, seed: int = 0):
    """(trained, scored) indices into ``records`` for one fold whose training part is ``train_idx``: the
    test part as it is, or with ``tune_val`` > 0 a validation split of that fraction carved from the training
    part (by subject, ``split_train_val``), the test part untouched. The one place this choice is made:
    cv, the reports and the benchmarks that rebuild a fold's faces all call it."""
    import numpy as np

    train_idx, test_idx = np.asarray(train_idx), np.asarray(test_idx)
    if tune_val > 0:
        tr, va = split_train_val([records[i] for i in train_idx], tune_val, seed=seed)
        return train_idx[tr], train_idx[va]
    return train_idx, test_idx


def fold_split(records: list[Record], folds, fold: int, tune_val: float = 0.0, seed: int = 0):
    """``scored_split`` of fold ``fold`` under the fold assignment ``folds`` (one fold index per record)."""
    import numpy as np

    folds = np.asarray(folds)
    return scored_split(records, np.flatnonzero(folds != fold), np.flatnonzero(folds == fold), tune_val, seed)
