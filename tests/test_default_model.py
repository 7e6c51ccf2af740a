"""The bundled default model and photo: offline, end to end."""

import json

import numpy as np
import pytest

from agegender import Predictor
from agegender.cli import main
from agegender.inference.predict import DEFAULT_MODEL, EXAMPLE_PHOTO, asset_path
from agegender.inference.runtime import OnnxModel
from agegender.preprocess import load_image


def test_default_model_is_bundled_and_small():
    path = asset_path(DEFAULT_MODEL)
    assert path.is_file() and path.stat().st_size < 16 * 2**20
    model = OnnxModel(path)
    assert model.size == 64 and {"age", "gender"} <= set(model.tasks) and model.head == "cls"


def test_default_model_matches_pytorch():
    """ONNX Runtime vs PyTorch rebuilt from the same (fp16-stored) weights: probabilities agree to 1e-3."""
    torch = pytest.importorskip("torch")
    from agegender.config import ModelConfig
    from agegender.export import parity, state_dict_from_onnx
    from agegender.models import create_model

    path = asset_path(DEFAULT_MODEL)
    meta = OnnxModel(path).meta
    model = create_model(ModelConfig.from_dict(meta["model"])).eval()
    missing, unexpected = model.load_state_dict(state_dict_from_onnx(path), strict=False)
    # Not in the graph: BatchNorm's step counters, the value-head affine of a head with no value task, and
    # the year values when age_years is the distribution's median (it uses bin indices).
    unused = ("num_batches_tracked", "head.value_center", "head.value_scale", "head.year_values")
    assert not unexpected and all(k.endswith(unused) for k in missing), missing
    faces = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    photo_face = Predictor(aligned=True)._faces(load_image(asset_path(EXAMPLE_PHOTO)))[0][0]
    with torch.no_grad():
        diffs = parity(model, path, np.concatenate([faces, photo_face[None]]))
    assert max(diffs.values()) < 1e-3, diffs


def test_detector_finds_the_one_face_in_the_bundled_photo():
    faces = Predictor().predict(asset_path(EXAMPLE_PHOTO))
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 150 < x < 200 and 40 < y < 110 and 80 < w < 140  # Eileen Collins' face in the 512x512 portrait
    assert faces[0].det_score > 0.5
    assert abs(sum(faces[0].age_group_probs) - 1) < 1e-3


def test_demo_prints_a_table(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["path", "face", "box"] and "astronaut.jpg" in out[1]


def test_jsonl_contract_and_annotation(tmp_path, capsys):
    photo = asset_path(EXAMPLE_PHOTO)
    assert main(["predict", str(photo), "--format", "jsonl", "--annotate", str(tmp_path / "ann"),
                 "--no-progress"]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[0])
    assert set(record) == {"path", "face", "box", "det_score", "age_group", "age_group_index", "age_group_probs",
                           "gender", "gender_confidence", "age_years", "yaw"}
    assert abs(record["yaw"]) < 30  # the bundled portrait faces the camera
    assert 0 <= record["age_years"] <= 100
    assert (tmp_path / "ann" / "astronaut.jpg").is_file()
    assert load_image(photo).shape == (512, 512, 3)  # the input is untouched


def test_annotate_and_out_never_replace_a_file_unasked(tmp_path, capsys):
    import shutil

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(asset_path(EXAMPLE_PHOTO), photos / "a.jpg")
    ann = photos / "annotated"  # inside the input folder: a rerun must not read its own drawings
    args = ["predict", str(photos), "--annotate", str(ann), "--format", "jsonl", "--no-progress"]
    assert main(args) == 0 and (ann / "a.jpg").is_file()
    capsys.readouterr()
    before = (ann / "a.jpg").read_bytes()
    (ann / "a.jpg").write_bytes(b"the user's own file")
    assert main(args) == 1  # predictions stand, the copy is refused
    out, err = capsys.readouterr()
    assert [json.loads(line)["path"] for line in out.splitlines()] == [str(photos / "a.jpg")]
    assert "pass --force" in err and (ann / "a.jpg").read_bytes() == b"the user's own file"
    assert main(args + ["--force"]) == 0 and (ann / "a.jpg").read_bytes() == before
    assert main(["predict", str(photos / "a.jpg"), "--annotate", str(photos), "--no-progress"]) == 1
    assert "would overwrite this input" in capsys.readouterr().err
    assert load_image(photos / "a.jpg").shape == (512, 512, 3)
    (tmp_path / "out.jsonl").write_text("kept")
    assert main(["predict", str(photos / "a.jpg"), "--out", str(tmp_path / "out.jsonl")]) == 2
    assert "--force" in capsys.readouterr().err and (tmp_path / "out.jsonl").read_text() == "kept"


def test_a_folder_without_images_is_an_error_record(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no pictures here")
    assert main(["predict", str(tmp_path / "notes"), "--format", "jsonl", "--no-progress"]) == 1
    record = json.loads(capsys.readouterr().out)
    assert record["path"] == str(tmp_path / "notes") and "no image file" in record["error"]


def test_no_face_gives_an_error_record(tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (320, 240), (90, 140, 200)).save(tmp_path / "sky.png")
    assert main(["predict", str(tmp_path / "sky.png"), "--format", "jsonl", "--no-progress"]) == 1
    record = json.loads(capsys.readouterr().out)
    assert record["path"].endswith("sky.png") and "no face" in record["error"]


def test_the_fast_bundled_model_is_the_dense_lite_net_and_agrees_on_the_photo():
    from agegender.inference.predict import load_model

    fast, default = load_model("fast"), load_model()
    assert fast.meta["model"]["arch"] == "lite-dense" and default.meta["model"]["arch"] == "paper"
    a = Predictor(model="fast").predict(asset_path(EXAMPLE_PHOTO))
    b = Predictor().predict(asset_path(EXAMPLE_PHOTO))
    assert len(a) == len(b) == 1 and a[0].box == b[0].box
    assert a[0].gender == b[0].gender == "female"  # Eileen Collins
