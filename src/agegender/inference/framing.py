"""The crop that frames a detected face like a UTKFace aligned crop: from the detector's landmarks where
they are calibrated, else from its box, turned so the eye line is level.

    for d in det.detect(rgb):                    # agegender.inference.detect
        face = crop_face(rgb, face_crop_box(d, rgb.shape, det.name), face_roll(d, det.name))

The constants are measured on the 600 native 200x200 UTKFace crops by benchmarks/detectors.py, which
prints them beside the stored ones (docs/DETECTORS.md). No torch here: prediction must stay light.
"""

from __future__ import annotations

import math

import numpy as np

# Each backend's calibration lives in its own module (agegender.inference.detect.*), fitted there by
# benchmarks/detectors.py; the tables are collected in agegender.inference.detect.
from agegender.inference.detect import (  # noqa: F401 (re-exported: the frames are read from here)
    CROP_CALIBRATION,
    LANDMARK_CALIBRATION,
    LANDMARKS,
    CropCalibration,
    Detection,
    LandmarkCalibration,
    check_image,
)

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


# The nose tip's depth in front of the eyes, as a share of the distance between them (about 30 mm against
# about 62 mm between the pupils of an adult face). Turning the head by a yaw angle moves the nose tip off the
# eyes' midpoint by depth * sin(yaw) while the eyes' distance shrinks by cos(yaw), so the nose's offset over
# the eyes' distance, both as the picture shows them, is NOSE_DEPTH * tan(yaw).
NOSE_DEPTH = 0.5


def face_yaw(det: Detection, backend: str) -> float | None:
    """Approximate left-right turn of the head in degrees, from the detector's eye and nose landmarks: 0
    facing the camera, positive when the nose is nearer the face's own left eye (the face turned toward the
    viewer's right). None for a backend without landmarks. A rough geometric estimate (one depth for every
    face, no camera model), meant for telling frontal from turned faces: turned faces are where gender and
    age are least reliable (docs/MODEL_CARD.md)."""
    f = landmark_features(det, backend)
    if f is None:
        return None
    x_f = f[4]  # the nose's offset from the eyes' midpoint along the eye line, ..., the eyes' distance
    return math.degrees(math.atan2(x_f[0], NOSE_DEPTH * x_f[-1]))


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
    check_image(image)
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
