"""End-to-end time for one 640x480 photo (decode, detect, crop, predict) with one face and with five, on
one thread, broken down by stage, for each detector setting; all in one run.

The photos are composed like docs/DETECTORS.md's (UTKFace 200x200 crops pasted on a synthetic
background, 90-140 px faces) and saved as JPEG (quality 90), so decoding is measured too.

    python benchmarks/photo_e2e.py --data ../shared/data --docs docs/BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detectors import background, load_crops, paste_face  # noqa: E402
from tiled_blazeface import TiledBlazeFace  # noqa: E402

from agegender.experiments.bench import time_calls  # noqa: E402
from agegender.inference.detect import _resize, create_detector  # noqa: E402
from agegender.inference.detect.blazeface import FULL_INPUT_SCALE  # noqa: E402
from agegender.inference.framing import crop_face, face_crop_box, face_roll  # noqa: E402
from agegender.inference.predict import bundled_file, load_model  # noqa: E402
from agegender.preprocess import load_image, resize_face  # noqa: E402
from agegender.provenance import publish  # noqa: E402

cv2.setNumThreads(1)
SETTINGS = {  # label -> a detector factory
    f"blazeface (default: one pass shaped like the photo at {FULL_INPUT_SCALE} scale; close-up pass if no face)":
        lambda: create_detector("blazeface"),
    "blazeface before (192 px letterbox + 480 px tiles, baseline)": lambda: TiledBlazeFace(),
    "blazeface_fast (short-range net, 256 px input)": lambda: create_detector("blazeface_fast"),
    "blazeface, one full-range pass on the 192 px letterbox (input_scale=0, close_up=0)":
        lambda: create_detector("blazeface", input_scale=0, close_up=False),
    "haar": lambda: create_detector("haar"),
}


def compose(crops: list[np.ndarray], faces: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = background(rng, 480, 640)
    slots = [(40, 60), (250, 40), (460, 60), (120, 300), (380, 300)]  # non-overlapping at up to 140 px
    for i in range(faces):
        side = int(rng.integers(90, 141))
        x, y = slots[i] if faces > 1 else (250, 150)
        paste_face(img, crops[int(rng.integers(len(crops)))], x, y, side, 0.0)
    return img


def median_ms(fn, runs: int) -> float:
    """Median milliseconds of ``runs`` calls after one warm-up (bench.time_calls does the timing)."""
    return 1000 * statistics.median(time_calls(fn, warmup=1, min_runs=runs, min_seconds=0.0, max_runs=runs))


def pil_decode(path: Path) -> np.ndarray:
    """The baseline decode (load_image before its fast JPEG path): PIL, EXIF turn, RGB, array."""
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def area_resize(image: np.ndarray, side: int) -> np.ndarray:
    """The baseline detector-input resize: one OpenCV area resize, long side -> ``side``."""
    f = side / max(image.shape[:2])
    return cv2.resize(image, (round(image.shape[1] * f), round(image.shape[0] * f)), interpolation=cv2.INTER_AREA)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--models", default="default,default:int8,fast",
                    help="comma-separated: bundled names (default, fast; NAME:int8 for the int8 file) or .onnx "
                         "files, all timed in this run")
    ap.add_argument("--yunet", default="../shared/peers/yunet/face_detection_yunet_2026may.onnx",
                    help="also time a YuNet file (peer; skipped if missing)")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--docs")
    ap.add_argument("--section", default="End-to-end photo time (640x480, 1 thread)",
                    help="section of --docs to write (e.g. one per CPU kind)")
    args = ap.parse_args()
    crops = load_crops(Path(args.data))
    models = {}
    for name in filter(None, args.models.split(",")):
        bundled, _, precision = name.partition(":")
        if precision and not bundled_file(bundled, precision).is_file():
            print(f"skipping {name}: no such bundled file", file=sys.stderr)
            continue
        models[name] = load_model(bundled, threads=1, precision=precision or "float")
    size = next(iter(models.values())).size
    settings = dict(SETTINGS)
    if Path(args.yunet).is_file():
        settings["YuNet (peer file, user path)"] = lambda: create_detector(args.yunet)
    lines = ["| faces | detector | model | decode ms | detect ms | crop + resize ms | all but the model ms "
             "| predict ms | total ms | faces found |", "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    base = ["| faces | decode: PIL baseline ms | decode: load_image ms | ratio | BlazeFace input resize: one area "
            "resize ms | `_resize` (2x2 halvings + bilinear) ms | ratio |", "|---:|---:|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 5):
            path = Path(tmp) / f"photo{n}.jpg"
            Image.fromarray(compose(crops, n, seed=n)).save(path, quality=90)
            pixels = load_image(path)
            decode = median_ms(lambda p=path: load_image(p), args.runs)
            old_decode = median_ms(lambda p=path: pil_decode(p), args.runs)
            old_resize = median_ms(lambda px=pixels: area_resize(px, 192), args.runs)
            new_resize = median_ms(lambda px=pixels: _resize(px, 192 / max(px.shape[:2])), args.runs)
            base.append(f"| {n} | {old_decode:.2f} | {decode:.2f} | {old_decode / decode:.2f}x | {old_resize:.2f} "
                        f"| {new_resize:.2f} | {old_resize / new_resize:.2f}x |")
            for label, make in settings.items():
                det = make()
                name = det.name
                found = det.detect(pixels)
                detect = median_ms(lambda d=det, px=pixels: d.detect(px), args.runs)

                def crops_of(found=found, name=name, px=pixels):
                    return [resize_face(crop_face(px, face_crop_box(d, px.shape, name), face_roll(d, name)), size)
                            for d in found]
                crop = median_ms(crops_of, args.runs)
                batch = np.stack(crops_of()) if found else np.zeros((0, size, size, 3), np.uint8)
                for model_name, model in models.items():
                    predict = median_ms(lambda b=batch, m=model: m.run(b), args.runs) if found else 0.0
                    total = decode + detect + crop + predict
                    arch = model.meta.get("model", {}).get("arch", "?")
                    lines.append(f"| {n} | {label} | {model_name} ({arch}, {model.precision}) | {decode:.1f} | "
                                 f"{detect:.1f} | {crop:.2f} | {decode + detect + crop:.1f} | {predict:.2f} | "
                                 f"**{total:.1f}** | {len(found)} |")
    body = (f"One thread (ONNX Runtime, LiteRT and OpenCV each limited to 1), median of {args.runs} runs per stage "
            "after a warm-up; every model is timed on the same crops. Detector recall for each setting: "
            "docs/DETECTORS.md.\n\n" + "\n".join(lines)
            + "\n\nTwo stages against their earlier code in the same run (same photos; pixels are identical for the "
            "decode, and docs/DETECTORS.md shows the detectors' recall unchanged with the new resize):\n\n"
            + "\n".join(base))
    publish(args.docs, args.section, body)


if __name__ == "__main__":
    main()
