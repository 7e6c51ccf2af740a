"""Fine-tuning: --init starts a run from the weights of the same model (train) or of fold K (cv)."""

import json

import pytest
import torch
from fixtures import make_utkface
from safetensors.torch import load_file

from agegender.cli import main
from agegender.config import ModelConfig, TrainConfig
from agegender.training.checkpoint import read_meta
from agegender.training.train import fit

CFG = ModelConfig(arch="paper", head="cls", input_size=32, fc_width=16)


def _cfg(**kw):
    return TrainConfig(**{"epochs": 1, "batch_size": 8, "lr": 0.01, "threads": 1, **kw})


def test_init_loads_the_weights_and_records_where_from(small_faces, tmp_path):
    fit(CFG, _cfg(seed=1), small_faces, tmp_path / "first", progress=False)
    start = load_file(str(tmp_path / "first" / "checkpoint" / "model.safetensors"))
    lines = []
    # lr 0: SGD changes no parameter, so the run ends where it started: with the first run's weights
    res = fit(CFG, _cfg(lr=0.0, init=str(tmp_path / "first" / "checkpoint")), small_faces, tmp_path / "second",
              progress=False, log=lines.append)
    params = dict(res["model"].named_parameters())
    assert params and all(torch.equal(p.detach(), start[name]) for name, p in params.items())
    assert any(line.startswith("initialised from ") for line in lines)
    assert read_meta(tmp_path / "second" / "checkpoint")["train"]["init"].endswith("first/checkpoint")
    # the same run from scratch (seed 0) starts elsewhere, so the check above can fail
    scratch = fit(CFG, _cfg(lr=0.0), small_faces, tmp_path / "scratch", progress=False)["model"]
    assert not all(torch.equal(p.detach(), start[n]) for n, p in scratch.named_parameters())


def test_init_from_another_model_is_refused(small_faces, tmp_path):
    fit(CFG, _cfg(), small_faces, tmp_path / "first", progress=False)
    with pytest.raises(ValueError, match="another model.*head cls there, reg here"):
        fit(ModelConfig(arch="paper", head="reg", input_size=32, fc_width=16),
            _cfg(init=str(tmp_path / "first" / "checkpoint")), small_faces, tmp_path / "second", progress=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        fit(CFG, _cfg(init=str(tmp_path / "nowhere")), small_faces, tmp_path / "third", progress=False)


def test_cv_fold_k_starts_from_the_init_runs_fold_k(tmp_path, capsys):
    root = make_utkface(tmp_path / "utk", n=30, size=32).parent
    common = ["cv", "--dataset", "utkface", "--data-root", str(root), "--head", "cls", "--epochs", "1",
              "--batch-size", "8", "--lr", "0.01", "--threads", "1", "--no-progress"]
    assert main(common + ["--folds", "2", "--out", str(tmp_path / "stage1")]) == 0
    assert main(common + ["--folds", "2", "--init", str(tmp_path / "stage1"), "--out", str(tmp_path / "stage2")]) == 0
    for fold in (0, 1):
        meta = read_meta(tmp_path / "stage2" / f"fold_{fold}" / "checkpoint")
        assert meta["train"]["init"] == str(tmp_path / "stage1" / f"fold_{fold}" / "checkpoint")
    assert json.loads((tmp_path / "stage2" / "results.json").read_text())["summary"]["folds_done"] == [0, 1]
    # a first stage split differently saw this run's test faces: refused
    assert main(common + ["--folds", "3", "--init", str(tmp_path / "stage1"), "--out", str(tmp_path / "x")]) == 2
    assert "init run" in capsys.readouterr().err
