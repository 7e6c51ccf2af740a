"""The fit-years command: add age in years to a trained 8-group model (agegender.training.years_head)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agegender.config import YearsFit


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_fit_years(args) -> int:
    import dataclasses

    import numpy as np
    import torch

    from agegender.data.datasets import read_dataset
    from agegender.data.faceset import build_faceset
    from agegender.data.folds import assign_folds
    from agegender.experiments.cv import run_info
    from agegender.labels import MISSING
    from agegender.training.checkpoint import save_checkpoint
    from agegender.training.years_head import cross_validate, face_features, fit_layer, years_model

    out = Path(args.out)
    if (out / "checkpoint").exists() and not args.force:
        raise FileExistsError(f"{out / 'checkpoint'} exists; pass --force to replace it")
    if args.threads:
        torch.set_num_threads(args.threads)
    fit = YearsFit(age_bins=args.age_bins, epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay,
                   mirror=not args.no_mirror)
    records, info = read_dataset(args.dataset, args.data_root, skip_missing=args.skip_missing)
    records = [r for r in records if r.label("age_years") != MISSING]
    if not records:
        raise ValueError(f"{args.data_root}: no face with an exact age (age_years) to fit the years on")
    model, cfg = years_model(args.init, fit.age_bins, log=_log)
    faces = build_faceset(records, cfg.input_size, tag=args.dataset, progress=not args.no_progress)
    years = np.clip(faces.labels["age_years"].astype(np.float64), 0, fit.age_bins - 1)
    feats = face_features(model, faces.images, fit.mirror)
    _log(f"features of {len(records)} faces{' and their mirror images' if fit.mirror else ''}")
    result = {"command": args.command_line, "init": args.init, "data": info, "fit": dataclasses.asdict(fit),
              "model": cfg.to_dict(), **run_info()}
    if args.folds > 1:
        folds = assign_folds(records, args.folds, args.fold_seed)
        result["cv"] = {"k": args.folds, "fold_seed": args.fold_seed,
                        **cross_validate(model, feats, years, folds, fit, log=_log)}
        _log(f"cross-validated MAE {result['cv']['mae_mean']:.2f} +- {result['cv']['mae_std']:.2f} years")
    result["loss"] = fit_layer(model, feats, years, fit, log=_log)
    save_checkpoint(out / "checkpoint", model, cfg, extra={"years_fit": {"init": args.init, **result["fit"]}})
    (out / "results.json").write_text(json.dumps(result, indent=1))
    _log(f"checkpoint written to {out / 'checkpoint'} (export it with `agegender export`)")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("fit-years", help="add age in years to a trained 8-group model, its groups and gender unchanged")
    p.add_argument("--init", required=True,
                   help="the trained model: a checkpoint folder, an exported .onnx file, or default / fast")
    p.add_argument("--dataset", required=True, choices=("utkface", "csv"), help="faces with exact ages")
    p.add_argument("--data-root", required=True, help="dataset folder (csv: the CSV file, with an age_years column)")
    p.add_argument("--skip-missing", action="store_true", help="drop records whose image file is missing")
    p.add_argument("--age-bins", type=int, default=101, help="years 0..N-1, the last bin for that age and older")
    p.add_argument("--epochs", type=int, default=YearsFit.epochs)
    p.add_argument("--lr", type=float, default=YearsFit.lr)
    p.add_argument("--weight-decay", type=float, default=YearsFit.weight_decay)
    p.add_argument("--no-mirror", action="store_true", help="fit on the faces only, not also their mirror images")
    p.add_argument("--folds", type=int, default=5,
                   help="cross-validate the fit on these fixed folds first (1: skip; default 5, UTK-8's)")
    p.add_argument("--fold-seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", required=True, help="run folder: checkpoint/ and results.json")
    p.add_argument("--force", action="store_true", help="replace an existing checkpoint in --out")
    p.set_defaults(func=cmd_fit_years)

