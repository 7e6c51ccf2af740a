"""Face detector interface, crop geometry and backends; fixtures are built by code.

Backends whose packages are not installed are skipped; the YuNet test needs the shared peer file.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agegender.inference.detect import (
    BACKENDS,
    DEFAULT_BACKEND,
    LANDMARKS,
    MAX_SIDE,
    BlazeFaceDetector,
    Detection,
    _blazeface_file,
    _finish,
    _rescale,
    _resize,
    _weighted_nms,
    create_detector,
    iou_matrix,
)
from agegender.inference.detect.blazeface import FULL_INPUT_SCALE
from agegender.inference.framing import LANDMARK_CALIBRATION, crop_face, face_crop_box, face_roll

YUNET = Path(__file__).resolve().parents[2] / "shared" / "peers" / "yunet" / "face_detection_yunet_2026may.onnx"
NEEDS = {  # backend -> modules it imports
    "haar": ("cv2",),
    "blazeface": ("onnxruntime", "ai_edge_litert"),
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
            _blazeface_file("face_detection_full_range.onnx")
            _blazeface_file("face_detection_short_range.tflite")
        except ImportError as err:
            pytest.skip(str(err))


def _noise(h: int = 480, w: int = 640, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _astronaut() -> np.ndarray:
    # The 512x512 public-domain NASA portrait bundled with the package (scikit-image's copy, as JPEG).
    from agegender.inference.predict import EXAMPLE_PHOTO, asset_path
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
    code = ("import sys, agegender.inference.detect; "
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


@pytest.mark.parametrize(("h", "w"), [(480, 640), (720, 1280), (1280, 500), (300, 300), (1080, 1920)])
def test_full_range_input_follows_the_pictures_shape(h, w):
    """The default runs the full-range net once, on an input shaped like the picture (after the MAX_SIDE
    step) at FULL_INPUT_SCALE of its size, long side at least 192, sides multiples of 32; anchors match."""
    _need(DEFAULT_BACKEND)
    det = create_detector()
    det.detect(np.zeros((h, w, 3), np.uint8))
    f = min(1.0, MAX_SIDE / max(h, w))  # the MAX_SIDE step
    ih, iw = det._input_shape((round(h * f), round(w * f), 3))
    g = max(FULL_INPUT_SCALE, 192 / (max(h, w) * f))
    for side, n in ((ih, h), (iw, w)):  # each side: the picture's at that scale, rounded up to 32
        assert side % 32 == 0 and n * f * g - 1 <= side < n * f * g + 32
    raw, logits = det._net(np.zeros((1, ih, iw, 3), np.float32))
    assert len(det._anchors) == len(raw) == len(logits) == (ih // 4) * (iw // 4)


def test_one_shaped_pass_finds_a_small_face_the_letterbox_misses():
    """A 56 px face in a 1280x960 photo is 8 px on the 192 px letterbox (too small for BlazeFace) and 25 px
    on the default's shaped input."""
    import cv2

    _need(DEFAULT_BACKEND)
    img = _astronaut()
    (d,) = create_detector().detect(img)
    x, y, w, h = (round(v) for v in face_crop_box(d, img.shape, DEFAULT_BACKEND))
    face = cv2.resize(img[y:y + h, x:x + w], (56, 56), interpolation=cv2.INTER_AREA)
    photo = np.full((960, 1280, 3), 90, np.uint8)
    photo[600:656, 900:956] = face
    assert create_detector(input_scale=0).detect(photo) == []
    (found,) = create_detector().detect(photo)
    got = face_crop_box(found, photo.shape, DEFAULT_BACKEND)
    assert iou_matrix(np.array([got], float), np.array([[900, 600, 56, 56]], float))[0, 0] > 0.5


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


@pytest.mark.parametrize(("h", "w"), [(480, 640), (640, 480), (1080, 1920), (300, 300)])
def test_short_range_input_follows_the_pictures_shape(h, w):
    """blazeface_fast runs the short-range net on a 256 px input shaped like the picture (multiples of 16),
    resizing the interpreter once per picture shape; anchors match its output."""
    _need("blazeface_fast")
    det = create_detector("blazeface_fast")
    det.detect(np.zeros((h, w, 3), np.uint8))  # runs (a picture with no face also runs its padded retry)
    ih, iw = det._input_shape((h, w, 3))
    assert max(ih, iw) == 256 and ih % 16 == 0 and iw % 16 == 0
    assert abs(ih / iw - h / w) < 0.1
    raw, _ = det._net(np.zeros((1, ih, iw, 3), np.float32))
    assert len(det._anchors) == len(raw)


def test_blazeface_fast_finds_the_astronaut_where_the_default_does():
    _need("blazeface_fast")
    img = _astronaut()
    (fast,) = create_detector("blazeface_fast").detect(img)
    (full,) = create_detector().detect(img)
    a = face_crop_box(fast, img.shape, "blazeface_fast")
    b = face_crop_box(full, img.shape, DEFAULT_BACKEND)
    assert iou_matrix(np.array([a], float), np.array([b], float))[0, 0] > 0.7


def test_input_side_is_only_for_the_short_range_net_and_input_scale_for_the_full_range_one():
    _need("blazeface")
    with pytest.raises(ValueError, match="short-range"):
        BlazeFaceDetector(variant="blazeface", input_side=256)
    with pytest.raises(ValueError, match="multiple of 16"):
        BlazeFaceDetector(variant="blazeface_short", input_side=250)
    with pytest.raises(ValueError, match="full-range"):
        BlazeFaceDetector(variant="blazeface_short", input_scale=0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        BlazeFaceDetector(variant="blazeface", input_scale=1.5)
