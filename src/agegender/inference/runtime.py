"""Torch-free inference: an exported ONNX model run with ONNX Runtime.

The model file carries its own description (labels, input size, tasks, head) in the ONNX metadata key
``agegender``, written by agegender.export.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np

META_KEY = "agegender"


class ModelError(ValueError):
    """A model file that cannot be used; the message names the file."""


MAX_INPUT_SIZE = 1024

# CPU features under which the bundled int8 files run faster than the float ones at the same accuracy:
# VNNI / AMX int8 dot products, and AVX2's u8 x s8 multiply-adds (pairs summed in int16: the int8 files'
# 7-bit weights keep those sums from saturating, so the results are the VNNI machines' to the bit). Measured
# on an AVX2-only EPYC: 2.1x faster at batch 1, 1.27x at batch 64, the same held-out accuracy
# (docs/BENCHMARKS.md, "Bundled files: float and int8"). Older CPUs (SSE only) get the float file.
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "avx2")


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux names them (empty where /proc/cpuinfo is not readable)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def int8_is_faster() -> bool:
    """Whether the int8 files are the faster choice on this CPU (INT8_FLAGS); AGEGENDER_NO_INT8=1 says no."""
    if os.environ.get("AGEGENDER_NO_INT8", "") not in ("", "0"):
        return False
    return any(flag in cpu_flags() for flag in INT8_FLAGS)


def _checked_meta(path: Path, raw: str) -> dict:
    """The model's metadata, checked before anything is sized from it (a hand-edited or foreign file must
    give a clear error, not a traceback or a 100000² allocation)."""
    try:
        meta = json.loads(raw)
        size = meta["input"]["size"]
        tasks, head, labels = meta["model"]["tasks"], meta["model"]["head"], meta["labels"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ModelError(f"{path}: malformed '{META_KEY}' metadata ({type(err).__name__}: {err})") from None
    if not isinstance(size, int) or not 8 <= size <= MAX_INPUT_SIZE:
        raise ModelError(f"{path}: metadata input size {size!r} is not an integer from 8 to {MAX_INPUT_SIZE}")
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
        raise ModelError(f"{path}: metadata tasks {tasks!r} is not a list of task names")
    if not isinstance(head, str) or not isinstance(labels, dict) or not all(
            isinstance(v, list) and all(isinstance(x, str) for x in v) for v in labels.values()):
        raise ModelError(f"{path}: metadata head / labels malformed")
    return meta


SPLIT_MIN = 16  # faces per thread from which a batch is run as parallel slices (OnnxModel.run)


class OnnxModel:
    """``run(faces)`` on uint8 faces (N, S, S, 3) RGB -> raw outputs per task (logits or values)."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: no such model file")
        self.threads = threads or os.cpu_count() or 1
        self.session = self._session(threads)
        self._split: tuple | None = None  # (pool, one 1-thread session per thread), made on the first large batch
        self._split_lock = threading.Lock()
        raw = self.session.get_modelmeta().custom_metadata_map.get(META_KEY)
        if raw is None:
            raise ModelError(f"{self.path}: ONNX file has no '{META_KEY}' metadata (export it with `agegender export`)")
        self.meta = _checked_meta(self.path, raw)
        self.precision = str(self.meta.get("precision", "fp32"))
        self.size = int(self.meta["input"]["size"])
        self.tasks = list(self.meta["model"]["tasks"])
        self.labels: dict[str, list[str]] = self.meta["labels"]
        self.head = self.meta["model"]["head"]
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        shape = self.session.get_inputs()[0].shape
        if len(shape) != 4 or any(isinstance(d, int) and d != self.size for d in shape[2:]):
            raise ModelError(f"{self.path}: metadata says {self.size} px faces but the graph's input is {shape}")

    def _session(self, threads: int | None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            return ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for bad files
            raise ModelError(f"{self.path}: not a usable ONNX model ({err})") from None

    def run(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        """Raw outputs of a batch. A batch of at least ``SPLIT_MIN`` faces per thread runs as that many
        slices at once, each in its own one-thread session (data-parallel): the small layers of these
        nets leave ONNX Runtime's intra-op threads waiting: on 2 cores the int8 default ran 1,328 vs 1,274
        faces/s in one session (77 vs 74 % of the int8 ceiling, same run; docs/BENCHMARKS.md, "Batch
        throughput against the compute ceiling"). Small batches use one session with all the threads
        (lowest latency)."""
        if faces.ndim != 4 or faces.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"expected faces of shape (N, {self.size}, {self.size}, 3), got {faces.shape}")
        x = np.ascontiguousarray(faces.transpose(0, 3, 1, 2), dtype=np.float32)
        if self.threads > 1 and len(x) >= SPLIT_MIN * self.threads:
            return self._run_split(x)
        outs = self.session.run(self.output_names, {self.input_name: x})
        return dict(zip(self.output_names, outs, strict=True))

    def _run_split(self, x: np.ndarray) -> dict[str, np.ndarray]:
        with self._split_lock:  # sessions may be shared by threads (ONNX Runtime's run is thread-safe)
            if self._split is None:
                from concurrent.futures import ThreadPoolExecutor

                self._split = (ThreadPoolExecutor(self.threads, thread_name_prefix="onnx-slice"),
                               [self._session(1) for _ in range(self.threads)])
        pool, sessions = self._split
        slices = np.array_split(x, self.threads)
        futures = [pool.submit(s.run, self.output_names, {self.input_name: part})
                   for s, part in zip(sessions, slices, strict=True)]
        parts = [f.result() for f in futures]
        return {name: np.concatenate([p[i] for p in parts]) for i, name in enumerate(self.output_names)}
