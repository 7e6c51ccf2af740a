"""`agegender predict-ray` on a local Ray instance (2 CPUs): the same records as `predict`, bad files reported."""

import json
import os

import pytest
from fixtures import composed_photos

pytest.importorskip("ray")

from agegender.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray") / "in"
    composed_photos(folder, 10)
    (folder / "broken.jpg").write_bytes(b"not a photo")
    return folder


@pytest.fixture(scope="module")
def local_ray():
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _by_path(records):
    return {os.path.basename(r["path"]): r for r in records}


def test_predict_ray_gives_predicts_records_as_jsonl_and_parquet(photos, local_ray, tmp_path, capsys):
    import pyarrow.parquet as pq

    assert main(["predict", str(photos), "--format", "jsonl", "--out", str(tmp_path / "ref.jsonl"),
                 "--no-progress"]) == 1
    ref = _by_path(json.loads(line) for line in (tmp_path / "ref.jsonl").read_text().splitlines())
    assert main(["predict-ray", str(photos), "--out", str(tmp_path / "out.jsonl")]) == 1
    got = _by_path(json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines())
    assert "10 faces; 1 inputs failed" in capsys.readouterr().err
    assert set(got) == set(ref) and len(got) == 11
    assert "cannot read image" in got["broken.jpg"]["error"]
    for name, r in ref.items():
        if "error" in r:
            continue
        assert got[name]["gender"] == r["gender"] and got[name]["age_group"] == r["age_group"]
        assert got[name]["box"] == pytest.approx(r["box"], abs=0.2)
        assert got[name]["age_group_probs"] == pytest.approx(r["age_group_probs"], abs=1e-4)
    assert main(["predict-ray", str(photos), "--out", str(tmp_path / "parquet"), "--readers", "2"]) == 1
    table = pq.read_table(tmp_path / "parquet").to_pylist()
    assert len(table) == 11 and sum(r["error"] is not None for r in table) == 1
    assert main(["predict-ray", str(photos), "--out", str(tmp_path / "out.jsonl")]) == 2  # exists: not replaced
