"""Video and camera input: sample frames, detect and predict, follow faces with an IoU tracker and
smooth each track's probabilities over time. OpenCV (already needed by the detector) decodes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agegender.inference.predict import FaceResult, Predictor, fill_record
from agegender.labels import task_spec

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def is_video(path: str) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES or path.isdigit()


def iou(a, b) -> float:
    """IoU of two x, y, w, h boxes (detect.iou_matrix for one pair)."""
    from agegender.inference.detect import iou_matrix

    return float(iou_matrix(np.asarray([a], np.float64), np.asarray([b], np.float64))[0, 0])


@dataclass
class Track:
    id: int
    box: list[float]
    # per task of the model (the registry's): class probabilities, or the value of a years task
    state: dict[str, np.ndarray] = field(default_factory=dict)
    missed: int = 0
    hits: int = 1


@dataclass
class IouTracker:
    """Greedy IoU matching; probabilities smoothed by an exponential moving average per track."""

    min_iou: float = 0.3
    max_missed: int = 5
    smoothing: float = 0.6  # weight of the past in the moving average
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 0

    def update(self, results: list[FaceResult], labels: dict[str, list[str]]) -> list[FaceResult]:
        n_old = len(self.tracks)
        pairs = sorted(((iou(t.box, r.box), ti, ri) for ti, t in enumerate(self.tracks)
                        for ri, r in enumerate(results)), reverse=True)
        matched_t, matched_r, assignment = set(), set(), {}
        for score, ti, ri in pairs:
            if score < self.min_iou:
                break
            if ti not in matched_t and ri not in matched_r:
                matched_t.add(ti)
                matched_r.add(ri)
                assignment[ri] = ti
        out = []
        for ri, r in enumerate(results):
            now = _task_state(r, labels)
            if ri in assignment:
                t = self.tracks[assignment[ri]]
                t.state = {task: self._mix(t.state.get(task), v) for task, v in now.items()}
                t.box, t.missed, t.hits = r.box, 0, t.hits + 1
            else:
                t = Track(self.next_id, r.box, now)
                self.next_id += 1
                self.tracks.append(t)
            out.append(_smoothed(r, t, labels))
        for ti in range(n_old):
            if ti not in matched_t:
                self.tracks[ti].missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return out

    def _mix(self, old, new):
        if old is None or old.shape != new.shape:
            return new
        return self.smoothing * old + (1 - self.smoothing) * new


def _task_state(r: FaceResult, labels) -> dict[str, np.ndarray]:
    """What a track smooths of one face, per task of the model, read through the registry: class
    probabilities (a regression head has none: nothing to smooth) or the value of a years task."""
    d, state = r.to_dict(), {}
    for task in labels:
        spec = task_spec(task)
        if spec.kind == "years":
            value = d.get(spec.field)
            if value is not None:
                state[task] = np.asarray(float(value))
        else:
            probs = spec.record_probs(d, labels[task])
            if probs is not None:
                state[task] = np.asarray(probs, dtype=np.float64)
    return state


@dataclass
class VideoFace(FaceResult):
    frame: int = 0
    time_s: float = 0.0
    track: int = 0


def _smoothed(r: FaceResult, t: Track, labels) -> VideoFace:
    v = VideoFace(**r.__dict__, track=t.id)
    if v.tasks is not None:
        v.tasks = dict(v.tasks)  # the record's own dict stays as predicted
    for task, value in t.state.items():
        if task_spec(task).kind == "years":
            fill_record(v, task, float(value), None, [])
        else:
            fill_record(v, task, int(value.argmax()), value, labels[task])
    return v


def predict_video(predictor: Predictor, source: str | int | os.PathLike, every: int = 5,
                  max_frames: int | None = None, annotate: str | os.PathLike | None = None) -> Iterator[VideoFace]:
    """Faces of every ``every``-th frame of a video file or camera index, with track ids and smoothed
    probabilities. ``annotate``: write an annotated copy of the sampled frames (MP4)."""
    import cv2

    from agegender.inference.annotate import draw_results

    src = int(source) if isinstance(source, int) or str(source).isdigit() else str(source)
    if isinstance(src, str) and not Path(src).is_file():
        raise FileNotFoundError(f"{src}: no such video file")
    cap = cv2.VideoCapture(src)
    if not cap.isOpened():
        raise ValueError(f"{source}: cannot open video (unsupported format or no camera)")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    tracker, writer, frame_no, sampled = IouTracker(), None, -1, 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            frame_no += 1
            if frame_no % every:
                continue
            rgb = np.ascontiguousarray(bgr[..., ::-1])
            results = tracker.update(predictor.predict(rgb), predictor.model.labels)
            for r in results:
                r.path, r.frame, r.time_s = str(source), frame_no, round(frame_no / fps, 3)
                yield r
            if annotate is not None:
                frame = np.asarray(draw_results(rgb, results))[..., ::-1]
                if writer is None:
                    Path(annotate).parent.mkdir(parents=True, exist_ok=True)
                    # WebM / VP8 plays in every browser; an .mp4 name gets MPEG-4 part 2 (mp4v: the only
                    # MP4 encoder in OpenCV's wheels; desktop players only)
                    codec = "VP80" if Path(annotate).suffix.lower() == ".webm" else "mp4v"
                    writer = cv2.VideoWriter(str(annotate), cv2.VideoWriter_fourcc(*codec), fps / every,
                                             (frame.shape[1], frame.shape[0]))
                writer.write(np.ascontiguousarray(frame))
            sampled += 1
            if max_frames is not None and sampled >= max_frames:
                break
    finally:
        cap.release()
        if writer is not None:
            writer.release()
