"""Age in years added to a trained 8-group model (`agegender fit-years`, ModelConfig.years_in_groups): the
groups and gender stay exactly the model's, the years sum to the groups, the fit learns ages, and the
exported file gives age_years through predict."""

import json

import numpy as np
import pytest
import torch
from fixtures import make_utkface

from agegender.cli import main
from agegender.config import ModelConfig, YearsFit
from agegender.inference.runtime import OnnxModel
from agegender.models import create_model
from agegender.models.heads import YEARS_DIST
from agegender.training.checkpoint import save_checkpoint
from agegender.training.years_head import fit_layer, mae_by_band, predict_years, years_model

SOURCE = ModelConfig(head="cls", tasks=("age", "gender"), fc_norm=True, input_size=32)
IN_GROUPS = ModelConfig(head="cls", tasks=("age", "gender", "age_years"), fc_norm=True, input_size=32,
                        age_bins=101, years_in_groups=True)


def _faces(n=6, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 3, 32, 32)).astype(np.float32))


def test_years_in_groups_needs_a_group_head():
    with pytest.raises(ValueError, match="years_in_groups"):
        ModelConfig(head="cls", tasks=("age", "gender", "age_years"), years_in_groups=True)  # no age_bins
    with pytest.raises(ValueError, match="years_in_groups"):
        ModelConfig(head="reg", tasks=("age", "gender", "age_years"), age_bins=101, years_in_groups=True)


def test_years_sum_to_the_group_head_for_any_weights():
    model = create_model(IN_GROUPS)
    torch.nn.init.normal_(model.head.years.weight, std=0.5)  # far from the uniform start
    model.train()
    out = model(_faces())
    groups = torch.logsumexp(out[YEARS_DIST][:, None, :] + model.head.year_group_log[None], dim=2)
    assert torch.allclose(groups, torch.log_softmax(out["age"], 1), atol=1e-4)
    model.eval()
    with torch.no_grad():
        years = model(_faces())["age_years"]
    assert years.min() >= 0 and years.max() <= 100


def test_init_keeps_every_output_of_the_source(tmp_path):
    source = create_model(SOURCE).eval()
    save_checkpoint(tmp_path / "src", source, SOURCE)
    model, cfg = years_model(str(tmp_path / "src"), 101, log=lambda _: None)
    assert cfg.years_in_groups and cfg.tasks == ("age", "gender", "age_years")
    x = _faces()
    with torch.no_grad():
        a, b = source(x), model(x)
    for task in ("age", "gender"):
        assert torch.allclose(torch.softmax(a[task], 1), torch.softmax(b[task], 1), atol=1e-6)
    plain_years = ModelConfig(head="cls", tasks=("age", "gender", "age_years"), fc_norm=True, input_size=32,
                              age_bins=101)
    save_checkpoint(tmp_path / "src2", create_model(plain_years), plain_years)
    with pytest.raises(ValueError, match="8 age groups"):
        years_model(str(tmp_path / "src2"), 101)  # years in one softmax: its groups are not a head of their own
    again, _ = years_model(str(tmp_path / "src"), 101, log=lambda _: None)
    save_checkpoint(tmp_path / "src3", again, IN_GROUPS)
    refit, cfg = years_model(str(tmp_path / "src3"), 101, log=lambda _: None)  # a years layer is refitted
    with torch.no_grad():
        assert torch.allclose(torch.softmax(refit(x)["age"], 1), torch.softmax(a["age"], 1), atol=1e-6)


def test_fit_learns_ages_the_features_carry():
    """Features that carry the age group (read by the group head) and the age (plus noise): the fitted
    layer's MAE is far below the uniform start's, and the group head (not fitted) is untouched."""
    from agegender.labels import age_group_nearest

    model = create_model(IN_GROUPS).eval()
    rng = np.random.default_rng(0)
    years = rng.uniform(0, 90, 3000)
    feats = torch.from_numpy(rng.normal(0, 1, (3000, 512)).astype(np.float32))
    feats[:, 0] = torch.from_numpy(((years - 45) / 25).astype(np.float32))
    groups = torch.tensor([age_group_nearest(int(y)) for y in years])
    feats[:, 1:9] = 10 * torch.nn.functional.one_hot(groups, 8).float()
    with torch.no_grad():
        model.head.classifiers["age"].weight.zero_()
        model.head.classifiers["age"].weight[:, 1:9] = torch.eye(8)
    before = mae_by_band(predict_years(model, feats), years)["mae"]
    age_head = model.head.classifiers["age"].weight.clone()
    fit_layer(model, feats, torch.from_numpy(years).float(), YearsFit(epochs=15), log=lambda _: None)
    after = mae_by_band(predict_years(model, feats), years)
    assert after["mae"] < 0.5 * before
    assert torch.equal(model.head.classifiers["age"].weight, age_head)
    assert all(p.requires_grad for p in model.parameters())  # nothing left frozen


def test_fit_years_command_then_export_and_predict(tmp_path, capsys):
    data = make_utkface(tmp_path / "utk", n=36, size=32)
    source = create_model(SOURCE).eval()
    save_checkpoint(tmp_path / "src", source, SOURCE)
    run = tmp_path / "run"
    args = ["fit-years", "--init", str(tmp_path / "src"), "--dataset", "utkface", "--data-root", str(data),
            "--epochs", "3", "--folds", "3", "--out", str(run), "--no-progress"]
    assert main(args) == 0
    result = json.loads((run / "results.json").read_text())
    assert result["cv"]["k"] == 3 and len(result["cv"]["folds"]) == 3
    assert result["cv"]["pooled"]["faces"] == 36 + 1 + 2  # the 36, one without race, the identical pair
    assert main(args) == 2  # the checkpoint is not replaced without --force
    assert "exists" in capsys.readouterr().err
    onnx_path = tmp_path / "years.onnx"
    assert main(["export", str(run / "checkpoint"), "--out", str(onnx_path)]) == 0
    faces = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    out = OnnxModel(onnx_path).run(faces)
    with torch.no_grad():
        ref = source(torch.from_numpy(faces).permute(0, 3, 1, 2).float())
    for task in ("age", "gender"):
        assert np.allclose(torch.softmax(ref[task], 1).numpy(),
                           np.exp(out[task]) / np.exp(out[task]).sum(1, keepdims=True), atol=1e-5)
    from agegender import Predictor

    face = Predictor(model=str(onnx_path), aligned=True).predict(faces[0])[0]
    assert face.age_years is not None and 0 <= face.age_years <= 100


@pytest.mark.parametrize("model,precision", [("default", "float"), ("default", "int8"), ("fast", "auto")])
def test_bundled_models_give_years_consistent_with_their_groups(model, precision):
    """Both shipped models have a years layer: every record carries age_years, and a confident group puts
    the years inside its own year range (the years are a mixture over the groups' probabilities)."""
    from fixtures import face_image

    from agegender import Predictor
    from agegender.labels import age_group_nearest

    pred = Predictor(model=model, aligned=True, precision=precision)
    records = [pred.predict(np.asarray(face_image(i, 64)))[0] for i in range(12)]
    assert all(r.age_years is not None and 0 <= r.age_years <= 100 for r in records)
    for r in records:
        if max(r.age_group_probs) > 0.9:
            assert age_group_nearest(round(r.age_years)) == r.age_group_index


def test_training_commands_without_torch_name_the_extra(monkeypatch, capsys, tmp_path):
    """`pip install .` has no torch: a training command says which extra to install, not a traceback."""
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ModuleNotFoundError
    for name in [m for m in sys.modules if m.startswith("agegender.training")]:
        monkeypatch.delitem(sys.modules, name)
    assert main(["fit-years", "--init", "default", "--dataset", "utkface", "--data-root", str(tmp_path),
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "needs the 'train' extra" in err and "agegender[train]" in err


def test_years_median_is_the_halfway_point_and_continuous():
    from agegender.models.heads import years_median

    p = torch.zeros(4, 101)
    p[0, 30] = 1.0  # all in one year: its centre
    p[1, 10:21] = 1 / 11  # uniform over 10..20: 15
    p[2, 20], p[2, 60] = 0.6, 0.4  # the mean (36) lies where no mass is; the median stays in 20's year
    p[3, 0] = 1.0  # clamped at 0
    assert torch.allclose(years_median(p), torch.tensor([30.0, 15.0, 20 - 0.5 + 0.5 / 0.6, 0.0]), atol=1e-5)
    a, b = torch.zeros(2, 101), torch.zeros(2, 101)
    a[:, 40], a[:, 41] = 0.5 + 1e-4, 0.5 - 1e-4  # the halfway point just inside 40's year ...
    b[:, 40], b[:, 41] = 0.5 - 1e-4, 0.5 + 1e-4  # ... and just inside 41's: no jump between them
    assert abs(float(years_median(a)[0] - years_median(b)[0])) < 1e-2


def test_median_estimate_in_eval_mean_in_training_and_in_the_export(tmp_path):
    import dataclasses

    from agegender.export import export_onnx
    from agegender.models.heads import years_median

    cfg = dataclasses.replace(IN_GROUPS, years_estimate="median")
    model = create_model(cfg)
    torch.nn.init.normal_(model.head.years.weight, std=0.5)
    x = _faces()
    model.train()
    with torch.no_grad():
        out = model(x)
    p = out[YEARS_DIST].exp()
    assert torch.allclose(out["age_years"], (p * torch.arange(101.0)).sum(1), atol=1e-3)
    model.eval()
    with torch.no_grad():
        years = model(x)["age_years"]
        model.head.train()
        p = model.head(model.fc(model.forward_features(x)))[YEARS_DIST].exp()
        model.head.eval()
    assert torch.allclose(years, years_median(p), atol=1e-4)
    save_checkpoint(tmp_path / "checkpoint", model, cfg)
    report = export_onnx(tmp_path / "checkpoint", tmp_path / "m.onnx", "fp32")
    assert report["max_abs_diff_random"]["age_years"] < 1e-2
    faces = np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(faces).permute(0, 3, 1, 2).float())["age_years"].numpy()
        mean = create_model(IN_GROUPS).eval()
        mean.load_state_dict(model.state_dict())
        assert not np.allclose(mean(torch.from_numpy(faces).permute(0, 3, 1, 2).float())["age_years"].numpy(), ref)
    assert np.allclose(OnnxModel(report["path"]).run(faces)["age_years"], ref, atol=1e-2)
    with pytest.raises(ValueError, match="years_estimate"):
        ModelConfig(head="cls", tasks=("age", "gender", "age_years"), age_bins=101, years_estimate="mode")
