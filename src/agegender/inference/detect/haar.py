"""OpenCV's bundled frontal-face Haar cascade (opencv-python-headless < 5)."""

from __future__ import annotations

import os

import numpy as np

from agegender.inference.detect.base import CropCalibration, Detection, _finish, _rescale, check_image

# crop frame fitted by benchmarks/detectors.py on the 600 padded UTKFace crops (docs/DETECTORS.md)
CROP = CropCalibration(scale=0.985, dx=0.007, dy=0.093)


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
