import csv

import pytest

from agegender.labels import (
    ADIENCE_AGE_MAP,
    MISSING,
    adience_age,
    adience_gender,
    age_group_nearest,
    age_group_strict,
)


def test_strict_and_nearest_groups():
    assert [age_group_strict(a) for a in (0, 2, 3, 4, 13, 14, 25, 33, 60, 99)] == [0, 0, MISSING, 1, 2, MISSING,
                                                                                   4, MISSING, 7, 7]
    # Gap ages split at the midpoints (<=3, <=7, <=14, <=22, <=35, <=45, <=56, else 60+).
    assert [age_group_nearest(a) for a in (3, 7, 14, 22, 23, 35, 36, 45, 46, 56, 57)] == [0, 1, 2, 3, 4, 4, 5, 5,
                                                                                          6, 6, 7]


def test_adience_rules():
    assert adience_age("(25, 32)") == (4, "group")
    assert adience_age("(25, 23)") == (4, "typo-range")
    assert adience_age("(38, 48)") == (5, "typo-range")
    assert adience_age("(8, 23)") == (MISSING, "ambiguous-range")
    assert adience_age("None") == (MISSING, "no-label")
    assert adience_age("13") == (2, "exact-in-group")
    assert adience_age("35") == (MISSING, "exact-gap")
    assert adience_gender("u") == (MISSING, "gender-unknown")
    assert adience_gender("") == (MISSING, "gender-unknown")
    with pytest.raises(ValueError, match="unknown Adience age"):
        adience_age("(1, 99)")
    with pytest.raises(ValueError, match="unknown Adience gender"):
        adience_gender("x")


def test_map_covers_every_string_in_the_real_fold_files(shared_data):
    folds = sorted((shared_data / "adience" / "Folds" / "original_txt_files").glob("fold_*_data.txt"))
    if len(folds) != 5:
        pytest.skip("real Adience fold files not present")
    ages, genders = set(), set()
    for path in folds:
        with open(path, newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                ages.add(row["age"] or "")
                genders.add(row["gender"] or "")
    for a in ages:
        adience_age(a)  # raises on a string the map lacks
    for g in genders:
        adience_gender(g)
    # The explicit table lists each range string found in the files (exact ages go through the rule).
    assert {a for a in ages if not a.isdigit()} <= set(ADIENCE_AGE_MAP)


def test_expected_calibration_error():
    import numpy as np

    from agegender.metrics import expected_calibration_error

    labels = np.array([0, 1] * 50)
    # confident and always right: 0; 90 % confident but right half the time: a 40-point gap
    perfect = np.eye(2)[labels]
    assert expected_calibration_error(perfect, labels) == 0.0
    overconfident = np.tile([0.9, 0.1], (100, 1))
    assert abs(expected_calibration_error(overconfident, labels) - 40.0) < 1e-9
    # calibrated by construction: 70 % confidence, 70 % right
    labels = np.array([0] * 70 + [1] * 30)
    assert abs(expected_calibration_error(np.tile([0.7, 0.3], (100, 1)), labels)) < 1e-9
