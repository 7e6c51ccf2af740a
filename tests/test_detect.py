"""Face detector interface, crop geometry and backends; fixtures are built by code.

Backends whose packages are not installed are skipped; the YuNet test needs the shared peer file.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agegender.detect import (
    BACKENDS,
    CROP_CALIBRATION,
    DEFAULT_BACKEND,
    LANDMARK_CALIBRATION,
    LANDMARKS,
    BlazeFaceDetector,
    CropCalibration,
    Detection,
    _blazeface_file,
    _finish,
    _rescale,
    _resize,
    _weighted_nms,
    create_detector,
    crop_face,
    face_crop_box,
    face_roll,
)

YUNET = Path(__file__).resolve().parents[2] / "shared" / "peers" / "yunet" / "face_detection_yunet_2026may.onnx"
NEEDS = {  # backend -> modules it imports
    "haar": ("cv2",),
    "blazeface": ("ai_edge_litert",),
    "blazeface_fast": ("ai_edge_litert",),
    "blazeface_short": ("ai_edge_litert",),
    "dlib": ("dlib",),
    "yunet": ("cv2",),
}


def _need(backend: str) -> None:
    for module in NEEDS[backend]:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} not installed (needed by the {backend} backend)")
    if backend.startswith("blazeface"):
        try:
            _blazeface_file("face_detection_full_range.tflite")
        except ImportError as err:
            pytest.skip(str(err))


def _noise(h: int = 480, w: int = 640, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _astronaut() -> np.ndarray:
    # The 512x512 public-domain NASA portrait bundled with the package (scikit-image's copy, as JPEG).
    from agegender.predict import EXAMPLE_PHOTO, asset_path
    from agegender.preprocess import load_image

    return load_image(asset_path(EXAMPLE_PHOTO))


def _check(dets: list[Detection], shape: tuple[int, ...]) -> None:
    h, w = shape[:2]
    assert all(isinstance(d, Detection) for d in dets)
    assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
    for d in dets:
        x, y, bw, bh = d.box
        assert x >= 0 and y >= 0 and bw > 0 and bh > 0 and x + bw <= w + 1e-6 and y + bh <= h + 1e-6


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(ValueError, match="nope") as err:
        create_detector("nope")
    for name in BACKENDS:
        assert name in str(err.value)


def test_detect_module_imports_nothing_heavy():
    code = ("import sys, agegender.detect; "
            "print(','.join(m for m in ('torch', 'cv2', 'dlib', 'ai_edge_litert') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "yunet"])
def test_backend_interface_on_noise(backend):
    _need(backend)
    det = create_detector(backend)
    assert det.name == backend
    for img in (_noise(), _noise(40, 30, seed=1), _noise(900, 1400, seed=2)):
        _check(det.detect(img), img.shape)
    with pytest.raises(ValueError, match="RGB uint8"):
        det.detect(_noise()[..., 0])


def test_default_backend_finds_no_face_in_noise():
    _need(DEFAULT_BACKEND)
    det = create_detector()
    assert det.name == DEFAULT_BACKEND
    assert sum(len(det.detect(_noise(seed=s))) for s in range(3)) == 0


def test_default_backend_finds_the_astronaut():
    img = _astronaut()
    _need(DEFAULT_BACKEND)
    dets = create_detector().detect(img)
    assert len(dets) == 1
    x, y, w, h = dets[0].box  # measured (blazeface): about (174, 70, 105, 105)
    assert abs(x - 175) < 20 and abs(y - 70) < 25 and 80 < w < 130 and 80 < h < 130
    crop = face_crop_box(dets[0], img.shape, DEFAULT_BACKEND)
    assert crop[2] == crop[3] and crop_face(img, crop).shape == (crop[3], crop[2], 3)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "yunet"])
def test_face_cut_by_the_border_gives_a_box_inside(backend):
    _need(backend)
    img = np.ascontiguousarray(_astronaut()[:, 200:])  # the face now starts ~25 px left of the picture
    _check(create_detector(backend).detect(img), img.shape)


def test_yunet_from_a_path():
    if not YUNET.is_file():
        pytest.skip(f"{YUNET} not present")
    _need("yunet")
    for det in (create_detector(str(YUNET)), create_detector("yunet", model_path=YUNET)):
        assert det.name == "yunet"
        assert det.detect(_noise()) == []
    img = _astronaut()
    dets = det.detect(img)
    assert len(dets) == 1
    _check(dets, img.shape)


def test_yunet_bad_path_is_named(tmp_path):
    _need("yunet")
    with pytest.raises(ValueError, match="missing.onnx"):
        create_detector(str(tmp_path / "missing.onnx"))
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="bad.onnx"):
        create_detector("yunet", model_path=tmp_path / "bad.onnx")


def test_finish_maps_back_clips_and_sorts():
    boxes = np.array([[-10, 5, 40, 20], [50, 50, 100, 100], [0, 0, 0.2, 0.2]])  # in a 2x-resized picture
    dets = _finish(boxes, np.array([0.2, 0.9, 0.5]), 2.0, (60, 80, 3))
    assert [d.score for d in dets] == pytest.approx([0.9, 0.2])  # the sub-pixel box is dropped
    assert dets[0].box == pytest.approx((25, 25, 50, 35))  # clipped at the bottom (60)
    assert dets[1].box == pytest.approx((0, 2.5, 15, 10))  # clipped at the left


def test_rescale_bounds():
    big, f = _rescale(_noise(2000, 3000))
    assert big.shape == (853, 1280, 3) and f == pytest.approx(1280 / 3000)
    tiny, f = _rescale(_noise(50, 100))
    assert tiny.shape == (160, 320, 3) and f == pytest.approx(3.2)
    same = _noise(480, 640)
    assert _rescale(same)[0] is same


@pytest.mark.parametrize(("h", "w", "f"), [(480, 640, 0.3), (481, 643, 192 / 643), (960, 1280, 0.5),
                                           (100, 75, 0.01), (120, 90, 1.7), (7, 5, 0.9)])
def test_resize_by_halvings_matches_one_area_resize(h, w, f):
    import cv2

    yy, xx = np.mgrid[0:h, 0:w]  # a smooth picture: the halvings must not shift or blur it
    img = np.stack([127 + 100 * np.sin(xx / 9.0), 127 + 100 * np.cos(yy / 7.0), np.full_like(xx, 90)],
                   axis=-1).astype(np.uint8)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    out = _resize(img, f)
    assert out.shape == (size[1], size[0], 3) and out.dtype == np.uint8
    if min(size) >= 8:
        ref = cv2.resize(img, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
        assert np.abs(out.astype(float) - ref).mean() < 3.0


def test_weighted_nms_merges_overlaps():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 10, 10]], dtype=float)
    kept, scores = _weighted_nms(boxes, np.array([0.6, 0.9, 0.7]), 0.3)
    assert scores.tolist() == pytest.approx([0.9, 0.7])
    assert kept[0] == pytest.approx([0.6, 0.6, 10, 10])  # score-weighted mean of the first two


@pytest.mark.parametrize("h,w", [(480, 640), (720, 1280), (1280, 500), (400, 400)])
def test_blazeface_tiles_cover_the_picture(h, w):
    det = BlazeFaceDetector.__new__(BlazeFaceDetector)  # the tiling needs no model
    det._tile = 480
    tiles = det._tiles(h, w)
    if max(h, w) <= 600:
        assert tiles == []
        return
    covered = np.zeros((h, w), bool)
    for x, y, t in tiles:
        assert x >= 0 and y >= 0 and x + t <= w and y + t <= h
        covered[y:y + t, x:x + t] = True
    assert covered.all()


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
    img = _noise(20, 30)
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


def test_blazeface_landmarks_on_the_astronaut_and_on_her_tilted_picture():
    import cv2

    _need(DEFAULT_BACKEND)
    img = _astronaut()
    det = create_detector()
    (d,) = det.detect(img)
    names = LANDMARKS[det.name]
    assert d.landmarks is not None and len(d.landmarks) == len(names)
    pts = dict(zip(names, np.array(d.landmarks)))
    x, y, w, h = d.box
    assert pts["right_eye"][0] < pts["nose"][0] < pts["left_eye"][0]  # the person's right is the picture's left
    assert pts["right_eye"][1] < pts["mouth"][1] and y < pts["nose"][1] < y + h
    base = face_roll(d, det.name)
    # turn the picture 25 degrees anticlockwise about the face: her eye line now rises to the right, so the
    # crop must turn 25 degrees clockwise (negative) to level it, less the dead zone
    m = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), 25.0, 1.0)
    tilted = cv2.warpAffine(img, m, img.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    (t,) = det.detect(tilted)
    roll = face_roll(t, det.name)
    assert roll == pytest.approx(base - 25.0 + LANDMARK_CALIBRATION[det.name].dead_zone, abs=4.0)
