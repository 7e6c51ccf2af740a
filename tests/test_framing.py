"""The crop that frames a detected face like UTKFace: box and landmark calibrations, roll, padding."""

import numpy as np
import pytest

from agegender.inference.detect import LANDMARKS, Detection
from agegender.inference.framing import (
    CROP_CALIBRATION,
    LANDMARK_CALIBRATION,
    NOSE_DEPTH,
    CropCalibration,
    crop_face,
    face_crop_box,
    face_roll,
    face_yaw,
)


@pytest.mark.parametrize("backend", sorted(CROP_CALIBRATION))
def test_face_crop_box_is_square_and_follows_the_calibration(backend):
    det = Detection((100.0, 80.0, 40.0, 50.0), 0.9)
    x, y, w, h = face_crop_box(det, (300, 400, 3), backend)
    c = CROP_CALIBRATION[backend]
    assert w == h == round(c.scale * np.sqrt(40 * 50))
    assert x + w / 2 == pytest.approx(100 + 40 * (0.5 + c.dx), abs=1)
    assert y + h / 2 == pytest.approx(80 + 50 * (0.5 + c.dy), abs=1)


def test_face_crop_box_may_leave_the_image_and_checks_its_input(monkeypatch):
    monkeypatch.setitem(CROP_CALIBRATION, "wide", CropCalibration(scale=1.6, dx=0.0, dy=0.1))
    det = Detection((0.0, 0.0, 30.0, 30.0), 0.9)
    assert face_crop_box(det, (30, 30, 3), "wide") == (-9, -6, 48, 48)  # side 48 around (15, 18)
    with pytest.raises(ValueError, match="no crop calibration"):
        face_crop_box(det, (30, 30, 3), "nope")
    with pytest.raises(ValueError, match="does not lie inside"):
        face_crop_box(Detection((50.0, 50.0, 30.0, 30.0), 0.9), (30, 30, 3), "haar")


def test_crop_face_inside_is_a_plain_slice():
    img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert np.array_equal(crop_face(img, (5, 3, 10, 12)), img[3:15, 5:15])


def test_crop_face_pads_by_edge_replication():
    img = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    out = crop_face(img, (-2, -1, 9, 7))  # 2 px past the left, 1 above, 2 right, 2 below
    assert out.shape == (7, 9, 3) and out.dtype == np.uint8
    assert np.array_equal(out[1:5, 2:7], img)
    assert np.array_equal(out[0], out[1]) and np.array_equal(out[5], img[3, [0, 0, 0, 1, 2, 3, 4, 4, 4]])
    assert np.array_equal(out[:, 0], out[:, 2]) and np.array_equal(out[:, 8], out[:, 6])
    corner = crop_face(img, (10, 10, 3, 3))  # wholly outside: the nearest corner pixel repeated
    assert (corner == img[3, 4]).all()
    with pytest.raises(ValueError, match="no area"):
        crop_face(img, (0, 0, 0, 5))


def _face(cx: float, cy: float, eye_gap: float, degrees: float = 0.0, box_scale: float = 2.5) -> Detection:
    """A BlazeFace-like detection: eyes eye_gap apart, nose and mouth below them, the eye line at
    ``degrees`` (positive: the person's left eye, on the picture's right, is lower), box around the face."""
    a = np.radians(degrees)
    ex, ey = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
    eye = np.array([cx, cy])
    pts = [eye - ex * eye_gap / 2, eye + ex * eye_gap / 2, eye + ey * 0.6 * eye_gap, eye + ey * 1.05 * eye_gap,
           eye - ex * eye_gap * 1.1 + ey * 0.3 * eye_gap, eye + ex * eye_gap * 1.1 + ey * 0.3 * eye_gap]
    side = box_scale * eye_gap
    box = (cx - side / 2, cy - 0.35 * side, side, side)
    return Detection(box, 0.9, tuple((float(x), float(y)) for x, y in pts))


def test_every_landmark_calibration_has_a_box_calibration_and_a_landmark_order():
    for backend, cal in LANDMARK_CALIBRATION.items():
        assert backend in CROP_CALIBRATION and backend in LANDMARKS
        assert min(cal.side) >= 0 and sum(cal.side) > 0  # the side grows with every distance


def test_landmark_frame_follows_the_calibration():
    det = _face(200, 150, 40)
    cal = LANDMARK_CALIBRATION["blazeface"]
    x, y, w, h = face_crop_box(det, (400, 400, 3), "blazeface")
    # eye frame = picture frame here: eye-eye 40, eye-mouth 42, box 100, eye-nose 24
    side = np.dot(cal.side, [40, 42, 100, 24])
    cx = 200 + np.dot(cal.x, [0, 0, 0, 40])
    cy = 150 + np.dot(cal.y, [24, 42, 0.15 * 100, 40])
    assert w == h == round(side)
    assert x + w / 2 == pytest.approx(cx, abs=1) and y + h / 2 == pytest.approx(cy, abs=1)
    # the same face without landmarks: the box frame, which differs
    assert face_crop_box(Detection(det.box, det.score), (400, 400, 3), "blazeface") != (x, y, w, h)


def test_landmark_frame_is_rotation_equivariant_and_falls_back_to_the_box():
    upright = face_crop_box(_face(200, 200, 40), (400, 400, 3), "blazeface")
    turned = face_crop_box(_face(200, 200, 40, degrees=25.0), (400, 400, 3), "blazeface")
    assert abs(upright[2] - turned[2]) <= 2  # same face size; the box of _face does not turn, so not equal
    # landmarks that disagree with the box (a bad fit): the box frame is used
    det = _face(200, 200, 40)
    far = Detection(det.box, det.score, _face(200, 200, 120).landmarks)
    assert face_crop_box(far, (400, 400, 3), "blazeface") == face_crop_box(
        Detection(det.box, det.score), (400, 400, 3), "blazeface")


def test_face_roll_levels_tilted_faces_and_leaves_upright_ones():
    cal = LANDMARK_CALIBRATION["blazeface"]
    assert face_roll(_face(200, 200, 40, degrees=cal.roll + 1.0), "blazeface") == 0.0  # inside the dead zone
    assert face_roll(_face(200, 200, 40, degrees=20.0), "blazeface") == pytest.approx(
        20.0 - cal.roll - cal.dead_zone, abs=1e-6)
    assert face_roll(_face(200, 200, 40, degrees=-20.0), "blazeface") == pytest.approx(
        -20.0 - cal.roll + cal.dead_zone, abs=1e-6)
    assert face_roll(Detection((0.0, 0.0, 10.0, 10.0), 0.9), "blazeface") == 0.0  # no landmarks
    assert face_roll(_face(200, 200, 40, degrees=20.0), "haar") == 0.0  # no landmark calibration


def _turned(degrees: float, nose_shift: float) -> Detection:
    """_face with its nose moved along the eye line by ``nose_shift`` eye distances (toward the left eye)."""
    det = _face(200, 200, 40, degrees=degrees)
    a = np.radians(degrees)
    pts = list(det.landmarks)
    pts[2] = (pts[2][0] + np.cos(a) * nose_shift * 40, pts[2][1] + np.sin(a) * nose_shift * 40)
    return Detection(det.box, det.score, tuple(pts))


def test_face_yaw_reads_the_turn_from_the_nose_and_ignores_the_roll():
    assert face_yaw(_face(200, 200, 40), "blazeface") == pytest.approx(0.0, abs=1e-9)
    # offset / eye distance = NOSE_DEPTH * tan(yaw)
    for shift in (0.5, -0.25, 0.1):
        want = np.degrees(np.arctan(shift / NOSE_DEPTH))
        for roll in (0.0, 25.0, -40.0):  # a tilted head turned as much gives the same yaw
            assert face_yaw(_turned(roll, shift), "blazeface") == pytest.approx(want, abs=1e-6)
    assert face_yaw(_turned(0.0, 0.5), "blazeface") == pytest.approx(45.0)
    assert face_yaw(Detection((0.0, 0.0, 10.0, 10.0), 0.9), "blazeface") is None  # no landmarks
    assert face_yaw(_turned(0.0, 0.5), "haar") is None  # a backend without landmarks


def test_crop_face_with_an_angle_undoes_a_rotation():
    import cv2

    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8), (0, 0), 4)
    m = cv2.getRotationMatrix2D((100, 100), -20.0, 1.0)  # turn the picture 20 degrees clockwise
    turned = cv2.warpAffine(img, m, (200, 200), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    box = (60, 60, 80, 80)
    back = crop_face(turned, box, angle=20.0).astype(float)
    want = img[60:140, 60:140].astype(float)
    assert back.shape == want.shape
    assert np.abs(back - want).mean() < 0.25 * np.abs(crop_face(turned, box).astype(float) - want).mean()
