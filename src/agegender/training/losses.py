"""Multi-task loss: cross-entropy for softmax heads, L2 for regressed values, missing labels masked.

The total is the sum over tasks (optionally weighted), as in the paper's summed L2 loss; L2 weight
regularisation is the optimiser's weight decay. Always computed in fp32, also under bf16 autocast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from agegender.labels import MISSING, task_spec
from agegender.models.heads import YEARS_DIST, target_affine

TEACHER = "teacher:"  # label key prefix of a teacher's logits, e.g. "teacher:age"


def distill_loss(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                 temperature: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum over softmax tasks of T^2 * KL(teacher_T || student_T) (Hinton et al. 2015), batch mean."""
    total = torch.zeros((), dtype=torch.float32)
    parts = {}
    for task, out in outputs.items():
        teacher = targets.get(TEACHER + task)
        if teacher is None or out.dim() != 2:
            continue
        log_p = F.log_softmax(out.float() / temperature, dim=1)
        q = F.softmax(teacher.float() / temperature, dim=1)
        loss = F.kl_div(log_p, q, reduction="batchmean") * temperature ** 2
        parts[f"distill_{task}"] = float(loss.detach())
        total = total + loss
    return total, parts


def multitask_loss(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                   weights: dict[str, float] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """(total loss, per-task loss values). A task with no labelled sample in the batch adds 0."""
    weights = weights or {}
    total = torch.zeros((), dtype=torch.float32)
    parts = {}
    for task, out in outputs.items():
        if task == YEARS_DIST:
            continue  # read with the years task
        y = targets[task]
        known = y != MISSING
        if not bool(known.any()):
            continue
        out = out.float()
        if task_spec(task).kind == "years" and YEARS_DIST in outputs:
            loss = years_distribution_loss(outputs[YEARS_DIST][known], out[known], y[known])
        elif out.dim() == 2:  # logits (B, C)
            loss = F.cross_entropy(out[known], y[known].long())
        else:  # a regressed value in label units; the error is measured in the head's normalised units
            _, scale = target_affine(task)
            loss = (((out[known] - y[known]) / scale) ** 2).mean()
        parts[task] = float(loss.detach())
        total = total + weights.get(task, 1.0) * loss
    return total, parts


# Label-distribution learning for age in years (DLDL-v2, Gao et al. 2018): the exact age becomes a Gaussian
# over the year bins, its width growing with age (apparent age is less precise for older faces: 1 year at
# 0, about 3 at 30, 5 at 70), fitted by KL divergence, plus an L1 term on the expected age that ties the
# distribution's mean to the label (in years, weighted so that 5 years of error weigh 0.25).
YEARS_SIGMA = (1.0, 0.06)  # sigma = a + b * age
YEARS_L1_WEIGHT = 0.05


def years_distribution_loss(log_p: torch.Tensor, expected: torch.Tensor, years: torch.Tensor) -> torch.Tensor:
    """log_p (B, bins) log-probabilities over the years, expected (B,) their mean, years (B,) labels."""
    bins = log_p.shape[1]
    y = years.float().clamp(0, bins - 1)
    grid = torch.arange(bins, dtype=torch.float32)
    sigma = YEARS_SIGMA[0] + YEARS_SIGMA[1] * y
    q = torch.exp(-0.5 * ((grid[None, :] - y[:, None]) / sigma[:, None]) ** 2)
    q = q / q.sum(1, keepdim=True)
    kl = (q * (torch.log(q.clamp_min(1e-12)) - log_p.float())).sum(1).mean()
    return kl + YEARS_L1_WEIGHT * (expected.float() - y).abs().mean()
