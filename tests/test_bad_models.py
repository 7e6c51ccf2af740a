"""Broken model files and misused API calls: each case states the input and the clean error expected."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from fixtures import face_image

from agegender.cli import main
from agegender.inference.predict import Predictor
from agegender.inference.runtime import META_KEY, ModelError
from agegender.preprocess import ImageError


def _with_meta(src, dst, edit):
    model = onnx.load(str(src))
    for prop in model.metadata_props:
        if prop.key == META_KEY:
            prop.value = edit(prop.value)
    onnx.save(model, str(dst))
    return dst


@pytest.mark.parametrize("edit, message", [
    (lambda v: v[:-5], "malformed"),
    (lambda v: json.dumps({**json.loads(v), "input": {"size": 100000}}), "input size 100000"),
    (lambda v: json.dumps({**json.loads(v), "input": {"size": 32}}), "the graph's input"),
    (lambda v: json.dumps({k: x for k, x in json.loads(v).items() if k != "labels"}), "malformed"),
])
def test_malformed_onnx_metadata_is_a_clean_error(onnx_model, tmp_path, capsys, edit, message):
    bad = _with_meta(onnx_model[0], tmp_path / "bad.onnx", edit)
    with pytest.raises(ModelError, match=message):
        Predictor(bad, aligned=True)
    face_image(0, 64).save(tmp_path / "a.jpg")
    assert main(["predict", str(tmp_path / "a.jpg"), "--model", str(bad), "--aligned", "--no-progress"]) == 2
    assert message in capsys.readouterr().err


def test_truncated_onnx_and_checkpoint_weights_are_clean_errors(onnx_model, tmp_path):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(Path(onnx_model[0]).read_bytes()[:5000])
    with pytest.raises(ModelError, match="not a usable ONNX model"):
        Predictor(cut, aligned=True)
    import shutil

    ckpt = tmp_path / "ckpt"
    shutil.copytree(onnx_model[1], ckpt)
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match="model.safetensors: unreadable"):
        Predictor(ckpt, aligned=True)


def test_train_resume_refuses_a_checkpoint_without_meta_json(tmp_path, capsys):
    from fixtures import make_utkface

    root = make_utkface(tmp_path / "utk", n=24, size=32).parent
    common = ["train", "--dataset", "utkface", "--data-root", str(root), "--epochs", "1", "--batch-size", "8",
              "--head", "cls", "--threads", "1", "--no-progress", "--out", str(tmp_path / "run")]
    assert main(common) == 0
    weights = (tmp_path / "run" / "checkpoint" / "model.safetensors").read_bytes()
    (tmp_path / "run" / "checkpoint" / "meta.json").unlink()
    assert main([*common, "--resume"]) == 2
    assert "incomplete checkpoint" in capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoint" / "model.safetensors").read_bytes() == weights  # not overwritten


def test_api_misuse_gets_clear_errors(onnx_model, tmp_path):
    from PIL import Image

    p = Predictor(onnx_model[0], aligned=True)
    img = face_image(0, 64)
    img.save(tmp_path / "a.png")
    expected = p.predict(tmp_path / "a.png")[0]
    assert p.predict(img)[0].age_group_probs == pytest.approx(expected.age_group_probs, abs=1e-4)
    assert p.predict((tmp_path / "a.png").read_bytes())[0].gender == expected.gender
    with pytest.raises(TypeError, match="predict_paths"):
        p.predict([tmp_path / "a.png"])
    with pytest.raises(ImageError, match="empty image array"):
        p.predict(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(ImageError) as err:
        p.predict(b"\x00" * 40000)
    assert len(str(err.value)) < 300
    assert isinstance(Image.Image, type)
