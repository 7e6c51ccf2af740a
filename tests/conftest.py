import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Every test gets the same private cache folder, never the user's.
    monkeypatch.setenv("AGEGENDER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED


@pytest.fixture
def small_faces(tmp_path):
    """24 synthetic 32x32 UTKFace faces as a FaceSet, for short fit() runs."""
    from fixtures import make_utkface

    from agegender.data.datasets import read_dataset
    from agegender.data.faceset import build_faceset

    records, _ = read_dataset("utkface", str(make_utkface(tmp_path / "utk", n=24, size=32)), verbose=False)
    return build_faceset(records, 32, tag="test", progress=False)


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory):
    """(exported .onnx path, checkpoint folder) of a small random-weight cls model."""
    import torch

    from agegender.config import ModelConfig
    from agegender.export import export_onnx
    from agegender.models import create_model
    from agegender.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cfg = ModelConfig(head="cls")
    folder = tmp_path_factory.mktemp("m") / "checkpoint"
    save_checkpoint(folder, create_model(cfg).eval(), cfg)
    return export_onnx(folder, folder.parent / "m.onnx")["path"], folder
