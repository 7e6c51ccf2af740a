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


def test_a_new_task_needs_only_a_registry_entry(monkeypatch):
    """A task added to the registry (here "smile") is scored, put into records and shown in the table with
    no other change: the metrics, the records, the table and the video tracker read the registry."""
    import numpy as np
    import pytest

    from agegender import labels
    from agegender.inference.output import table_header, table_row, table_tasks
    from agegender.inference.predict import FaceResult, extra_tasks, fill_record
    from agegender.inference.video import IouTracker
    from agegender.metrics import accuracy_report, headline_keys

    smile = labels.TaskSpec("smile", ("no", "yes"), metric_label="smile acc %")
    monkeypatch.setitem(labels.TASKS, "smile", smile)
    assert smile.field == "smile" and smile.headline == ("smile_acc",) and smile.column == "smile"

    report = accuracy_report({"smile": np.array([1, 0, 1, 1])}, {"smile": np.array([1, 0, 0, labels.MISSING])})
    assert report["smile_acc"] == pytest.approx(200 / 3) and report["smile_n"] == 3
    assert report["smile_confusion"] == [[1, 1], [0, 1]] and headline_keys(report) == ["smile_acc"]

    model_labels = {"age": list(labels.AGE_GROUPS), "gender": ["male", "female"], "smile": ["no", "yes"]}
    assert extra_tasks(model_labels) == ["smile"]
    r = FaceResult(path="a.jpg", face=0, box=[0, 0, 10, 10])
    fill_record(r, "gender", 1, np.array([0.3, 0.7]), ["male", "female"])
    fill_record(r, "smile", 1, np.array([0.2, 0.8]), ["no", "yes"])
    assert r.gender == "female" and r.gender_confidence == 0.7
    assert r.to_dict()["smile"] == "yes" and r.to_dict()["smile_probs"] == [0.2, 0.8]
    tasks = table_tasks(["age", "gender", "smile"])
    assert table_header(tasks=tasks).split()[-2:] == ["smile", "p(smile)"]
    assert table_row(r, tasks=tasks).split()[-2:] == ["yes", "0.80"]

    tracker = IouTracker(smoothing=0.5)
    tracker.update([r], model_labels)
    later = FaceResult(path="a.jpg", face=0, box=[0, 0, 10, 10])
    fill_record(later, "smile", 0, np.array([0.9, 0.1]), ["no", "yes"])
    assert tracker.update([later], model_labels)[0].tasks["smile_probs"] == pytest.approx([0.55, 0.45])


def test_task_specs_are_checked():
    import pytest

    from agegender.labels import TaskSpec

    with pytest.raises(ValueError, match="kind"):
        TaskSpec("x", ("a", "b"), kind="colour")
    with pytest.raises(ValueError, match="years task has no labels"):
        TaskSpec("y", ("a",), kind="years")
    with pytest.raises(ValueError, match="years task has no labels"):
        TaskSpec("z")
    with pytest.raises(ValueError, match="record 'value'"):
        TaskSpec("w", ("a", "b"), record="value")


def test_report_columns_come_from_the_registry():
    """The report shows the headline metrics its runs hold, in registry order: a run with race and age in
    years gets their columns, the paper-shaped runs keep exactly their five."""
    from agegender.reporting.report import metric_columns, summary_table

    paper = {"gender_acc": 1, "age_strict_exact": 2, "age_strict_1off": 3, "age_exact": 4, "age_1off": 5}
    assert [k for k, _ in metric_columns(paper)] == list(paper)
    cell = {"mean": 90.0, "std": 1.0, "n": 2}
    runs = {"a": {"summary": {"gender_acc": cell, "race_acc": cell, "age_years_mae": cell, "folds_done": [0, 1]}}}
    head = summary_table(runs).splitlines()[0]
    assert head == "| run | gender | age MAE (years) | race | folds |"
