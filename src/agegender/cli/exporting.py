"""The export command: a checkpoint to ONNX (fp32, fp16, int8) with its parity check."""

from __future__ import annotations

import sys
from pathlib import Path


def cmd_export(args) -> int:
    import json

    calibration = None
    if args.calibration:
        calibration = _calibration_faces(args.calibration, args.calibration_size, _checkpoint_size(args.checkpoint))
    from agegender.export import export_onnx

    out = Path(args.out)
    if out.exists() and not args.force:
        raise FileExistsError(f"{out} exists; pass --force to replace it")
    report = export_onnx(args.checkpoint, out, args.precision, calibration)
    print(json.dumps(report, indent=1))
    worst = max(report["max_abs_diff_random"].values())
    if args.precision == "fp32" and worst >= 1e-3:
        print(f"agegender export: parity check failed (max abs diff {worst:.2e} >= 1e-3)", file=sys.stderr)
        return 1
    return 0


def _checkpoint_size(folder: str) -> int:
    """The input size a checkpoint was trained at (its meta.json), for faces made to feed it."""
    from agegender.training.checkpoint import find_checkpoint, read_meta

    found = find_checkpoint(folder)
    if found is None:
        raise FileNotFoundError(f"{folder}: no checkpoint (model.safetensors + meta.json) found")
    return int(read_meta(found)["input"]["size"])


def _calibration_faces(spec: str, n: int, size: int):
    import numpy as np

    from agegender.data.datasets import parse_extra, read_dataset
    from agegender.data.faceset import build_faceset

    name, root = parse_extra(spec)
    records, _ = read_dataset(name, root, verbose=False)
    # A fixed, spread-out sample (every k-th record in path order) keeps the calibration deterministic.
    records = sorted(records, key=lambda r: r.path)[:: max(1, len(records) // n)][:n]
    return np.asarray(build_faceset(records, size, tag=f"{name}-calib").images)


def add_commands(sub) -> None:
    """Add this group's subcommands to the top-level parser's ``sub``."""
    p = sub.add_parser("export", help="export a checkpoint to ONNX and check it against PyTorch")
    p.add_argument("checkpoint", help="checkpoint folder (RUN/checkpoint)")
    p.add_argument("--out", required=True, help="output .onnx file")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32")
    p.add_argument("--calibration", metavar="DATASET:PATH", help="faces for int8 calibration and parity")
    p.add_argument("--calibration-size", type=int, default=512)
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_export)
