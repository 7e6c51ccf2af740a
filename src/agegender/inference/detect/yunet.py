"""A YuNet ONNX file the user points to, run by cv2.FaceDetectorYN."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from agegender.inference.detect.base import (
    CropCalibration,
    Detection,
    LandmarkCalibration,
    _finish,
    _rescale,
    check_image,
)

LANDMARKS = ("right_eye", "left_eye", "nose", "right_mouth", "left_mouth")
# fitted by benchmarks/detectors.py (docs/DETECTORS.md); YuNet's box is taller than wide, hence the
# geometric mean in the box frame
CROP = CropCalibration(scale=1.005, dx=0.002, dy=0.116)
LANDMARK = LandmarkCalibration(
    side=(1.2723, 0.873, 0.0, 0.5855), x=(0.426, 0.423, 0.1263, 0.0258), y=(0.473, 0.2435, 0.1124, -0.0261),
    roll=-0.17, dead_zone=4.20)


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
