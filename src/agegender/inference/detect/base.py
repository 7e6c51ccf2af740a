"""The pieces every face detector backend shares: the Detection record and the Detector interface,
input checks and resizing, mapping boxes back, IoU and weighted NMS, and the calibration types that frame a
backend's detections like UTKFace's crops (each backend module holds its own calibration values)."""

from __future__ import annotations

from dataclasses import dataclass
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

    def scaled(self, sx: float, sy: float) -> Detection:
        """The same detection in a picture scaled by ``sx`` across and ``sy`` down (box and landmarks)."""
        x, y, w, h = self.box
        points = None if self.landmarks is None else tuple((px * sx, py * sy) for px, py in self.landmarks)
        return Detection((x * sx, y * sy, w * sx, h * sy), self.score, points)


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
