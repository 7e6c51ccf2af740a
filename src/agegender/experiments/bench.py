"""Table 2: per-image latency and throughput of the paper's four architectures on this machine.

Every network is timed in the same process and run, under PyTorch (eager, channels-last, inference
mode) and ONNX Runtime (fp32 export of the same weights), at two thread settings: one thread, and all
cores. Latency is the median of many batch-1 calls after warm-up; throughput is images / median time
of a large-batch call. Ratios are always to ours in the same setting, since this machine is shared and
absolute times drift between runs.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from agegender.models import count_parameters, create_model
from agegender.models.reference import reference_config

TABLE2_ARCHS = ("paper", "alexnet", "vgg16", "levi")
# The paper's Table 2 (seconds per image) as ratios to its own net: PC and phone.
PAPER_RATIO_PC = {"paper": 1.0, "alexnet": 15.0, "vgg16": 45.0, "levi": 9.0}
PAPER_RATIO_PHONE = {"paper": 1.0, "levi": 10.4}  # 5.2 s vs 0.5 s; the paper timed only these two on a phone


@dataclass
class SpeedRow:
    arch: str
    runtime: str
    threads: int
    input_size: int
    params: int
    gflops: float
    latency_ms: float  # median, batch 1
    latency_runs: int
    throughput: float  # images / s at `batch`
    batch: int


def gflops_per_image(model: torch.nn.Module, size: int) -> float:
    """Floating-point operations of one forward pass (a multiply-add counts 2), counted by PyTorch's
    FlopCounterMode from the ops the graph actually runs (convolutions and matrix products)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def time_calls(fn: Callable[[], object], warmup: int, min_runs: int, min_seconds: float,
               max_runs: int = 1000) -> list[float]:
    """Seconds per call: ``warmup`` untimed calls, then at least ``min_runs`` calls and ``min_seconds``."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < min_seconds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _torch_runner(model: torch.nn.Module, x: np.ndarray) -> Callable[[], object]:
    xt = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode():
            return model(xt)
    return run


def _onnx_file(model: torch.nn.Module, size: int, folder: Path) -> Path:
    path = folder / "model.onnx"
    tasks = list(model.cfg.tasks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.to(memory_format=torch.contiguous_format), (torch.zeros(1, 3, size, size),),
                          str(path), input_names=["image"], output_names=tasks,
                          dynamic_axes={"image": {0: "batch"}, **{t: {0: "batch"} for t in tasks}},
                          dynamo=False, opset_version=17)
    return path


def _ort_runner(path: Path, threads: int, x: np.ndarray) -> Callable[[], object]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda: sess.run(None, {name: x})


def measure_speed(archs: tuple[str, ...] = TABLE2_ARCHS, thread_settings: tuple[int, ...] = (1, 0),
                  runtimes: tuple[str, ...] = ("pytorch", "onnxruntime"), batch: int = 32,
                  min_seconds: float = 2.0, progress: Callable[[str], None] | None = None) -> list[SpeedRow]:
    """Time every (arch, runtime, threads) combination; threads 0 means all cores."""
    rows: list[SpeedRow] = []
    all_cores = os.cpu_count() or 1
    saved_threads = torch.get_num_threads()
    rng = np.random.default_rng(0)
    try:
        for arch in archs:
            torch.manual_seed(0)
            model = create_model(reference_config(arch, head="cls")).eval()
            size = model.cfg.input_size
            params, gflops = count_parameters(model), gflops_per_image(model, size)
            x1 = rng.uniform(0, 255, (1, 3, size, size)).astype(np.float32)
            xb = rng.uniform(0, 255, (batch, 3, size, size)).astype(np.float32)
            with tempfile.TemporaryDirectory() as tmp:
                onnx_path = _onnx_file(model, size, Path(tmp)) if "onnxruntime" in runtimes else None
                model = model.to(memory_format=torch.channels_last)
                for runtime in runtimes:
                    for setting in thread_settings:
                        threads = setting or all_cores
                        if progress:
                            progress(f"{arch} {runtime} {threads} thread(s)")
                        if runtime == "pytorch":
                            torch.set_num_threads(threads)
                            one, big = _torch_runner(model, x1), _torch_runner(model, xb)
                        elif runtime == "onnxruntime":
                            one, big = _ort_runner(onnx_path, threads, x1), _ort_runner(onnx_path, threads, xb)
                        else:
                            raise ValueError(f"unknown runtime {runtime!r}")
                        lat = time_calls(one, warmup=3, min_runs=10, min_seconds=min_seconds)
                        thr = time_calls(big, warmup=1, min_runs=3, min_seconds=min_seconds)
                        rows.append(SpeedRow(arch, runtime, threads, size, params, gflops,
                                             1000 * statistics.median(lat), len(lat),
                                             batch / statistics.median(thr), batch))
    finally:
        torch.set_num_threads(saved_threads)
    return rows


def speed_markdown(rows: list[SpeedRow]) -> str:
    """One table per (runtime, threads) setting, with each net's ratio to ours beside the paper's."""
    out = []
    settings = sorted({(r.runtime, r.threads) for r in rows}, key=lambda s: (s[0] != "pytorch", s[1]))
    for runtime, threads in settings:
        group = {r.arch: r for r in rows if (r.runtime, r.threads) == (runtime, threads)}
        ours = group.get("paper")
        out.append(f"**{runtime}, {threads} thread{'s' if threads > 1 else ''}**\n")
        batch = next(iter(group.values())).batch
        out.append("| network | input | params | GFLOP/image | latency ms (batch 1, median) | x ours "
                   f"| paper x ours (PC) | images/s (batch {batch}) | ours / it |")
        out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for arch in TABLE2_ARCHS:
            r = group.get(arch)
            if r is None:
                continue
            ratio = f"{r.latency_ms / ours.latency_ms:.1f}" if ours else "-"
            thr_ratio = f"{ours.throughput / r.throughput:.1f}" if ours else "-"
            paper = PAPER_RATIO_PC.get(arch)
            out.append(f"| {arch} | {r.input_size} | {r.params:,} | {r.gflops:.3f} | {r.latency_ms:.2f} | {ratio} "
                       f"| {paper:g} | {r.throughput:.0f} | {thr_ratio} |")
        out.append("")
    return "\n".join(out)


def rows_to_json(rows: list[SpeedRow]) -> list[dict]:
    return [asdict(r) for r in rows]
