"""The default detector as it was before its one shaped pass: the full-range net on the 192 x 192
letterbox of the whole picture plus overlapping 480 px tiles, each its own pass, merged by weighted NMS
(then the close-up pass if none found a face). Kept here as the same-run baseline for
benchmarks/detectors.py and benchmarks/photo_e2e.py; the product no longer uses it.

It runs the same converted net in ONNX Runtime as the product does (the tiles used to run the .tflite in
LiteRT: the same outputs, and about the same time per 192 x 192 pass on this kind of CPU).
"""

from __future__ import annotations

import numpy as np

from agegender.inference.detect import LANDMARKS, CropCalibration, LandmarkCalibration, base
from agegender.inference.detect.blazeface import BlazeFaceDetector, _offset
from agegender.inference.framing import CROP_CALIBRATION, LANDMARK_CALIBRATION

TILE = 480
NAME = "blazeface_tiled"
# Its crop and landmark frames as they were fitted by benchmarks/detectors.py (its boxes come from the
# 192 px letterbox and the tiles, which frame faces a little differently from the one shaped pass).
CROP_CALIBRATION[NAME] = CropCalibration(scale=1.024, dx=0.015, dy=0.038)
LANDMARK_CALIBRATION[NAME] = LandmarkCalibration(
    side=(0.9885, 0.0, 0.63, 0.0), x=(0.4964, -0.2039, 0.9918, 0.0375), y=(-0.3264, 0.8114, -0.3135, -0.0213),
    roll=1.37, dead_zone=3.71)
LANDMARKS[NAME] = LANDMARKS["blazeface"]


class TiledBlazeFace(BlazeFaceDetector):
    def __init__(self, tile: int = TILE, **kw) -> None:
        super().__init__(variant="blazeface", input_scale=0, **kw)
        self._tile = tile
        self.name = NAME

    def _tiles(self, h: int, w: int) -> list[tuple[int, int, int]]:
        """x, y, side of overlapping square tiles (at least a third overlap) covering an h x w picture."""
        t = min(self._tile, h, w)
        if self._tile <= 0 or max(h, w) <= 1.25 * t:
            return []
        starts = [np.linspace(0, n - t, int(np.ceil((n - t) / (t * 2 / 3))) + 1).round().astype(int)
                  for n in (w, h)]
        return [(int(x), int(y), t) for y in starts[1] for x in starts[0]]

    def _detect(self, small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        passes = [self._run(small)]
        h, w = small.shape[:2]
        for x, y, t in self._tiles(h, w):
            b, sc = self._run(small[y:y + t, x:x + t])
            # A face cut by an inner tile edge gives a partial box: drop it, another pass sees it whole.
            cut = (((b[:, 0] < 2) & (x > 0)) | ((b[:, 1] < 2) & (y > 0))
                   | ((b[:, 0] + b[:, 2] > t - 2) & (x + t < w)) | ((b[:, 1] + b[:, 3] > t - 2) & (y + t < h)))
            passes.append((b[~cut] + _offset(x, y, b.dtype), sc[~cut]))
        boxes, scores = base._weighted_nms(np.concatenate([p[0] for p in passes]),
                                           np.concatenate([p[1] for p in passes]), self._nms_iou)
        if self._close_up is not None and len(scores) == 0:
            boxes, scores = base._weighted_nms(*self._close_up._run(small), self._nms_iou)
        return boxes.reshape(-1, 16), scores
