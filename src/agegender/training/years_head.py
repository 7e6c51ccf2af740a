"""Age in years for a trained 8-group model, without retraining it (`agegender fit-years`).

The model's trunk, FC layers, gender head and age-group head are kept exactly; a years layer is added
(``ModelConfig.years_in_groups``): p(year) = p(group of year) * p(year | group), with p(year | group) a
softmax over the group's years (the nearest-group rule) from one linear layer on the model's last
features. Its median is ``age_years`` (``ModelConfig.years_estimate``; the fit's L1 term is on its
expected value); the 8 group probabilities are the group head's, so they are
the year distribution's group sums by construction and every group and gender prediction is unchanged.

The layer is fitted on features computed once per face (eval mode; each face and its mirror image), by the
label-distribution loss the years models train with (``losses.years_distribution_loss``), with the group
probabilities fixed. ``cross_validate`` scores the recipe on held-out faces of the fixed UTK-8 folds
(the layer refitted without them). The trunk itself saw every face it was trained on, so for a model
trained on all of UTKFace those are faces the trunk has seen: the MAE there is optimistic by the trunk's
fit (docs/RESULTS.md says by how much the group accuracy is).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from agegender.config import ModelConfig, YearsFit
from agegender.models import create_model
from agegender.models.heads import YEARS_DIST
from agegender.training.losses import years_distribution_loss

BANDS = ((0, 2), (3, 12), (13, 19), (20, 39), (40, 59), (60, 200))


def years_model_config(source: ModelConfig, age_bins: int) -> ModelConfig:
    """The source model's config with the age_years task and a years layer within its age groups (a source
    that has one already gets it refitted)."""
    if source.head != "cls" or "age" not in source.tasks or (source.age_bins and not source.years_in_groups):
        raise ValueError("fit-years needs a model with a softmax head for the 8 age groups (cls head; years, "
                         "if any, within the groups)")
    tasks = tuple(source.tasks) + (() if "age_years" in source.tasks else ("age_years",))
    return dataclasses.replace(source, tasks=tasks, age_bins=age_bins, years_in_groups=True,
                               years_estimate="median")


def years_model(source: str, age_bins: int, log=print) -> tuple[torch.nn.Module, ModelConfig]:
    """A years_in_groups model started from ``source`` (checkpoint folder, .onnx, default / fast)."""
    from agegender.training.train import _init_weights, init_from

    _, source_cfg = _init_weights(source)
    cfg = years_model_config(source_cfg, age_bins)
    model = create_model(cfg)
    init_from(model, cfg, source, log=log)
    return model.eval(), cfg


@torch.no_grad()
def face_features(model: torch.nn.Module, images: np.ndarray, mirror: bool, batch: int = 256) -> torch.Tensor:
    """The model's last features (the head's input) for uint8 (N, S, S, 3) faces, eval mode; with
    ``mirror`` the mirror images follow as rows N..2N-1."""
    model.eval()
    views = [False, True] if mirror else [False]
    out = []
    for flip in views:
        for i in range(0, len(images), batch):
            x = torch.from_numpy(np.array(images[i:i + batch])).permute(0, 3, 1, 2).float()
            if flip:
                x = x.flip(3)
            out.append(model.fc(model.forward_features(x)).float())
    return torch.cat(out)


def head_outputs(model: torch.nn.Module, feats: torch.Tensor, training: bool = False) -> dict[str, torch.Tensor]:
    head = model.head
    head.train(training)
    try:
        return head(feats)
    finally:
        head.eval()


def fit_layer(model: torch.nn.Module, feats: torch.Tensor, years, fit: YearsFit, log=print) -> list[float]:
    """Fit ``model.head.years`` (only) on features and exact ages; returns the loss of each epoch.
    ``years`` has one age per face; ``feats`` may hold several views of each face stacked as
    ``face_features`` stacks them (faces, then their mirror images), and the ages repeat for each view."""
    years = torch.as_tensor(np.asarray(years), dtype=torch.float32)
    if len(feats) % len(years):
        raise ValueError(f"{len(feats)} feature rows are not whole views of {len(years)} faces")
    years = years.repeat(len(feats) // len(years))
    torch.manual_seed(fit.seed)
    layer = model.head.years
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
    for p in model.parameters():
        p.requires_grad_(False)
    for p in layer.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(layer.parameters(), lr=fit.lr)
    steps = fit.epochs * -(-len(feats) // fit.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(fit.seed)
    losses = []
    for _ in range(fit.epochs):
        order = torch.randperm(len(feats), generator=gen)
        total = 0.0
        for i in range(0, len(feats), fit.batch_size):
            idx = order[i:i + fit.batch_size]
            out = head_outputs(model, feats[idx], training=True)
            loss = years_distribution_loss(out[YEARS_DIST], out["age_years"], years[idx])
            loss = loss + fit.weight_decay * layer.weight.pow(2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(feats))
    for p in model.parameters():
        p.requires_grad_(True)
    log(f"years layer: {fit.epochs} epochs on {len(feats)} faces, loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    return losses


@torch.no_grad()
def predict_years(model: torch.nn.Module, feats: torch.Tensor) -> np.ndarray:
    return head_outputs(model, feats)["age_years"].numpy().astype(np.float64)


def mae_by_band(pred: np.ndarray, years: np.ndarray) -> dict:
    err = np.abs(pred - years)
    bands = {}
    for lo, hi in BANDS:
        m = (years >= lo) & (years <= hi)
        bands[f"{lo}-{hi}" if hi < 200 else f"{lo}+"] = {"faces": int(m.sum()),
                                                          "mae": float(err[m].mean()) if m.any() else None}
    return {"faces": int(len(err)), "mae": float(err.mean()), "bands": bands}


def cross_validate(model: torch.nn.Module, feats: torch.Tensor, years: np.ndarray, folds: list[int],
                   fit: YearsFit, log=print) -> dict:
    """Fit the layer on k-1 folds, predict the held-out fold (the unmirrored faces), for every fold."""
    n = len(years)
    folds = np.asarray(folds)
    views = len(feats) // n
    pred = np.full(n, np.nan)
    per_fold = []
    for k in sorted(set(folds.tolist())):
        train = np.flatnonzero(folds != k)
        test = np.flatnonzero(folds == k)
        rows = np.concatenate([train + v * n for v in range(views)])
        t0 = time.perf_counter()
        fit_layer(model, feats[rows], years[train], fit, log=lambda _: None)
        pred[test] = predict_years(model, feats[test])
        fold = mae_by_band(pred[test], years[test])
        per_fold.append({"fold": int(k), **fold, "seconds": time.perf_counter() - t0})
        log(f"fold {k}: MAE {fold['mae']:.2f} years on {fold['faces']} held-out faces")
    maes = [f["mae"] for f in per_fold]
    return {"pooled": mae_by_band(pred, years), "folds": per_fold,
            "mae_mean": float(np.mean(maes)), "mae_std": float(np.std(maes))}
