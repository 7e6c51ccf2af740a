"""dlib's HOG + linear SVM frontal face detector (dlib-bin)."""

from __future__ import annotations

import numpy as np

from agegender.inference.detect.base import CropCalibration, Detection, _finish, _rescale, check_image

CROP = CropCalibration(scale=1.072, dx=0.032, dy=0.029)  # fitted by benchmarks/detectors.py


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
