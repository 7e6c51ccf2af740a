"""`agegender train` and `cv` unchanged under torchrun: 2 CPU processes on the gloo backend."""

import json
import os
import subprocess
import sys

from fixtures import make_utkface


def _torchrun(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AGEGENDER_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "agegender.cli", *args, "--threads", "1", "--no-progress"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_train_and_cv_under_torchrun(tmp_path):
    root = make_utkface(tmp_path / "utk", n=40, size=32).parent
    common = ["--dataset", "utkface", "--data-root", str(root), "--epochs", "2", "--batch-size", "8",
              "--lr", "0.01", "--head", "cls"]
    run = _torchrun(["train", *common, "--out", str(tmp_path / "train")], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "world size 2" in run.stderr
    rows = [json.loads(line) for line in (tmp_path / "train" / "log.jsonl").read_text().splitlines()]
    # one log line per epoch (rank 0 only); each rank trains on its half of the 5 batches of 8
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(r["train_images"] == 16 for r in rows)
    assert (tmp_path / "train" / "checkpoint" / "model.safetensors").is_file()

    run = _torchrun(["cv", *common, "--folds", "2", "--out", str(tmp_path / "cv")], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((tmp_path / "cv" / "results.json").read_text())
    assert results["summary"]["folds_done"] == [0, 1]
    assert all("gender_acc" in f["metrics"] for f in results["folds"])
    assert run.stderr.count("fold 0:") == 1  # not once per rank
