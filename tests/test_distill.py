"""Knowledge distillation: a student also fits a cls-head teacher's softened probabilities."""

import json

import pytest
import torch
from fixtures import make_utkface

from agegender.cli import main
from agegender.config import ModelConfig, TrainConfig
from agegender.training.checkpoint import read_meta
from agegender.training.losses import TEACHER, distill_loss
from agegender.training.train import fit


def test_distill_loss_is_zero_at_the_teacher_and_pulls_towards_it():
    teacher = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    zero, parts = distill_loss({"age": teacher.clone()}, {TEACHER + "age": teacher}, temperature=2.0)
    assert float(zero) == pytest.approx(0.0, abs=1e-6) and set(parts) == {"distill_age"}
    student = torch.zeros(2, 3, requires_grad=True)
    loss, _ = distill_loss({"age": student}, {TEACHER + "age": teacher}, temperature=2.0)
    loss.backward()
    assert float(loss.detach()) > 0
    stepped = student.detach() - 0.5 * student.grad
    closer, _ = distill_loss({"age": stepped}, {TEACHER + "age": teacher}, temperature=2.0)
    assert float(closer) < float(loss.detach())
    # regression outputs (1-d) and tasks without teacher logits add nothing
    none, parts = distill_loss({"gender": torch.zeros(2)}, {}, temperature=2.0)
    assert float(none) == 0.0 and parts == {}


def _cfg(**kw):
    return TrainConfig(**{"epochs": 1, "batch_size": 8, "lr": 0.01, "threads": 1, **kw})


def test_student_trains_on_teacher_logits_and_records_its_teacher(small_faces, tmp_path):
    cfg = ModelConfig(arch="paper", head="cls", input_size=32, fc_width=16)
    fit(cfg, _cfg(), small_faces, tmp_path / "teacher", progress=False)
    student = ModelConfig(arch="lite", head="cls", input_size=32)
    lines = []
    res = fit(student, _cfg(teacher=str(tmp_path / "teacher" / "checkpoint")), small_faces, tmp_path / "student",
              progress=False, log=lines.append)
    assert any(line.startswith("teacher ") and f"{len(small_faces)} training faces" in line for line in lines)
    row = res["history"][-1]
    assert row["loss_distill_age"] > 0 and row["loss_distill_gender"] > 0
    meta = read_meta(tmp_path / "student" / "checkpoint")
    assert meta["train"]["teacher"].endswith("teacher/checkpoint") and meta["train"]["distill_weight"] == 0.5


def test_an_exported_teacher_gives_its_checkpoints_logits(small_faces, tmp_path):
    """``--teacher`` also takes an exported .onnx file (or a bundled model's name), like ``--init``."""
    from agegender.export import export_onnx
    from agegender.training.train import teacher_targets

    cfg = ModelConfig(arch="paper", head="cls", input_size=32, fc_width=16)
    fit(cfg, _cfg(), small_faces, tmp_path / "teacher", progress=False)
    export_onnx(tmp_path / "teacher" / "checkpoint", tmp_path / "teacher.onnx")
    student = ModelConfig(arch="lite-dense", head="cls", input_size=32)
    lines = []
    ours = teacher_targets(str(tmp_path / "teacher.onnx"), student, small_faces, False, lines.append)
    theirs = teacher_targets(str(tmp_path / "teacher" / "checkpoint"), student, small_faces, False)
    assert set(ours) == {TEACHER + "age", TEACHER + "gender"} and len(ours[TEACHER + "age"]) == len(small_faces)
    for key in ours:
        assert torch.allclose(ours[key], theirs[key], atol=1e-4)
    with pytest.raises(FileNotFoundError, match="--teacher .*nope.onnx"):
        teacher_targets(str(tmp_path / "nope.onnx"), student, small_faces, False)


def test_a_regression_teacher_is_refused(small_faces, tmp_path):
    fit(ModelConfig(head="reg", input_size=32, fc_width=16), _cfg(), small_faces, tmp_path / "reg", progress=False)
    with pytest.raises(ValueError, match="distillation needs cls heads"):
        fit(ModelConfig(arch="lite", head="cls", input_size=32),
            _cfg(teacher=str(tmp_path / "reg" / "checkpoint")), small_faces, tmp_path / "student", progress=False)


def test_cv_distils_fold_k_from_the_teacher_runs_fold_k(tmp_path, capsys):
    root = make_utkface(tmp_path / "utk", n=30, size=32).parent
    common = ["cv", "--dataset", "utkface", "--data-root", str(root), "--head", "cls", "--epochs", "1",
              "--batch-size", "8", "--lr", "0.01", "--threads", "1", "--no-progress"]
    assert main(common + ["--folds", "2", "--out", str(tmp_path / "teacher")]) == 0
    assert main(common + ["--folds", "2", "--arch", "lite", "--teacher", str(tmp_path / "teacher"),
                          "--out", str(tmp_path / "student")]) == 0
    for fold in (0, 1):
        meta = read_meta(tmp_path / "student" / f"fold_{fold}" / "checkpoint")
        assert meta["train"]["teacher"] == str(tmp_path / "teacher" / f"fold_{fold}" / "checkpoint")
    results = json.loads((tmp_path / "student" / "results.json").read_text())
    assert results["summary"]["folds_done"] == [0, 1]
    # a teacher split differently could have trained on this run's test faces: refused
    assert main(common + ["--folds", "3", "--arch", "lite", "--teacher", str(tmp_path / "teacher"),
                          "--out", str(tmp_path / "other")]) == 2
    assert "may have trained on this fold's test faces" in capsys.readouterr().err
