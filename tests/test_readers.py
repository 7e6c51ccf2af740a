import pytest
from fixtures import make_adience, make_csv, make_levi_lists, make_utkface

from agegender.data.readers import (
    ReadReport,
    check_files,
    parse_utkface_name,
    read_adience,
    read_celeba_gender,
    read_csv,
    read_levi_fold,
    read_utkface,
)
from agegender.labels import MISSING


def test_utkface_names():
    assert parse_utkface_name("26_1_2_20170116174525125.jpg.chip.jpg") == {
        "age_years": 26.0, "age": 4, "gender": 1, "race": 2}
    assert parse_utkface_name("39_1_20170116174525125.jpg.chip.jpg")["race"] == MISSING
    for bad in ("x_1_2_2017.jpg", "26_3_2_2017.jpg", "26_1_9_2017.jpg", "26.jpg"):
        with pytest.raises(ValueError):
            parse_utkface_name(bad)


def test_utkface_reader_skips_and_reports_malformed(tmp_path, capsys):
    folder = make_utkface(tmp_path, n=10)
    report = ReadReport("utkface")
    records = read_utkface(folder, report)
    assert len(records) == 10 + 1 + 4  # generated + missing-race + two identical pairs
    assert report.rules["malformed-name"] == 1
    assert "notalabel.jpg.chip.jpg" in capsys.readouterr().err


@pytest.mark.parametrize("layout", ["aligned", "faces"])
def test_adience_reader_both_layouts_and_rule_counts(tmp_path, layout):
    make_adience(tmp_path, layout=layout)
    report = ReadReport("adience")
    records = read_adience(tmp_path, report=report)
    assert report.rows == 5 * 2 * 9
    assert all(r.fold is not None and r.group.endswith(f"@N0{r.fold}") for r in records)
    assert all(layout in r.path for r in records)
    assert check_files(records) == records  # every path the fold files name exists
    for rule in ("age:group", "age:typo-range", "age:exact-gap", "age:exact-in-group", "age:no-label",
                 "age:ambiguous-range", "gender:gender-unknown"):
        assert report.rules[rule] > 0, rule
    assert report.rules["dropped-no-label"] > 0
    assert report.kept == len(records) == report.rows - report.rules["dropped-no-label"]
    assert "age:typo-range=" in report.summary()


def test_missing_images_error_or_skip(tmp_path):
    make_adience(tmp_path, write_images=False)
    (tmp_path / "aligned").mkdir()
    records = read_adience(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"\d+ of \d+ images named in the labels are missing"):
        check_files(records)
    assert check_files(records, skip_missing=True) == []


def test_adience_without_images_folder_is_a_clear_error(tmp_path):
    make_adience(tmp_path, write_images=False)
    with pytest.raises(FileNotFoundError, match="no Adience image folder"):
        read_adience(tmp_path)


def test_levi_lists(tmp_path):
    make_levi_lists(tmp_path, test_fold=3)
    splits = read_levi_fold(tmp_path, tmp_path / "images", 3)
    assert set(splits) == {"train", "val", "test"}
    test = splits["test"]
    assert len(test) == 6
    age_only = [r for r in test if r.labels["gender"] == MISSING]
    assert len(age_only) == 1 and age_only[0].labels["age"] == 5
    assert test[0].path.startswith(str(tmp_path / "images" / "aligned"))


def test_csv_reader(tmp_path):
    path = make_csv(tmp_path)
    records = read_csv(path)
    assert len(records) == 12
    assert records[0].labels == {"gender": 0, "age_years": 5.0, "age": 1}
    assert records[0].group == records[2].group == "s0"
    bad = tmp_path / "bad.csv"
    bad.write_text("path,age_group,gender\na.png,25-32,male\nb.png,99-100,female\n")
    with pytest.raises(ValueError, match=r"bad.csv:3: unknown age group"):
        read_csv(bad)
    ok = tmp_path / "ok.csv"
    ok.write_text("path,age_group,gender\na.png,25-32,f\n")
    assert read_csv(ok)[0].labels == {"gender": 1, "age": 4}


def test_celeba_gender_reader(tmp_path):
    from fixtures import face_image

    for g in ("male", "female"):
        (tmp_path / g).mkdir()
        face_image(1).save(tmp_path / g / f"00000{len(g)}.jpg.jpg")
    (tmp_path / "identities.csv").write_text("path,celeba_identity\nmale/000004.jpg.jpg,77\n")
    records = read_celeba_gender(tmp_path)
    assert [r.labels for r in records] == [{"gender": 0}, {"gender": 1}]
    assert records[0].group == "celeba:77"
