import json

import numpy as np
import pytest
import torch

from agegender.cli import main
from agegender.config import ModelConfig
from agegender.export import export_onnx, state_dict_from_onnx
from agegender.inference.runtime import ModelError, OnnxModel
from agegender.models import create_model
from agegender.training.checkpoint import save_checkpoint

# The configuration we train and ship: softmax heads, exact age, BatchNorm in the FC layers.
CFG = ModelConfig(head="cls", tasks=("age", "gender", "age_years"), fc_norm=True)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    cfg = CFG
    model = create_model(cfg).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, as after training
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    folder = tmp_path_factory.mktemp("ckpt") / "checkpoint"
    save_checkpoint(folder, model, cfg)
    return folder


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_onnx_matches_pytorch(checkpoint, tmp_path, precision):
    report = export_onnx(checkpoint, tmp_path / f"m-{precision}.onnx", precision)
    limit = 1e-3 if precision == "fp32" else 2e-2  # fp16 rounds the weights
    assert max(report["max_abs_diff_random"].values()) < limit
    m = OnnxModel(report["path"])
    assert m.tasks == ["age", "gender", "age_years"] and m.labels["age"][0] == "0-2" and m.size == 64
    out = m.run(np.zeros((3, 64, 64, 3), np.uint8))
    assert out["age"].shape == (3, 8) and out["gender"].shape == (3, 2) and out["age_years"].shape == (3,)


def test_fc_branches_export_and_fold(tmp_path):
    from agegender.export import fold_linear_batchnorm
    from agegender.training.checkpoint import load_checkpoint

    torch.manual_seed(0)
    cfg = ModelConfig(head="cls", tasks=("age", "gender", "age_years"), fc_norm=True, fc_branches=True)
    model = create_model(cfg).eval()
    save_checkpoint(tmp_path / "ckpt", model, cfg)
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta["model"]["fc_branches"]
    x = torch.rand(4, 3, 64, 64) * 255
    with torch.no_grad():
        a, b = model(x), fold_linear_batchnorm(loaded)(x)
    assert all(torch.allclose(a[t], b[t], atol=1e-4) for t in a)
    report = export_onnx(tmp_path / "ckpt", tmp_path / "b.onnx", "fp32")
    assert max(report["max_abs_diff_random"].values()) < 1e-3


def test_fp16_export_is_half_the_size_and_round_trips_to_torch(checkpoint, tmp_path):
    a = export_onnx(checkpoint, tmp_path / "a.onnx", "fp32")
    b = export_onnx(checkpoint, tmp_path / "b.onnx", "fp16")
    assert b["bytes"] < 0.55 * a["bytes"]
    model = create_model(CFG).eval()
    missing, _ = model.load_state_dict(state_dict_from_onnx(b["path"]), strict=False)
    assert all(k.endswith("num_batches_tracked") for k in missing)
    from agegender.export import parity

    assert max(parity(model, b["path"], np.random.default_rng(1).integers(0, 255, (4, 64, 64, 3),
                                                                          dtype=np.uint8)).values()) < 1e-4


def test_int8_export_needs_calibration_and_stays_close(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="calibration"):
        export_onnx(checkpoint, tmp_path / "q.onnx", "int8")
    faces = np.random.default_rng(0).integers(0, 255, (64, 64, 64, 3), dtype=np.uint8)
    report = export_onnx(checkpoint, tmp_path / "q.onnx", "int8", calibration=faces)
    assert report["bytes"] < 0.4 * export_onnx(checkpoint, tmp_path / "f.onnx")["bytes"]
    assert OnnxModel(report["path"]).meta["precision"] == "int8"


def test_export_cli_refuses_to_overwrite(checkpoint, tmp_path, capsys):
    out = tmp_path / "x.onnx"
    assert main(["export", str(checkpoint), "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "fp32"
    assert main(["export", str(checkpoint), "--out", str(out)]) == 2


def test_bad_model_files_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="no such model file"):
        OnnxModel(tmp_path / "none.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="junk.onnx: not a usable ONNX model"):
        OnnxModel(junk)


def test_folding_fc_batchnorm_keeps_the_outputs(checkpoint):
    from agegender.export import fold_linear_batchnorm
    from agegender.training.checkpoint import load_checkpoint

    model, _ = load_checkpoint(checkpoint)
    folded = fold_linear_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())  # the original is untouched
    x = torch.rand(4, 3, 64, 64) * 255
    with torch.no_grad():
        a, b = model.eval()(x), folded(x)
    assert all(torch.allclose(a[t], b[t], atol=1e-4) for t in a)
