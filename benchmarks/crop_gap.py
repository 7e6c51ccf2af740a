"""Accuracy of detect-then-crop against the aligned crops, on held-out native 200x200 UTKFace faces.

    python benchmarks/crop_gap.py --run ~/agegender-runs/cv-cls --data ../shared/data --out docs/BENCHMARKS.md

Each `utkface_200` face is scored by the model of the fold that held it out (``--folds``, default every
finished fold of the run; a --tune-val run also counts its validation split as held out), so with all
folds finished every face that is also in `utkface` is scored once, by a model that never saw it.
Variants, all through the same Predictor:
  aligned-64      the 64x64 UTKFace file, as in training
  aligned-200     the 200x200 crop resized to 64x64 (`predict --aligned`: preprocess.resize_face, bicubic
                  + JPEG q75, the way the 64x64 files were made)
  aligned-200, bilinear   the same crop through the resize used before (PIL bilinear, no JPEG step)
  detect-bare     the detector on the 200x200 crop itself (the face fills the picture)
  detect-canvas   the crop pasted in the middle of a 600x600 noisy grey picture (a face with context)
  detect-tilted   the same picture rotated by 15 degrees (clockwise and anticlockwise in turn): a tilted head
"box frame": the crop framed from the detector's box alone (landmarks dropped, so no rotation either), as
before the landmark frame existed; the other detect rows use predict's framing (landmarks where calibrated).
A detector miss counts as wrong in "all" and is left out of "detected".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from agegender.data.datasets import read_dataset
from agegender.data.folds import assign_folds, fold_split
from agegender.data.readers import parse_utkface_name
from agegender.inference.detect import Detection, create_detector
from agegender.inference.predict import Predictor
from agegender.labels import GENDERS, MISSING, age_group_strict
from agegender.preprocess import load_image
from agegender.provenance import publish


def held_out_names(data: Path, run: Path, fold: int, tune_val: float | None) -> set[str]:
    results = json.loads((run / "results.json").read_text()) if (run / "results.json").is_file() else {}
    k, seed = results.get("k", 5), results.get("fold_seed", 0)
    tune = tune_val if tune_val is not None else results.get("tune_val", 0.0)
    records, _ = read_dataset("utkface", str(data / "utkface"), verbose=False)
    train_idx, _ = fold_split(records, assign_folds(records, k, seed=seed), fold, tune, seed)
    trained = {Path(records[i].path).name for i in train_idx}
    return {Path(r.path).name for r in records} - trained


TILT = 15.0


class BoxOnly:
    """A detector whose detections lose their landmarks: predict frames the crop from the box alone."""

    def __init__(self, det) -> None:
        self.det, self.name = det, det.name

    def detect(self, image: np.ndarray) -> list[Detection]:
        return [Detection(d.box, d.score) for d in self.det.detect(image)]


def canvas(face: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pic = np.clip(rng.normal(120, 25, (600, 600, 3)), 0, 255).astype(np.uint8)
    pic[200:400, 200:400] = face
    return pic


def tilted(picture: np.ndarray, degrees: float) -> np.ndarray:
    import cv2

    m = cv2.getRotationMatrix2D((picture.shape[1] / 2, picture.shape[0] / 2), degrees, 1.0)
    return cv2.warpAffine(picture, m, picture.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def score(results: list, truth: list[dict]) -> dict:
    g_ok = a_ok = a_n = found = 0
    for r, t in zip(results, truth, strict=True):
        strict = age_group_strict(t["age_years"])
        if r is None:
            a_n += strict != MISSING
            continue
        found += 1
        g_ok += GENDERS.index(r.gender) == t["gender"]
        if strict != MISSING:
            a_n += 1
            a_ok += r.age_group_index == strict
    n = len(truth)
    return {"found": found, "n": n, "gender_all": 100 * g_ok / n, "age_strict_all": 100 * a_ok / max(a_n, 1),
            "gender_detected": 100 * g_ok / max(found, 1)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True, help="cv run folder")
    ap.add_argument("--folds", help="comma-separated folds (default: every finished fold of the run)")
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--detector", default="default")
    ap.add_argument("--tune-val", type=float, help="the run's --tune-val (read from its results.json if done)")
    ap.add_argument("--out", help="write the table as a section of this Markdown file")
    args = ap.parse_args()
    data, run = Path(args.data), Path(args.run).expanduser()
    folds = ([int(f) for f in args.folds.split(",")] if args.folds
             else sorted(int(p.parent.name.split("_")[1]) for p in run.glob("fold_*/results.json")))
    if not folds:
        sys.exit(f"{run}: no finished folds (pass --folds for a fold with a checkpoint)")
    variants: dict[str, list] = {"aligned-64": [], "aligned-200": [], "aligned-200, bilinear (before)": [],
                                 "detect-bare": [], "detect-canvas, box frame (before)": [], "detect-canvas": [],
                                 f"detect-tilted {TILT:g}, box frame (before)": [], f"detect-tilted {TILT:g}": []}
    truth: list[dict] = []
    detector_name = ""
    for fold in folds:
        held = held_out_names(data, run, fold, args.tune_val)
        files = sorted(p for p in (data / "utkface_200" / "crop_part1").iterdir() if p.name in held)
        truth += [parse_utkface_name(p.name) for p in files]
        ckpt = run / f"fold_{fold}" / "checkpoint"
        aligned = Predictor(ckpt, aligned=True)
        det = create_detector(args.detector)
        detecting, boxing = Predictor(ckpt, detector=det), Predictor(ckpt, detector=BoxOnly(det))
        detector_name = det.name
        for i, p in enumerate(files):
            small = data / "utkface" / "UTKFace" / p.name
            variants["aligned-64"].append(aligned.predict(small)[0] if small.is_file() else None)
            variants["aligned-200"].append(aligned.predict(p)[0])
            face = load_image(p)
            before = np.asarray(Image.fromarray(face).resize((64, 64), Image.Resampling.BILINEAR))
            variants["aligned-200, bilinear (before)"].append(aligned.predict(before)[0])
            pic = canvas(face, i)
            tilt = tilted(pic, TILT if i % 2 else -TILT)
            for name, picture, predictor in (
                    ("detect-bare", face, detecting),
                    ("detect-canvas, box frame (before)", pic, boxing), ("detect-canvas", pic, detecting),
                    (f"detect-tilted {TILT:g}, box frame (before)", tilt, boxing),
                    (f"detect-tilted {TILT:g}", tilt, detecting)):
                found = predictor.predict(picture)
                variants[name].append(found[0] if found else None)  # highest-scoring face
        print(f"fold {fold}: {len(files)} faces", file=sys.stderr)
    rows = ["| variant | faces found | gender % (all) | age exact strict % (all) | gender % (detected) "
            "| same age group as aligned-64 % |", "|---|---|---|---|---|---|"]
    for name, res in variants.items():
        s = score(res, truth)
        same = np.mean([r is not None and r.age_group_index == a.age_group_index
                        for r, a in zip(res, variants["aligned-64"], strict=True)])
        rows.append(f"| {name} | {s['found']}/{s['n']} | {s['gender_all']:.1f} | {s['age_strict_all']:.1f} | "
                    f"{s['gender_detected']:.1f} | {100 * same:.1f} |")
    babies = sum(t["age_years"] <= 3 for t in truth)
    body = (f"Models: `{run.name}` folds {', '.join(map(str, folds))}, each on the `utkface_200` faces it held "
            f"out: {len(truth)} faces ({babies} of them aged 0-3, where gender is hardest: `utkface_200` is "
            "child-heavy, so its accuracy sits below the folds' test sets; compare the rows with each other); "
            f"detector `{detector_name}`. detect-canvas: the face pasted in a 600x600 noisy picture; detect-tilted: "
            f"that picture turned {TILT:g} degrees (each way in turn). \"box frame\": the crop framed from the "
            "detector's box alone, as before; the other detect rows frame it from the landmarks and level the eye "
            "line (`framing.face_crop_box`, `face_roll`), as `predict` does.\n\n" + "\n".join(rows))
    publish(args.out, "Detect-then-crop vs aligned crops", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
