"""A third task end to end, from the task registry: race (UTKFace's 5 labels) through cv, train, export,
predict (table / json / jsonl), the Python API, the HTTP service and Ray's record columns."""

from __future__ import annotations

import http.client
import json

import pytest
from fixtures import make_utkface

from agegender.cli import main
from agegender.labels import RACES


@pytest.fixture(scope="module")
def race_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("race")
    utk = make_utkface(tmp / "utk", n=30, size=32)
    run = tmp / "run"
    assert main(["train", "--dataset", "utkface", "--data-root", str(utk), "--head", "cls",
                 "--tasks", "age,gender,race", "--input-size", "32", "--epochs", "1", "--batch-size", "8",
                 "--threads", "1", "--no-progress", "--out", str(run)]) == 0
    onnx = tmp / "race.onnx"
    assert main(["export", str(run / "checkpoint"), "--out", str(onnx)]) == 0
    return utk, onnx


def _face_records(text: str) -> list[dict]:
    return [r for r in map(json.loads, text.splitlines()) if "error" not in r]


def test_cv_reports_race_accuracy(tmp_path, capsys):
    utk = make_utkface(tmp_path / "utk", n=30, size=32)
    out = tmp_path / "cv"
    assert main(["cv", "--dataset", "utkface", "--data-root", str(utk), "--head", "cls", "--tasks",
                 "age,gender,race", "--input-size", "32", "--epochs", "1", "--batch-size", "8", "--folds", "3",
                 "--only-folds", "0", "--threads", "1", "--no-progress", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    fold = results["folds"][0]
    assert 0 <= fold["metrics"]["race_acc"] <= 100


def test_predict_prints_race_in_every_format(race_model, capsys):
    utk, onnx = race_model
    capsys.readouterr()
    assert main(["predict", "--aligned", "--model", str(onnx), "--format", "jsonl", str(utk)]) == 0
    records = _face_records(capsys.readouterr().out)
    assert len(records) >= 30
    for r in records:
        assert r["race"] in RACES and len(r["race_probs"]) == len(RACES)
        assert abs(sum(r["race_probs"]) - 1) < 1e-3 and r["race_probs"][RACES.index(r["race"])] == max(r["race_probs"])
    assert main(["predict", "--aligned", "--model", str(onnx), "--format", "json", str(utk)]) == 0
    as_json = [r for r in json.loads(capsys.readouterr().out) if "error" not in r]
    assert [r["race"] for r in as_json] == [r["race"] for r in records]
    first = sorted(utk.glob("*_0_*.jpg"))[0]
    assert main(["predict", "--aligned", "--model", str(onnx), "--format", "table", str(first)]) == 0
    header, row = capsys.readouterr().out.splitlines()[:2]
    assert header.split()[-2:] == ["race", "p(race)"]
    assert row.split()[-2] in RACES and 0 < float(row.split()[-1]) <= 1


def test_python_api_service_and_ray_columns_carry_race(race_model):
    from agegender.inference.predict import Predictor, extra_tasks
    from agegender.serve import create_app, running

    utk, onnx = race_model
    predictor = Predictor(str(onnx), aligned=True)
    assert extra_tasks(predictor.model.labels) == ["race"]
    path = sorted(utk.glob("*_0_*.jpg"))[0]
    (face,) = predictor.predict(path)
    expected = face.to_dict()
    assert expected["race"] in RACES
    with running(create_app(predictor, workers=1)) as address:
        conn = http.client.HTTPConnection(*address, timeout=30)
        conn.request("POST", "/predict", body=path.read_bytes(), headers={"Content-Type": "image/jpeg"})
        body = json.loads(conn.getresponse().read())
        conn.close()
    got = body["results"][0]
    assert got["race"] == expected["race"] and got["race_probs"] == expected["race_probs"]


def test_ray_batches_have_a_column_per_task(race_model):
    pytest.importorskip("ray")
    from agegender.ray_batch import PredictBatch, _record

    utk, onnx = race_model
    paths = sorted(utk.glob("*_0_*.jpg"))[:3]
    columns = PredictBatch(str(onnx), aligned=True)({"bytes": [p.read_bytes() for p in paths],
                                                     "path": [str(p) for p in paths]})
    assert "tasks" not in columns and len(columns["race"]) == 3 and all(r in RACES for r in columns["race"])
    row = _record({k: v[0] for k, v in columns.items()})
    assert row["race"] in RACES and len(row["race_probs"]) == len(RACES) and "error" not in row
