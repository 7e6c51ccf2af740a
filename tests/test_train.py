import json

import numpy as np
import pytest
import torch
from fixtures import make_utkface
from safetensors.torch import load_file

from agegender.config import ModelConfig, TrainConfig
from agegender.data.cache import cache_dir
from agegender.data.datasets import read_dataset
from agegender.data.faceset import FaceSet, build_faceset, label_arrays
from agegender.training.augment import flip_shift as augment
from agegender.training.checkpoint import load_checkpoint
from agegender.training.engine import TrainingDiverged, learning_rate
from agegender.training.train import fit


@pytest.fixture
def tiny_set(tmp_path) -> FaceSet:
    records, _ = read_dataset("utkface", str(make_utkface(tmp_path / "utk", n=24, size=32)), verbose=False)
    return build_faceset(records, 32, tag="test", progress=False)


def _cfg(**kw):
    return TrainConfig(**{"epochs": 2, "batch_size": 8, "lr": 0.01, "lr_step_epochs": (1,), "threads": 1,
                          **kw})


def test_cache_goes_to_the_cache_folder(tiny_set, tmp_path):
    files = list(cache_dir().glob("test-32px-*.u8"))
    assert files and not list((tmp_path / "utk").rglob("*.u8"))
    assert tiny_set.images.shape == (len(tiny_set), 32, 32, 3) and tiny_set.images.dtype == np.uint8


@pytest.mark.parametrize("head", ["reg", "cls"])
def test_loss_goes_down_on_a_tiny_batch(tiny_set, tmp_path, head):
    small = tiny_set.subset(range(8))
    res = fit(ModelConfig(head=head, input_size=32), _cfg(epochs=25, lr_step_epochs=(), augment=False,
                                                          lr=0.005, weight_decay=0.0, grad_clip=1.0),
              small, tmp_path / head, progress=False, log=lambda m: None)
    losses = [h["loss"] for h in res["history"]]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tiny_set, tmp_path):
    mcfg = ModelConfig(head="cls", input_size=32)
    fit(mcfg, _cfg(), tiny_set, tmp_path / "straight", progress=False, log=lambda m: None)
    _train_one_then_stop(mcfg, tiny_set, tmp_path / "resumed")
    fit(mcfg, _cfg(), tiny_set, tmp_path / "resumed", resume=True, progress=False, log=lambda m: None)
    a = load_file(str(tmp_path / "straight" / "checkpoint" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "checkpoint" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    log = [json.loads(line) for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [1, 2]


def _train_one_then_stop(mcfg, faces, out):
    """Run the 2-epoch config but stop after epoch 1, as a killed process would."""
    class Stop(Exception):
        pass

    def log(msg):
        if msg.startswith("epoch 1 "):
            raise Stop

    with pytest.raises(Stop):
        fit(mcfg, _cfg(), faces, out, progress=False, log=log)


def test_resume_may_change_threads_but_not_the_recipe(tiny_set, tmp_path):
    mcfg = ModelConfig(head="cls", input_size=32)
    _train_one_then_stop(mcfg, tiny_set, tmp_path / "r")
    with pytest.raises(ValueError, match="another config"):
        fit(mcfg, _cfg(lr=0.02), tiny_set, tmp_path / "r", resume=True, progress=False, log=lambda m: None)
    n = torch.get_num_threads()
    try:
        fit(mcfg, _cfg(threads=2), tiny_set, tmp_path / "r", resume=True, progress=False, log=lambda m: None)
    finally:
        torch.set_num_threads(n)
    log = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [1, 2]


def test_existing_run_is_not_overwritten(tiny_set, tmp_path):
    mcfg = ModelConfig(input_size=32)
    fit(mcfg, _cfg(epochs=1), tiny_set, tmp_path / "r", progress=False, log=lambda m: None)
    with pytest.raises(FileExistsError, match="--resume"):
        fit(mcfg, _cfg(epochs=1), tiny_set, tmp_path / "r", progress=False, log=lambda m: None)
    with pytest.raises(ValueError, match="another config"):
        fit(mcfg, _cfg(epochs=3), tiny_set, tmp_path / "r", resume=True, progress=False, log=lambda m: None)


def test_non_finite_loss_stops_with_a_clear_message(tiny_set, tmp_path):
    with pytest.raises(TrainingDiverged, match="non-finite loss"):
        fit(ModelConfig(input_size=32), _cfg(lr=1e6, epochs=3), tiny_set, tmp_path / "nan", progress=False,
            log=lambda m: None)


def test_checkpoint_carries_what_is_needed(tiny_set, tmp_path):
    fit(ModelConfig(head="cls", input_size=32), _cfg(epochs=1), tiny_set, tmp_path / "c", progress=False,
        log=lambda m: None)
    model, meta = load_checkpoint(tmp_path / "c" / "checkpoint")
    assert meta["labels"]["age"][4] == "25-32" and meta["labels"]["gender"] == ["male", "female"]
    assert meta["input"]["size"] == 32 and meta["epoch"] == 1 and not model.training
    # the size is stored once (model.input_size); an older meta.json holding both copies must agree
    import json

    path = tmp_path / "c" / "checkpoint" / "meta.json"
    on_disk = json.loads(path.read_text())
    assert "size" not in on_disk["input"] and on_disk["model"]["input_size"] == 32
    path.write_text(json.dumps({**on_disk, "input": {**on_disk["input"], "size": 32}}))
    assert load_checkpoint(tmp_path / "c" / "checkpoint")[1]["input"]["size"] == 32
    path.write_text(json.dumps({**on_disk, "input": {**on_disk["input"], "size": 64}}))
    with pytest.raises(ValueError, match="disagrees with model.input_size 32"):
        load_checkpoint(tmp_path / "c" / "checkpoint")


def test_schedule_and_augment():
    cfg = TrainConfig(lr=0.1, lr_step_epochs=(25,), warmup_epochs=1.0)
    assert learning_rate(cfg, 0.5) == pytest.approx(0.1 * (0.5 + 1e-3))
    assert learning_rate(cfg, 10) == pytest.approx(0.1) and learning_rate(cfg, 25) == pytest.approx(0.01)
    batch = torch.randint(0, 255, (6, 3, 16, 16), dtype=torch.uint8)
    out = augment(batch, 2, torch.Generator().manual_seed(0))
    assert out.shape == batch.shape and out.dtype == torch.uint8


def test_label_arrays_fill_missing():
    from agegender.data.readers import Record

    arrays = label_arrays([Record("a", {"gender": 1}), Record("b", {"age": 3, "gender": 0})])
    assert arrays["age"].tolist() == [-1, 3] and arrays["gender"].tolist() == [1, 0]
