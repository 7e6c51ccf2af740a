"""Training for real photos: the wild augmentation, age as a distribution over years, square CelebA crops,
CelebA folders split jointly by person."""

import json

import numpy as np
import pytest
import torch
from fixtures import make_celeba_gender, make_utkface

from agegender.config import ModelConfig, TrainConfig, recipe
from agegender.labels import AGE_GROUPS, age_group_nearest
from agegender.models import create_model
from agegender.models.heads import YEARS_DIST, year_group_matrix
from agegender.preprocess import square_face
from agegender.training.augment import POLICIES, augment_batch, wild
from agegender.training.losses import multitask_loss, years_distribution_loss

YEARS_CFG = ModelConfig(head="cls", tasks=("age", "gender", "age_years"), age_bins=101, fc_norm=True,
                        input_size=32)


def _batch(n=16, s=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, s, s), dtype=torch.uint8, generator=g)


def test_every_policy_keeps_shape_and_range_and_is_deterministic():
    batch = _batch()
    for policy in POLICIES:
        a = augment_batch(batch, policy, 2, torch.Generator().manual_seed(3))
        b = augment_batch(batch, policy, 2, torch.Generator().manual_seed(3))
        assert a.shape == batch.shape and a.dtype == torch.float32
        assert float(a.min()) >= 0 and float(a.max()) <= 255 and torch.isfinite(a).all()
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="unknown augmentation policy"):
        augment_batch(batch, "nope", 2, torch.Generator())
    with pytest.raises(ValueError, match="augment_policy"):
        TrainConfig(augment_policy="nope")


def test_wild_changes_faces_but_keeps_them_faces():
    """Each face differs from its input (something fired), and the batch mean stays near the input's:
    the policy perturbs, it does not wipe out."""
    batch = _batch(64, 32)
    out = wild(batch, torch.Generator().manual_seed(1))
    assert (out - batch.float()).abs().flatten(1).mean(1).gt(0).float().mean() > 0.8
    assert abs(float(out.mean()) - float(batch.float().mean())) < 20


def test_recipe_wild_uses_the_wild_policy():
    assert recipe("wild").augment_policy == "wild"
    assert TrainConfig().augment_policy == "flip_shift"


def test_years_head_groups_are_the_sum_of_the_years():
    model = create_model(YEARS_CFG).eval()
    with torch.no_grad():
        out = model(torch.rand(4, 3, 32, 32) * 255)
    assert set(out) == {"age", "gender", "age_years"}  # no training-only output in eval / export
    probs = out["age"].exp()
    assert torch.allclose(probs.sum(1), torch.ones(4), atol=1e-5)
    m = year_group_matrix(101)
    assert m.sum(0).eq(1).all()  # every year in exactly one group
    assert all(m[age_group_nearest(y), y] == 1 for y in (0, 3, 7, 14, 22, 35, 45, 56, 60, 100))
    model.train()
    assert out["age_years"].min() >= 0 and out["age_years"].max() <= 100
    train_out = model(torch.rand(4, 3, 32, 32) * 255)
    assert train_out[YEARS_DIST].shape == (4, 101)


def test_years_loss_is_lowest_at_the_true_age():
    years = torch.tensor([30.0])
    grid = torch.arange(101.0)
    losses = []
    for centre in (10.0, 25.0, 30.0, 35.0, 60.0):
        log_p = torch.log_softmax(-0.5 * ((grid - centre) / 3.0) ** 2, 0)[None]
        losses.append(float(years_distribution_loss(log_p, (log_p.exp() * grid).sum(1), years)))
    assert losses.index(min(losses)) == 2
    assert losses[0] > losses[1] > losses[2] < losses[3] < losses[4]


def test_years_head_trains_and_masks_missing_ages():
    model = create_model(YEARS_CFG).train()
    out = model(torch.rand(6, 3, 32, 32) * 255)
    labels = {"age": torch.tensor([-1, -1, 2, 3, 4, 5.0]), "gender": torch.tensor([0, 1, 0, 1, 0, 1.0]),
              "age_years": torch.tensor([-1, -1, 10, 18, 30, 40.0])}  # two CelebA-like faces without age
    loss, parts = multitask_loss(out, labels)
    assert torch.isfinite(loss) and {"age", "gender", "age_years"} <= set(parts)
    loss.backward()
    assert model.head.years.weight.grad.abs().sum() > 0


def test_age_bins_needs_age_years():
    with pytest.raises(ValueError, match="age_years"):
        ModelConfig(head="cls", tasks=("age", "gender"), age_bins=101)
    with pytest.raises(ValueError, match="61 bins"):
        ModelConfig(head="cls", tasks=("age", "gender", "age_years"), age_bins=40)


def test_years_model_exports_and_predicts_age_years(tmp_path, capsys, onnx_model):
    """Train (1 epoch, wild recipe) -> export -> predict: age_years filled, groups consistent with it."""
    from agegender.cli import main

    utk = make_utkface(tmp_path / "utk", n=24, size=32)
    run = tmp_path / "run"
    assert main(["train", "--dataset", "utkface", "--data-root", str(utk), "--head", "cls",
                 "--tasks", "age,gender,age_years", "--age-bins", "101", "--input-size", "32", "--recipe", "wild",
                 "--epochs", "1", "--batch-size", "8", "--threads", "1", "--no-progress", "--out", str(run)]) == 0
    onnx = tmp_path / "m.onnx"
    assert main(["export", str(run / "checkpoint"), "--out", str(onnx)]) == 0
    capsys.readouterr()
    assert main(["predict", "--aligned", "--model", str(onnx), "--format", "jsonl", str(utk)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    records = [r for r in records if "error" not in r]  # the fixture holds one badly named file
    assert len(records) >= 24
    for r in records:
        assert 0 <= r["age_years"] <= 100
        assert r["age_group"] in AGE_GROUPS and abs(sum(r["age_group_probs"]) - 1) < 1e-3
    first = sorted(utk.rglob("*.jpg"))[0]
    assert main(["predict", "--aligned", "--model", str(onnx), "--format", "table", str(first)]) == 0
    header, row = capsys.readouterr().out.splitlines()[:2]
    assert header.split()[-1] == "age_years" and row.split()[-1].isdigit()
    assert main(["predict", "--aligned", "--model", onnx_model[0], "--format", "table", str(first)]) == 0  # no years
    assert "age_years" not in capsys.readouterr().out


def test_non_square_crops_are_padded_not_squeezed():
    face = np.zeros((106, 78, 3), np.uint8)
    face[:, :, 0] = 200
    sq = square_face(face)
    assert sq.shape == (106, 106, 3) and (sq[:, :, 0] == 200).all()
    assert square_face(np.zeros((64, 64, 3), np.uint8)).shape == (64, 64, 3)


def test_two_celeba_folders_are_one_dataset_split_by_person(tmp_path):
    """A person in both folders lands in one fold: the folders are read as one dataset."""
    from agegender.data.datasets import parse_extra, read_dataset
    from agegender.data.folds import assign_folds

    a = make_celeba_gender(tmp_path / "a", people=10, faces_per_person=2)
    b = make_celeba_gender(tmp_path / "b", people=10, faces_per_person=2)  # the same person ids 1000..1009
    name, path = parse_extra(f"celeba_gender:{a},{b}")
    records, info = read_dataset(name, path, verbose=False)
    assert len(records) == 40 and len(info["root"]) == 2
    folds = assign_folds(records, 5)
    by_person = {}
    for r, f in zip(records, folds, strict=True):
        by_person.setdefault(r.group, set()).add(f)
    assert len(by_person) == 10 and all(len(f) == 1 for f in by_person.values())


def test_int8_export_calibrates_at_the_checkpoints_input_size(tmp_path, capsys):
    """The calibration faces were always made at 64 px; a 32 px model got the wrong faces (or failed)."""
    from agegender.cli import main
    from agegender.inference.runtime import OnnxModel

    utk = make_utkface(tmp_path / "utk", n=24, size=32)
    run = tmp_path / "run"
    assert main(["train", "--dataset", "utkface", "--data-root", str(utk), "--head", "cls", "--input-size", "32",
                 "--recipe", "cpu", "--epochs", "1", "--batch-size", "8", "--threads", "1", "--no-progress",
                 "--out", str(run)]) == 0
    out = tmp_path / "q.onnx"
    assert main(["export", str(run / "checkpoint"), "--out", str(out), "--precision", "int8",
                 "--calibration", f"utkface:{utk}", "--calibration-size", "16"]) == 0
    model = OnnxModel(out)
    assert model.size == 32 and model.meta["precision"] == "int8"
    assert model.run(np.zeros((2, 32, 32, 3), np.uint8))["gender"].shape == (2, 2)


def test_train_defaults_to_the_recommended_recipe_not_the_papers():
    from agegender.cli import _train_config, build_parser

    args = build_parser().parse_args(["train", "--dataset", "utkface", "--data-root", "x", "--out", "y"])
    cfg = _train_config(args)
    assert args.recipe == "recommended" and cfg.lr == 0.01 and cfg.epochs == 30 and cfg.lr_step_epochs == (20,)
    paper = _train_config(build_parser().parse_args(["train", "--dataset", "utkface", "--data-root", "x",
                                                     "--out", "y", "--recipe", "paper"]))
    assert paper.lr == 0.1


def test_init_from_the_bundled_onnx_grows_a_years_head_with_the_same_groups():
    """`train --init default --age-bins 101`: the shipped model's weights start the fine-tune, and the new
    years head begins with exactly the default's 8-group distribution (and its gender)."""
    from agegender.inference.predict import load_model
    from agegender.training.train import init_from

    cfg = ModelConfig(head="cls", tasks=("age", "gender", "age_years"), age_bins=101, fc_norm=True)
    model = create_model(cfg).eval()
    lines = []
    init_from(model, cfg, "default", log=lines.append)
    assert any("years head" in line for line in lines)
    faces = np.random.default_rng(0).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    theirs = load_model("default", precision="float").run(faces)
    with torch.no_grad():
        ours = model(torch.from_numpy(faces).permute(0, 3, 1, 2).float())
    for task in ("age", "gender"):
        np.testing.assert_allclose(torch.softmax(ours[task], 1).numpy(),
                                   torch.softmax(torch.from_numpy(theirs[task]), 1).numpy(), atol=2e-3)
    assert ((ours["age_years"] >= 0) & (ours["age_years"] <= 100)).all()


def test_init_from_the_bundled_onnx_with_the_same_heads_reproduces_it():
    from agegender.inference.predict import load_model
    from agegender.training.train import init_from

    cfg = ModelConfig(head="cls", tasks=("age", "gender"), fc_norm=True)
    model = create_model(cfg).eval()
    init_from(model, cfg, "default")
    faces = np.random.default_rng(1).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    theirs = load_model("default", precision="float").run(faces)
    with torch.no_grad():
        ours = model(torch.from_numpy(faces).permute(0, 3, 1, 2).float())
    for task in ("age", "gender"):
        np.testing.assert_allclose(ours[task].numpy(), theirs[task], atol=2e-2)


def test_init_from_another_trunk_is_refused():
    from agegender.training.train import init_from

    cfg = ModelConfig(head="cls", tasks=("age", "gender"), conv_layers=3, fc_norm=True)
    with pytest.raises(ValueError, match="conv_layers"):
        init_from(create_model(cfg), cfg, "default")
    with pytest.raises(FileNotFoundError, match="nosuch.onnx"):
        init_from(create_model(cfg), cfg, "nosuch.onnx")


def test_set_overrides_recipe_settings_and_probes_run_only_when_asked(tmp_path, capsys):
    from agegender.cli import main
    from agegender.config import parse_overrides

    model, train = parse_overrides(["weight_decay=1e-4", "lr-step-epochs=3,4.5", "probe_dead_units=true",
                                    "dropout=0.2", "task_weights=gender=2"])
    assert train == {"weight_decay": 1e-4, "lr_step_epochs": (3.0, 4.5), "probe_dead_units": True,
                     "task_weights": {"gender": 2.0}}
    assert model == {"dropout": 0.2}
    for bad in (["nosuch=1"], ["weight_decay"], ["probe_dead_units=maybe"], ["epochs=x"]):
        with pytest.raises(ValueError, match="--set"):
            parse_overrides(bad)
    utk = make_utkface(tmp_path / "utk", n=16, size=32)
    for name, extra in (("plain", []), ("probed", ["--set", "probe_dead_units=true"])):
        run = tmp_path / name
        assert main(["train", "--dataset", "utkface", "--data-root", str(utk), "--head", "cls", "--input-size", "32",
                     "--epochs", "1", "--batch-size", "8", "--threads", "1", "--no-progress", "--out", str(run),
                     "--set", "weight_decay=1e-4", "--set", "dropout=0.3", *extra]) == 0
        meta = json.loads((run / "checkpoint" / "meta.json").read_text())
        assert meta["train"]["weight_decay"] == 1e-4 and meta["model"]["dropout"] == 0.3
        assert any(k.startswith("alive_") for k in meta["history"][0]) == (name == "probed")
    assert main(["train", "--dataset", "utkface", "--data-root", str(utk), "--out", str(tmp_path / "x"),
                 "--set", "nosuch=1"]) != 0
    assert "nosuch" in capsys.readouterr().err


def test_int8_export_of_a_years_model_keeps_its_groups_and_a_bad_int8_file_is_refused(tmp_path, monkeypatch):
    """int8 once turned a years head's groups to noise (strict age 73 % -> 16 %): the head stays fp32 now,
    and an int8 file that changes more than 5 % of the predicted classes is refused, not written."""
    from agegender import export as export_mod
    from agegender.export import export_onnx
    from agegender.training.checkpoint import save_checkpoint
    from agegender.training.train import init_from

    cfg = ModelConfig(head="cls", tasks=("age", "gender", "age_years"), age_bins=101, fc_norm=True)
    model = create_model(cfg)
    init_from(model, cfg, "default")  # a trained trunk, so that the classes mean something
    ckpt = save_checkpoint(tmp_path / "ckpt", model, cfg, TrainConfig())
    faces = np.stack([np.asarray(__import__("fixtures").face_image(i, 64)) for i in range(64)])
    report = export_onnx(ckpt, tmp_path / "q.onnx", "int8", calibration=faces)
    assert min(report["same_class_faces"].values()) >= 0.95
    monkeypatch.setattr(export_mod, "INT8_MIN_AGREEMENT", 1.01)
    with pytest.raises(ValueError, match="not written"):
        export_onnx(ckpt, tmp_path / "bad.onnx", "int8", calibration=faces)
    assert not (tmp_path / "bad.onnx").exists()
