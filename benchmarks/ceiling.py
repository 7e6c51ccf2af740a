"""Batch throughput of the bundled models against this CPU's measured compute ceiling, in one run.

    python benchmarks/ceiling.py --docs docs/BENCHMARKS.md

The ceiling is what ONNX Runtime itself reaches on this machine on large dense kernels: the faster of a
(512 x 4096) x (4096 x 4096) MatMul and a 3 x 3 convolution shaped like the paper net's third layer, in fp32
and, for int8, the same shapes as QLinearMatMul / QLinearConv (uint8 x int8), each on 1 and on all threads,
best of a few runs. A model's rate is its multiply-adds per face (counted from
its ONNX graph: Conv, Gemm, MatMul) times the faces per second it predicts on aligned 64 px faces at the
batch size given, through ``OnnxModel.run`` (what ``predict --aligned`` calls); the ratio is that rate over
the ceiling of its precision on the same threads.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

from agegender.inference import runtime
from agegender.inference.predict import bundled_file
from agegender.inference.runtime import SPLIT_MIN, OnnxModel, int8_is_faster
from agegender.provenance import publish

M, K, N = 512, 4096, 4096


def session(model: onnx.ModelProto, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def gemm_model(int8: bool) -> tuple[onnx.ModelProto, dict]:
    rng = np.random.default_rng(0)
    if not int8:
        w = numpy_helper.from_array(rng.standard_normal((K, N)).astype(np.float32), "w")
        node = helper.make_node("MatMul", ["x", "w"], ["y"])
        x_type, feed = TensorProto.FLOAT, {"x": rng.standard_normal((M, K)).astype(np.float32)}
        inits = [w]
        y_type = TensorProto.FLOAT
    else:
        w = numpy_helper.from_array(rng.integers(-64, 64, (K, N), dtype=np.int8), "w")
        scalars = [numpy_helper.from_array(np.array(v, dtype=t), name) for name, v, t in (
            ("xs", 0.02, np.float32), ("xz", 128, np.uint8), ("ws", 0.01, np.float32), ("wz", 0, np.int8),
            ("ys", 0.5, np.float32), ("yz", 128, np.uint8))]
        node = helper.make_node("QLinearMatMul", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"])
        x_type, feed = TensorProto.UINT8, {"x": rng.integers(0, 256, (M, K), dtype=np.uint8)}
        inits = [w, *scalars]
        y_type = TensorProto.UINT8
    graph = helper.make_graph([node], "gemm", [helper.make_tensor_value_info("x", x_type, [M, K])],
                              [helper.make_tensor_value_info("y", y_type, [M, N])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), feed


CB, CC, CHW = 64, 256, 16  # conv ceiling: (64, 256, 16, 16) input, 256 filters of 3 x 3, padding 1


def conv_model(int8: bool) -> tuple[onnx.ModelProto, dict]:
    """A 3 x 3 convolution like the paper net's third layer, fp32 (Conv) or int8 (QLinearConv)."""
    rng = np.random.default_rng(0)
    shape = [CB, CC, CHW, CHW]
    attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    if not int8:
        w = numpy_helper.from_array(rng.standard_normal((CC, CC, 3, 3)).astype(np.float32), "w")
        node = helper.make_node("Conv", ["x", "w"], ["y"], **attrs)
        feed, inits, t = {"x": rng.standard_normal(shape).astype(np.float32)}, [w], TensorProto.FLOAT
    else:
        w = numpy_helper.from_array(rng.integers(-64, 64, (CC, CC, 3, 3), dtype=np.int8), "w")
        scalars = [numpy_helper.from_array(np.array(v, dtype=dt), name) for name, v, dt in (
            ("xs", 0.02, np.float32), ("xz", 128, np.uint8), ("ws", 0.01, np.float32), ("wz", 0, np.int8),
            ("ys", 0.5, np.float32), ("yz", 128, np.uint8))]
        node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], **attrs)
        feed, inits, t = {"x": rng.integers(0, 256, shape, dtype=np.uint8)}, [w, *scalars], TensorProto.UINT8
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", t, shape)],
                              [helper.make_tensor_value_info("y", t, shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), feed


def best_rate(sess, feed: dict, macs: float, runs: int) -> float:
    """Multiply-adds per second: the best of ``runs`` timed calls after a warm-up."""
    sess.run(None, feed)
    best = min(_timed(sess, feed) for _ in range(runs))
    return macs / best


def _timed(sess, feed) -> float:
    t = time.perf_counter()
    sess.run(None, feed)
    return time.perf_counter() - t


def measured_ceiling(int8: bool, threads: int, runs: int) -> float:
    """Multiply-adds per second: the faster of the dense MatMul and the 3x3 convolution, best of ``runs``."""
    kernels = [(*gemm_model(int8), float(M) * K * N), (*conv_model(int8), float(CB) * CC * CHW * CHW * CC * 9)]
    return max(best_rate(session(model, threads), feed, macs, runs) for model, feed, macs in kernels)


def macs_per_face(path, input_dims: tuple[int, ...] | None = None) -> float:
    """Multiply-adds of one face through the model: Conv, Gemm and MatMul nodes (shapes inferred at batch 1,
    or with the input fixed to ``input_dims`` for a graph whose other dimensions are free too)."""
    model = onnx.load(str(path))
    for inp in model.graph.input:
        dims = inp.type.tensor_type.shape.dim
        for d, v in zip(dims, input_dims or (1,), strict=False):
            d.ClearField("dim_param")
            d.dim_value = v
    model = shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*model.graph.value_info, *model.graph.input, *model.graph.output]}
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    shapes.update(inits)
    total = 0.0
    for node in model.graph.node:
        if node.op_type in ("Conv", "QLinearConv", "ConvInteger"):
            w = shapes[node.input[3 if node.op_type == "QLinearConv" else 1]]
            out = shapes[node.output[0]]
            total += float(np.prod(out)) * float(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul", "QLinearMatMul", "MatMulInteger"):
            a = shapes[node.input[0]]
            out = shapes[node.output[0]]
            k = a[-1] if node.op_type != "Gemm" or not any(x.name == "transA" and x.i for x in node.attribute) else a[0]
            total += float(np.prod(out)) * k
    return total


def faces_per_second(path, threads: int, batch: int, seconds: float, slices: bool = True) -> float:
    """``slices=False``: as before OnnxModel ran large batches as parallel slices (one session, all threads)."""
    runtime.SPLIT_MIN = SPLIT_MIN if slices else 10**9
    model = OnnxModel(path, threads=threads)
    faces = np.random.default_rng(0).integers(0, 256, (batch, model.size, model.size, 3), dtype=np.uint8)
    model.run(faces)
    times = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < 5:
        t = time.perf_counter()
        model.run(faces)
        times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def main() -> None:
    import os

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="default,fast")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seconds", type=float, default=4.0, help="timing per model and thread count")
    ap.add_argument("--runs", type=int, default=7, help="timed GEMM calls (the best counts)")
    ap.add_argument("--docs")
    ap.add_argument("--section", default="Batch throughput against the compute ceiling",
                    help="section of --docs to write (e.g. one per CPU kind)")
    args = ap.parse_args()
    threads_list = sorted({1, os.cpu_count() or 1})
    ceilings = {}
    for precision in ("fp32", "int8"):
        for threads in threads_list:
            ceilings[precision, threads] = measured_ceiling(precision == "int8", threads, args.runs)
    rows = []
    for name in args.models.split(","):
        for precision in ("float", "int8"):
            path = bundled_file(name, precision)
            if not path.is_file():
                continue
            macs = macs_per_face(path)
            kind = "int8" if precision == "int8" else "fp32"
            for threads, slices in [(t, True) for t in threads_list] + [(t, False) for t in threads_list if t > 1]:
                fps = faces_per_second(path, threads, args.batch, args.seconds, slices)
                rate = fps * macs
                how = "" if slices or threads == 1 else ", one session (no slices)"
                rows.append((f"{name} ({path.name}){how}", kind, threads, macs / 1e6, fps, rate / 1e9,
                             ceilings[kind, threads] / 1e9, rate / ceilings[kind, threads]))
    lines = [f"Ceiling: the faster of two dense kernels in ONNX Runtime, a ({M} x {K}) x ({K} x {N}) product and a "
             f"3 x 3 convolution of {CC} to {CC} channels on ({CB}, {CC}, {CHW}, {CHW}), best of {args.runs} calls; "
             "models: "
             f"aligned 64 px faces at batch {args.batch} through `OnnxModel.run` (on 2+ threads a batch runs as "
             "one slice per thread, each in its own 1-thread session; the \"one session\" rows are the same "
             f"batch in one session with all the threads, as before), median over {args.seconds:g} s. "
             f"This CPU {'has' if int8_is_faster() else 'lacks'} the int8 instructions (VNNI or AVX2) under which "
             f"the int8 file is faster, so `--precision auto` picks {'int8' if int8_is_faster() else 'float'}.", "",
             "| ceiling | threads | G multiply-adds/s |", "|---|---:|---:|"]
    lines += [f"| {p} | {t} | {v / 1e9:.1f} |" for (p, t), v in ceilings.items()]
    lines += ["", "| model | computes in | threads | M multiply-adds / face | faces/s | G multiply-adds/s | "
                  "ceiling | share of ceiling |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {m} | {k} | {t} | {mm:.1f} | {fps:,.0f} | {r:.1f} | {c:.1f} | **{share:.0%}** |"
              for m, k, t, mm, fps, r, c, share in rows]
    publish(args.docs, args.section, "\n".join(lines))


if __name__ == "__main__":
    main()
