import random
from dataclasses import replace

import numpy as np
import pytest
from fixtures import make_csv, make_utkface

from agegender.data.folds import assign_folds, check_disjoint, dedupe_identical, file_digest, split_train_val
from agegender.data.readers import Record, read_adience, read_csv, read_utkface


def test_real_adience_folds_are_subject_exclusive(shared_data, tmp_path):
    root = shared_data / "adience"
    if not (root / "Folds" / "original_txt_files" / "fold_0_data.txt").is_file():
        pytest.skip("real Adience fold files not present")
    (tmp_path / "aligned").mkdir()
    records = read_adience(root, image_root=tmp_path)
    folds = assign_folds(records, 5)
    users = {}
    for r, f in zip(records, folds):
        users.setdefault(r.group, set()).add(f)
    assert all(len(fs) == 1 for fs in users.values())
    assert len(users) == 164  # 168 users, 4 of them only in rows with neither label; each in one fold


def test_utk_duplicates_grouped_and_conflicts_dropped(tmp_path):
    records = read_utkface(make_utkface(tmp_path, n=30))
    kept, stats = dedupe_identical(records)
    assert stats == {"duplicate_groups": 2, "conflicting_groups": 1, "dropped_records": 2}
    folds = assign_folds(kept, 5)
    by_digest = {}
    for r, f in zip(kept, folds):
        by_digest.setdefault(file_digest(r.path), set()).add(f)
    assert all(len(fs) == 1 for fs in by_digest.values())  # no content hash spans two folds
    assert not any("25_1_0_20170101000000003" in r.path for r in kept)


def _synthetic(n):
    return [Record(f"/x/{i}.jpg", {"age": i % 8, "gender": i % 2}, group=f"g{i}") for i in range(n)]


def test_folds_are_order_independent_stratified_and_seeded():
    records = _synthetic(400)
    folds = assign_folds(records, 5, seed=3)
    shuffled = records[:]
    random.Random(1).shuffle(shuffled)
    again = dict(zip([r.path for r in shuffled], assign_folds(shuffled, 5, seed=3)))
    assert [again[r.path] for r in records] == folds
    assert np.bincount(folds).tolist() == [80] * 5
    for stratum in range(8):  # each age group spread evenly
        counts = np.bincount([f for r, f in zip(records, folds) if r.labels["age"] == stratum], minlength=5)
        assert counts.max() - counts.min() <= 1
    assert assign_folds(records, 5, seed=4) != folds


def test_groups_never_span_folds_and_check_catches_leaks(tmp_path):
    records = read_csv(make_csv(tmp_path, n=30))
    folds = assign_folds(records, 3)
    check_disjoint(records, folds)
    leaky = folds[:]
    leaky[0] = (leaky[1] + 1) % 3  # records 0 and 1 share subject s0
    with pytest.raises(ValueError, match="not subject-exclusive"):
        check_disjoint(records, leaky)


def test_validation_split_is_group_exclusive():
    records = [replace(r, group=f"s{i // 4}") for i, r in enumerate(_synthetic(200))]
    train, val = split_train_val(records, 0.2)
    assert not {records[i].group for i in train} & {records[i].group for i in val}
    assert 30 <= len(val) <= 50 and len(train) + len(val) == 200
