"""Batch prediction scaled out on Ray Data (``pip install "agegender[ray]"``): one Predictor per actor.

    agegender predict-ray PHOTOS_DIR --out records.parquet        # a local Ray instance on this machine
    agegender predict-ray s3://bucket/photos --out s3://bucket/records --address auto   # a running cluster

Files are read with ``ray.data.read_binary_files`` (local paths or any filesystem pyarrow knows: s3://,
gs://, ...), decoded, detected and classified in ``map_batches`` by a callable class that loads the model
and its detector once per actor, and written as Parquet or JSON lines. Records are ``predict``'s: one per
face, or one with ``error`` for a file that is not a usable image or has no face; the run carries on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from agegender.inference.predict import OPTIONAL_FIELDS, FaceResult, Predictor, extra_tasks
from agegender.preprocess import IMAGE_SUFFIXES

# One read task streams far more photos per second than one predictor actor classifies (a photo is
# ~100 KB; an actor does 50-100 a second), so a few readers feed many actors.
READER_PER_ACTORS = 8
FIELDS = [f for f in FaceResult.__dataclass_fields__ if f != "tasks"]  # further tasks: a column each


class PredictBatch:
    """The per-actor callable: builds its Predictor once (one ONNX thread: Ray gives each actor a core)."""

    def __init__(self, model: str | None = None, detector: str = "default", aligned: bool = False,
                 mirror: bool = True, threads: int = 1, precision: str = "auto"):
        self.predictor = Predictor(model, detector=detector, aligned=aligned, threads=threads, mirror=mirror,
                                   precision=precision)

    def __call__(self, batch: dict) -> dict:
        rows: list[FaceResult] = []
        for data, path in zip(batch["bytes"], batch["path"], strict=True):
            rows.extend(self.predictor.records_for_bytes(bytes(data), str(path)))
        columns = {name: [getattr(r, name) for r in rows] for name in FIELDS}
        for task in extra_tasks(self.predictor.model.labels):  # e.g. race, race_probs
            for key in (task, f"{task}_probs"):
                columns[key] = [(r.tasks or {}).get(key) for r in rows]
        return columns


def predict_dataset(inputs: list[str], model: str | None = None, detector: str = "default",
                    aligned: bool = False, mirror: bool = True, actors: int | None = None, batch_size: int = 16,
                    precision: str = "auto", readers: int | None = None):
    """A lazy ``ray.data.Dataset`` of face records for the image files under ``inputs``.

    ``readers``: concurrent read tasks (default: one per ``READER_PER_ACTORS`` actors). Reading is I/O: it
    takes no CPU slot, so that one actor per CPU never starves the reads that feed it; but left unbounded,
    Ray starts a worker process per read task, and on a 2-core machine those start-ups (about 3 s each)
    were most of the run (docs/BENCHMARKS.md, "Batch prediction on Ray Data")."""
    import ray

    actors = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
    readers = readers or max(1, actors // READER_PER_ACTORS)
    ds = ray.data.read_binary_files(inputs, include_paths=True, ray_remote_args={"num_cpus": 0},
                                    file_extensions=[s.lstrip(".") for s in IMAGE_SUFFIXES],
                                    concurrency=readers)
    return ds.map_batches(PredictBatch, fn_constructor_kwargs={"model": model, "detector": detector,
                                                               "aligned": aligned, "mirror": mirror,
                                                               "precision": precision},
                          batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1,
                          batch_format="numpy")


def _record(row: dict) -> dict:
    d = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in row.items()}
    for key in [k for k in d if k not in FIELDS or k in OPTIONAL_FIELDS]:
        if d[key] is None:  # as predict's records: no error key when none, no race on an error record
            d.pop(key)
    return d


def run(inputs: list[str], out: str, *, address: str | None = None, num_cpus: int | None = None,
        force: bool = False, **kwargs) -> tuple[int, int]:
    """Predict and write ``out``: a ``.jsonl`` file (streamed through this process, in input order) or a
    folder / object-storage prefix of Parquet files (written by the workers). Returns (faces, failed)."""
    import ray

    local = "://" not in out
    if local and Path(out).exists() and not force:
        raise FileExistsError(f"--out {out} exists; pass --force to replace it")
    for item in inputs:
        if "://" not in item and not os.path.exists(item):
            raise FileNotFoundError(f"{item}: no such file or folder")
    ray.init(address=address, num_cpus=num_cpus if address is None else None, ignore_reinit_error=True,
             log_to_driver=False, include_dashboard=False)
    ds = predict_dataset(inputs, **kwargs)
    faces = failed = 0
    if out.endswith(".jsonl"):
        with open(out, "w" if force else "x") as stream:
            for row in ds.iter_rows():
                rec = _record(row)
                failed += "error" in rec
                faces += "error" not in rec
                stream.write(json.dumps(rec) + "\n")
    else:
        ds = ds.materialize()
        errors = ds.filter(lambda r: r["error"] is not None).count()
        failed, faces = errors, ds.count() - errors
        ds.write_parquet(out)
    return faces, failed
