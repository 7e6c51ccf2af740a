"""Large photos (phone-camera sizes): the reduced JPEG decode of ``Predictor`` against the full decode it
replaced, on the same files in one run. Time of a whole prediction (decode, detect, crop, model) per photo,
and agreement of the faces' outputs between the two.

The photos are composed like docs/DETECTORS.md's (UTKFace 200x200 crops pasted on a synthetic
background), at 12 MP (4000x3000), 12.2 MP (4032x3024) and 5 MP (2592x1944), one to four faces each, faces
of 120-900 px, saved as JPEG quality 90; a third of them are stored turned (EXIF orientation 6, as a phone
held upright writes them), which PIL decodes. Yardstick for the agreement: the full decode of the same
photo re-encoded at quality 95, i.e. what a change of pixels too small to see does to the outputs.

    python benchmarks/large_photos.py --data ../shared/data --docs docs/BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detectors import background, load_crops, paste_face  # noqa: E402

from agegender.inference.detect import iou_matrix  # noqa: E402
from agegender.inference.predict import REDUCED_MIN_CROP, Predictor  # noqa: E402
from agegender.preprocess import load_image, load_image_reduced  # noqa: E402
from agegender.provenance import publish  # noqa: E402

cv2.setNumThreads(1)
SIZES = [(4000, 3000), (4032, 3024), (2592, 1944)]


def compose(crops: list[np.ndarray], rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    img = background(rng, h, w)
    n = int(rng.integers(1, 5))
    placed: list[tuple[int, int, int]] = []
    for _ in range(50):
        if len(placed) == n:
            break
        side = int(np.exp(rng.uniform(np.log(120), np.log(900))))
        x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
        if all(x + side < px or px + ps < x or y + side < py or py + ps < y for px, py, ps in placed):
            paste_face(img, crops[int(rng.integers(len(crops)))], x, y, side, float(rng.uniform(-10, 10)))
            placed.append((x, y, side))
    return img


def save(img: np.ndarray, path: Path, quality: int, turned: bool) -> None:
    if not turned:
        Image.fromarray(img).save(path, quality=quality)
        return
    # the camera's pixels are the upright picture turned 90 degrees clockwise; orientation 6 turns them back
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(img, k=-1))).save(path, quality=quality, exif=exif)


def pil_decode(path: Path) -> np.ndarray:
    """The decode of a turned JPEG before simplejpeg took them too: PIL, EXIF turn, RGB, array."""
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def faces_of(results) -> tuple[np.ndarray, list]:
    return np.array([r.box for r in results], np.float64).reshape(-1, 4), results


def compare(a, b) -> list[tuple]:
    """Pairs of matching faces (IoU >= 0.5) of two result lists."""
    boxes_a, ra = faces_of(a)
    boxes_b, rb = faces_of(b)
    if not len(ra) or not len(rb):
        return []
    iou = iou_matrix(boxes_a, boxes_b)
    pairs = []
    for i in range(len(ra)):
        j = int(iou[i].argmax())
        if iou[i, j] >= 0.5:
            pairs.append((ra[i], rb[j], float(iou[i, j])))
    return pairs


def summary(pairs: list[tuple], n_ref: int) -> dict:
    if not pairs:
        return {"faces": 0}
    g = [p.gender == q.gender for p, q, _ in pairs]
    a = [p.age_group == q.age_group for p, q, _ in pairs]
    dp = [abs(np.array(p.age_group_probs) - np.array(q.age_group_probs)).max() for p, q, _ in pairs]
    dg = [abs((p.gender_confidence if p.gender == "female" else 1 - p.gender_confidence)
              - (q.gender_confidence if q.gender == "female" else 1 - q.gender_confidence)) for p, q, _ in pairs]
    dy = [abs(p.age_years - q.age_years) for p, q, _ in pairs if p.age_years is not None]
    return {"faces": f"{len(pairs)}/{n_ref}", "gender": 100 * np.mean(g), "age": 100 * np.mean(a),
            "dp": float(np.mean(dp)), "dg": float(np.mean(dg)), "dy": float(np.mean(dy)) if dy else float("nan"),
            "iou": float(np.median([p[2] for p in pairs]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--photos", type=int, default=36)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per photo and path (median)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--docs")
    ap.add_argument("--section", default="Large photos: reduced JPEG decode (1 thread)")
    args = ap.parse_args()
    crops = load_crops(Path(args.data))
    rng = np.random.default_rng(args.seed)
    pred = Predictor(threads=1)
    rows = {"reduced": [], "yardstick": []}
    times = {"full": [], "reduced": []}
    decode_t = {"pil": [], "full": [], "reduced": []}
    fallbacks = n_faces = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.photos):
            w, h = SIZES[i % len(SIZES)]
            turned = (i // len(SIZES)) % 3 == 2
            img = compose(crops, rng, w, h)
            path, twin = Path(tmp) / f"p{i}.jpg", Path(tmp) / f"p{i}_q95.jpg"
            save(img, path, 90, turned)
            save(load_image(path), twin, 95, False)

            def full(p=path):
                return pred._predict_pixels(str(p), load_image(p))

            def reduced(p=path):
                return pred.predict(str(p))
            ref, new, yard = full(), reduced(), pred._predict_pixels(str(twin), load_image(twin))
            n_faces += len(ref)
            small, scale = load_image_reduced(path)
            if scale != (1.0, 1.0):
                from agegender.inference.framing import face_crop_box
                det = pred.detector
                fallbacks += any(face_crop_box(d, small.shape, det.name)[2] < REDUCED_MIN_CROP * pred.model.size
                                 for d in det.detect(small))
            rows["reduced"] += compare(ref, new)
            rows["yardstick"] += compare(ref, yard)
            for name, fn in (("full", full), ("reduced", reduced)):
                ts = []
                for _ in range(args.runs):
                    t = time.perf_counter()
                    fn()
                    ts.append(time.perf_counter() - t)
                times[name].append(1000 * statistics.median(ts))
            def pil(p=path, turned=turned):
                return pil_decode(p) if turned else None
            for name, fn in (("pil", pil), ("full", lambda p=path: load_image(p)),
                             ("reduced", lambda p=path: load_image_reduced(p))):
                ts = []
                for _ in range(args.runs):
                    t = time.perf_counter()
                    fn()
                    ts.append(time.perf_counter() - t)
                decode_t[name].append(1000 * statistics.median(ts))
    kinds = [f"{w}x{h}" for w, h in SIZES]
    lines = [f"{args.photos} photos ({', '.join(kinds)} in turn; every third stored turned, EXIF orientation 6), "
             f"{n_faces} faces found by the full-decode path; model: `default` ({pred.model.precision} file), "
             f"detector `{pred.detector.name}`, one thread. Per photo, median of {args.runs} runs; the table gives "
             f"the median over photos. {fallbacks} of the photos had a face under {REDUCED_MIN_CROP:g} x the "
             "net's input in the reduced picture and were decoded again in full for its crop.",
             "", "| photos | decode: PIL (before, for turned files) ms | decode: `load_image` (full) ms | decode: "
             "`load_image_reduced` ms | whole prediction, full decode ms | whole prediction, reduced ms | "
             "speed-up (median of per-photo ratios) |", "|---|---:|---:|---:|---:|---:|---:|"]
    ratios = [f / r for f, r in zip(times["full"], times["reduced"])]
    groups = [("all", list(range(args.photos)))]
    for kind in range(len(SIZES)):
        for turned in (False, True):
            idx = [i for i in range(args.photos) if i % len(SIZES) == kind
                   and ((i // len(SIZES)) % 3 == 2) == turned]
            groups.append((f"{kinds[kind]}{', turned' if turned else ''}", idx))
    for label, idx in groups:
        if not idx:
            continue
        med = {k: statistics.median(v[i] for i in idx) for k, v in decode_t.items()}
        turned_idx = [i for i in idx if (i // len(SIZES)) % 3 == 2]
        pil = f"{statistics.median(decode_t['pil'][i] for i in turned_idx):.1f}" if turned_idx else "-"
        lines.append(f"| {label} ({len(idx)}) | {pil} | {med['full']:.1f} | {med['reduced']:.1f} | "
                     f"{statistics.median(times['full'][i] for i in idx):.1f} | "
                     f"{statistics.median(times['reduced'][i] for i in idx):.1f} | "
                     f"{statistics.median(ratios[i] for i in idx):.2f}x |")
    lines += ["", "Agreement with the full-decode path, face by face (matched by box IoU >= 0.5):", "",
              "| against the full decode | faces matched | same gender % | same age group % | mean max diff of "
              "age-group probabilities | mean diff of p(female) | mean diff of years | median box IoU |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, label in (("reduced", "reduced decode, same file"),
                        ("yardstick", "full decode of the file re-encoded at JPEG quality 95 (yardstick)")):
        s = summary(rows[name], n_faces)
        lines.append(f"| {label} | {s['faces']} | {s['gender']:.1f} | {s['age']:.1f} | {s['dp']:.3f} | "
                     f"{s['dg']:.3f} | {s['dy']:.2f} | {s['iou']:.3f} |")
    body = "\n".join(lines)
    publish(args.docs, args.section, body)


if __name__ == "__main__":
    main()
