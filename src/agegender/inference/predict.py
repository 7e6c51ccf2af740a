"""Predictor: image -> faces (detector) -> the training crop -> age group and gender. No torch needed.

    from agegender import Predictor
    faces = Predictor().predict("photo.jpg")   # list[FaceResult]
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from agegender.bundled import BUNDLED_MODELS, DEFAULT_MODEL, EXAMPLE_PHOTO, asset_path  # noqa: F401 (re-exported)
from agegender.decode import decode_task, merge_mirrored
from agegender.inference.runtime import ModelError, OnnxModel
from agegender.labels import TASKS, task_spec
from agegender.preprocess import (
    IMAGE_SUFFIXES,
    ImageError,
    load_image,
    load_image_reduced,
    resize_face,
    square_face,
    to_rgb,
)

# A large JPEG is decoded reduced for detection (Predictor._file_faces); a face whose crop there would be
# under this many times the net's input side is cropped from the full decode instead, so that no face
# is upsampled that the full picture would have downsampled (docs/BENCHMARKS.md, large photos).
REDUCED_MIN_CROP = 1.0


@dataclass
class FaceResult:
    """One face (or one failed input, with ``error`` set). Field names are the JSON contract."""

    path: str
    face: int | None = None
    box: list[float] | None = None  # x, y, w, h in the input image's pixels; None for --aligned input
    det_score: float | None = None
    age_group: str | None = None
    age_group_index: int | None = None
    age_group_probs: list[float] | None = None  # None for a regression-head model (it has none)
    gender: str | None = None
    gender_confidence: float | None = None  # probability of the stated gender; None for regression heads
    age_years: float | None = None
    # approximate head turn in degrees from the detector's landmarks (framing.face_yaw): 0 frontal; None for
    # --aligned input and detectors without landmarks. Past about 30 degrees gender and age are much less
    # reliable (docs/MODEL_CARD.md, "Turned faces")
    yaw: float | None = None
    error: str | None = None
    # every further categorical task of the model (e.g. race): {task: label, task + "_probs": [...]},
    # written as top-level fields of the record (``to_dict``), so a new task needs no new field here
    tasks: dict | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in OPTIONAL_FIELDS:
            if d[key] is None:
                d.pop(key)
        d.update(d.pop("tasks") or {})
        return d


# fields a record leaves out when unset: the error, and the value of a years task (a model without it)
OPTIONAL_FIELDS = ("error", *(s.field for s in TASKS.values()
                              if s.kind == "years" and s.field in FaceResult.__dataclass_fields__))


def extra_tasks(labels: dict[str, list[str]]) -> list[str]:
    """A model's categorical tasks whose record keys FaceResult has no fields of its own for (e.g. race:
    they go to ``FaceResult.tasks``), in the model's order."""
    return [t for t in labels if labels[t] and task_spec(t).field not in FaceResult.__dataclass_fields__]


def fill_record(r: FaceResult, task: str, value, probs, names) -> None:
    """Set one task's prediction on ``r``: its record keys (the registry's ``record_fields``) go to the
    fields of FaceResult that carry them, the others to ``r.tasks``."""
    for key, v in task_spec(task).record_fields(value, probs, names).items():
        if key in FaceResult.__dataclass_fields__:
            setattr(r, key, v)
        else:
            r.tasks = r.tasks or {}
            r.tasks[key] = v


PRECISIONS = ("auto", "float", "int8")


def bundled_file(name: str, precision: str = "auto") -> Path:
    """The file of bundled model ``name`` for ``precision``: "float" (fp16 weights, run in fp32), "int8"
    (static int8, NAME.int8.onnx), or "auto": int8 where it runs faster on this CPU (VNNI or AVX2) and the
    model has an int8 file, else float (runtime.int8_is_faster)."""
    from agegender.inference.runtime import int8_is_faster

    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: give one of {', '.join(PRECISIONS)}")
    float_file = asset_path(BUNDLED_MODELS[name])
    int8_file = float_file.with_suffix(".int8.onnx")
    if precision == "int8" or (precision == "auto" and int8_is_faster() and int8_file.is_file()):
        return int8_file
    return float_file


def load_model(model: str | os.PathLike | None = None, threads: int | None = None, precision: str = "auto"):
    """A bundled model by name (None or "default": the accurate one; "fast": the small lite-dense net) in ``precision``
    (see bundled_file), an exported .onnx file, or a training checkpoint folder (the last needs torch).
    ``precision`` only chooses between bundled files: a file or folder you name is run as it is."""
    if model is None or (isinstance(model, str) and model in BUNDLED_MODELS):
        path = bundled_file(model or "default", precision)
        if not path.is_file():
            raise ModelError(f"bundled model {path} is missing from this installation"
                             + (" (this model has no int8 file)" if precision == "int8" else ""))
        return OnnxModel(path, threads)
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: give one of {', '.join(PRECISIONS)}")
    path = Path(model)
    if path.is_dir() or path.name == "meta.json":
        from agegender.inference.torch_runtime import TorchModel

        return TorchModel(path if path.is_dir() else path.parent, threads)
    if path.suffix.lower() == ".onnx" or path.is_file():
        return OnnxModel(path, threads)
    raise ModelError(f"{model}: no such model (give {' or '.join(repr(n) for n in BUNDLED_MODELS)}, an .onnx file "
                     "or a checkpoint folder)")


class Predictor:
    """Joins a face detector and the age/gender model. ``aligned=True``: inputs are face crops already.

    ``detector``: a backend name or YuNet .onnx path (``agegender.inference.detect.create_detector``), or an object
    with the ``Detector`` interface whose ``name`` is a backend with a crop calibration.
    ``mirror=True`` (the default): each face is also run mirrored left-right, in the same batch, and the two
    predictions are averaged: lower age-in-years error and a little higher accuracy on faces never trained
    on, for about 1.2x a photo's time with the int8 file and half the faces per second in batches
    (docs/BENCHMARKS.md, "Test-time mirroring by default"); ``mirror=False`` runs each face once.
    """

    def __init__(self, model: str | os.PathLike | None = None, detector: object = "default",
                 aligned: bool = False, threads: int | None = None, batch_size: int = 64, mirror: bool = True,
                 precision: str = "auto"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model = load_model(model, threads, precision)
        self.aligned = aligned
        self.mirror = mirror
        self.batch_size = batch_size
        self.detector_name = detector if detector is None or isinstance(detector, str | os.PathLike) else None
        # Detector instances are never shared between threads: BlazeFace's LiteRT interpreter and OpenCV's
        # cascade keep per-call state, and two threads in one instance gave LiteRT's "reference to
        # internal data" errors on 281 of 540 photos and segfaults with haar / yunet. A detector named
        # here is created once per thread (``_local``); an object the caller passes in cannot be copied,
        # so calls into it are serialised by ``_user_lock``.
        self._local = threading.local()
        self._user_detector = None if self.detector_name is not None or detector is None else detector
        self._user_lock = threading.Lock()
        if not aligned and self._user_detector is None:
            self.detector  # noqa: B018 (created now, in the caller's thread: a bad name fails here, not per file)

    @property
    def detector(self):
        """This thread's detector instance (created on first use in each thread)."""
        if self._user_detector is not None:
            return self._user_detector
        det = getattr(self._local, "detector", None)
        if det is None:
            from agegender.inference.detect import create_detector

            det = self._local.detector = create_detector(str(self.detector_name or "default"))
        return det

    # --- single image -----------------------------------------------------------------------------
    def predict(self, image: str | os.PathLike | np.ndarray | Image.Image | bytes) -> list[FaceResult]:
        """Faces in one image: a path, an RGB(A) or grey uint8 array, a PIL image, or an encoded file's
        bytes. Raises ImageError for unreadable input, TypeError for something that is not one image."""
        if isinstance(image, bytes | bytearray | memoryview):
            return self.predict_bytes(bytes(image))
        if isinstance(image, Image.Image):
            return self._predict_pixels("<PIL.Image>", to_rgb(ImageOps.exif_transpose(image)))
        if isinstance(image, np.ndarray):
            return self._predict_pixels("<array>", _as_rgb(image))
        if isinstance(image, str | os.PathLike):
            return self._predict_file(str(image))
        many = " (for many images use predict_paths)" if isinstance(image, list | tuple) else ""
        raise TypeError(f"predict takes one image (a path, numpy array, PIL image or bytes), got "
                        f"{type(image).__name__}{many}")

    def predict_bytes(self, data: bytes, name: str = "<bytes>") -> list[FaceResult]:
        """Faces in an encoded image file held in memory (e.g. an upload); ``name`` becomes each record's
        ``path`` and names the input in errors. Raises ImageError for data that is not a usable image."""
        return self._predict_file(name, data)

    def records_for_bytes(self, data: bytes, name: str) -> list[FaceResult]:
        """``predict_bytes`` as a batch reports it: the faces, or one record with ``error`` (unreadable,
        no face, or any other failure of this one input)."""
        try:
            faces = self.predict_bytes(data, name)
        except ImageError as err:
            return [FaceResult(path=name, error=str(err))]
        except Exception as err:  # one bad input must not end the batch or the service; its record says why
            return [FaceResult(path=name, error=f"{name}: {type(err).__name__}: {err}")]
        return faces or [FaceResult(path=name, error=f"{name}: no face found")]

    def _predict_pixels(self, path: str, pixels: np.ndarray) -> list[FaceResult]:
        faces, boxes = self._faces(pixels)
        if not faces:
            return []
        return self._classify(path, np.stack(faces), boxes)

    def _predict_file(self, path: str, data: bytes | None = None) -> list[FaceResult]:
        faces, boxes = self._file_faces(path, data)
        if not faces:
            return []
        return self._classify(path, np.stack(faces), boxes)

    def predict_faces(self, faces: np.ndarray) -> list[FaceResult]:
        """Already-cropped faces (N, S, S, 3) uint8 at the model's input size."""
        return self._classify("<array>", faces, [(None, None, None)] * len(faces))

    # --- many files, streamed -----------------------------------------------------------------------
    def predict_paths(self, paths: Iterable[str | os.PathLike], workers: int | None = None) -> Iterator[FaceResult]:
        """Results for each file in order; a file that fails yields one record with ``error``.

        Decoding and detection run in a thread pool a few batches ahead; memory stays bounded by the
        pool's window, whatever the number of files.
        """
        workers = workers or min(4, os.cpu_count() or 1)
        window = max(self.batch_size, 4 * workers)
        with ThreadPoolExecutor(workers) as pool:
            # Up to two windows in flight: the pool decodes and detects the next window while the
            # model classifies this one; memory is bounded by the two windows, not the file count.
            pending: deque = deque()
            for path in paths:
                pending.append((str(path), pool.submit(self._prepare, str(path))))
                if len(pending) >= 2 * window:
                    yield from self._drain([pending.popleft() for _ in range(window)])
            while pending:
                yield from self._drain([pending.popleft() for _ in range(min(window, len(pending)))])

    def _prepare(self, path: str):
        try:
            faces, boxes = self._file_faces(path)
        except ImageError as err:
            # a folder reaches here when iter_image_files found no image in it (checked only on failure:
            # no extra stat per file)
            if os.path.isdir(path):
                try:
                    empty = next(_walk_images(path), None) is None
                except OSError as walk_err:
                    return f"{path}: cannot read this folder ({walk_err.strerror or walk_err})"
                if empty:
                    return (f"{path}: a folder with no image file in it ({' '.join(IMAGE_SUFFIXES)}, searched "
                            "recursively; a video is read only when named on its own)")
            return str(err)
        except Exception as err:  # a detector failure on one file must not end the batch
            return f"{path}: {type(err).__name__}: {err}"
        if not faces:
            return f"{path}: no face found"
        return faces, boxes

    def _drain(self, pending) -> Iterator[FaceResult]:
        items = [(path, fut.result()) for path, fut in pending]
        faces, owners = [], []
        for i, (_, res) in enumerate(items):
            if not isinstance(res, str):
                faces.extend(res[0])
                owners.extend((i, box) for box in res[1])
        results: dict[int, list[FaceResult]] = {}
        for start in range(0, len(faces), self.batch_size):
            chunk = owners[start:start + self.batch_size]
            batch = np.stack(faces[start:start + self.batch_size])
            for (i, _), r in zip(chunk, self._classify("", batch, [b for _, b in chunk]), strict=True):
                r.path = items[i][0]
                results.setdefault(i, []).append(r)
        for i, (path, res) in enumerate(items):
            if isinstance(res, str):
                yield FaceResult(path=path, error=res)
            else:
                for n, r in enumerate(results[i]):
                    r.face = n
                    yield r

    # --- internals ----------------------------------------------------------------------------------
    def _file_faces(self, path: str, data: bytes | None = None) -> tuple[list[np.ndarray], list]:
        """Decode, detect and crop one file (or its encoded bytes ``data``). A large JPEG is decoded
        reduced (``load_image_reduced``) to what the built-in detectors look at anyway (MAX_SIDE on the
        long side); it is decoded again in full only when a face it holds would get fewer pixels than
        the net's input. Boxes are given in the full image's pixels either way."""
        if self.aligned or self._user_detector is not None:  # a caller's detector may want every pixel
            return self._faces(load_image(path, data))
        from agegender.inference.detect.base import MAX_SIDE

        pixels, scale = load_image_reduced(path, data, MAX_SIDE)
        return self._faces(pixels, scale, lambda: load_image(path, data))

    def _faces(self, pixels: np.ndarray, scale: tuple[float, float] = (1.0, 1.0),
               full=None) -> tuple[list[np.ndarray], list]:
        """Faces in ``pixels``: crops at the net's input size and (box, score, yaw) each. ``scale``: of
        ``pixels`` against the full picture, whose pixels the boxes are given in; ``full``: decodes the
        full picture, for faces too small in ``pixels`` (see REDUCED_MIN_CROP)."""
        size = self.model.size
        if self.aligned:
            return [resize_face(square_face(pixels), size)], [(None, None, None)]
        from agegender.inference.framing import crop_face, face_crop_box, face_roll, face_yaw

        faces, boxes = [], []
        detector = self.detector
        if detector is self._user_detector:
            with self._user_lock:
                found = detector.detect(pixels)
        else:
            found = detector.detect(pixels)
        name = detector.name
        sx, sy = scale
        if (sx, sy) != (1.0, 1.0) and full is not None and any(
                face_crop_box(d, pixels.shape, name)[2] < REDUCED_MIN_CROP * size for d in found):
            pixels = full()
            found = [d.scaled(1 / sx, 1 / sy) for d in found]
            sx = sy = 1.0
        for det in found:
            crop = crop_face(pixels, face_crop_box(det, pixels.shape, name), face_roll(det, name))
            faces.append(resize_face(crop, size))
            x, y, w, h = det.box
            box = (x / sx, y / sy, w / sx, h / sy)
            yaw = face_yaw(det, name)
            boxes.append(([round(float(v), 1) for v in box], round(float(det.score), 4),
                          None if yaw is None else round(yaw, 1)))
        return faces, boxes

    def _classify(self, path: str, faces: np.ndarray, boxes: list) -> list[FaceResult]:
        if self.mirror:  # both views in one batch: one call, and a batch of 2 runs faster than 2 of 1
            both = self.model.run(np.concatenate([faces, faces[:, :, ::-1]]))
            n = len(faces)
            outputs = merge_mirrored({t: v[:n] for t, v in both.items()}, {t: v[n:] for t, v in both.items()})
        else:
            outputs = self.model.run(faces)
        decoded = {t: decode_task(t, v) for t, v in outputs.items()}
        labels = self.model.labels
        results = []
        for n, (box, score, yaw) in enumerate(boxes):
            r = FaceResult(path=path, face=n, box=box, det_score=score, yaw=yaw)
            for task, (value, probs) in decoded.items():
                fill_record(r, task, value[n], None if probs is None else probs[n], labels.get(task, []))
            results.append(r)
        return results


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.size == 0:
        raise ImageError(f"<array>: empty image array of shape {image.shape}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise ImageError(f"expected an RGB(A) uint8 array (H, W, 3), got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image[..., :3])


def iter_image_files(inputs: Iterable[str | os.PathLike], skip: str | os.PathLike | None = None) -> Iterator[str]:
    """Files as given, and image files inside folders (recursively, in sorted order, one directory
    listing in memory at a time). Missing paths are yielded too, so that they come back as error records,
    and so is a folder with no image file in it (its record says so). ``skip``: a folder never entered
    (``predict --annotate`` passes its output folder, so that a rerun does not read its own drawings)."""
    skip = os.path.realpath(skip) if skip is not None else None
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = False
            for path in _walk_images(str(p), skip):
                found = True
                yield path
            if not found:
                yield str(p)
        else:
            yield str(p)


def _walk_images(folder: str, skip: str | None = None, seen: set | None = None) -> Iterator[str]:
    """Image files under ``folder``, sorted, recursively. A folder reached a second time (a symlink loop,
    or two links to one folder) is not entered again; a subfolder that cannot be listed is yielded as
    itself, so that it comes back as an error record and the batch carries on."""
    seen = set() if seen is None else seen
    st = os.stat(folder)
    if (st.st_dev, st.st_ino) in seen:
        return
    seen.add((st.st_dev, st.st_ino))
    with os.scandir(folder) as it:
        entries = sorted((e.name, _is_dir(e)) for e in it)
    for name, is_dir in entries:
        path = os.path.join(folder, name)
        if is_dir:
            if skip is None or os.path.realpath(path) != skip:
                try:
                    yield from _walk_images(path, skip, seen)
                except OSError:
                    yield path
        elif os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
            yield path


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a dangling or looping symlink: listed as a file, and reported if it is named as an image
        return False
