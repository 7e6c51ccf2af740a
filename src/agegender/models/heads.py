"""Pieces shared by every architecture: input normalisation and the multi-task output head."""

from __future__ import annotations

import torch
from torch import nn

from agegender.labels import task_spec


def target_affine(task: str) -> tuple[float, float]:
    """(center, scale) that maps a task's label range onto about [-1, 1] for regression.

    Class indices 0..C-1 get center (C-1)/2 and scale (C-1)/2; ages in years 35 +- 25. The output
    layer regresses (label - center) / scale, and the head returns label units, so the model is
    still the paper's linear regression of the label vector; only its parameterisation is rescaled
    (the raw-label L2 loss diverged at the paper's learning rate, see docs/RESULTS.md).
    """
    spec = task_spec(task)
    if spec.categorical:
        half = (spec.num_classes - 1) / 2
        return half, half
    return 35.0, 25.0


class Normalize(nn.Module):
    """RGB 0..255 -> (x - mean) / std, kept inside the network so exported models take raw pixels."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("inv_std", 1.0 / torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.inv_std


YEARS_DIST = "age_years:dist"  # training-only output: log-probabilities over the years, (B, age_bins)


def year_group_matrix(bins: int) -> torch.Tensor:
    """(8, bins) 0/1: year y (0..bins-1; the last bin holds every older age) belongs to its nearest
    Adience group, the rule UTK-8's "nearest" labels use."""
    from agegender.labels import AGE_GROUPS, age_group_nearest

    m = torch.zeros(len(AGE_GROUPS), bins)
    for y in range(bins):
        m[age_group_nearest(y), y] = 1.0
    return m


class MultiTaskHead(nn.Module):
    """Maps shared features (B, F) to one named output per task.

    head="cls": a softmax head (logits, (B, C)) per categorical task.
    head="reg": the paper's joint head, one linear layer regressing a value per task ((B,) each,
    in label units: 0..C-1 for class indices).
    Real-valued tasks (e.g. age_years) are regressed under either head, unless ``age_bins`` > 0: then age
    is one softmax over the years 0..age_bins-1 (label-distribution learning); ``age_years`` is its
    expected value and ``age`` (if a task) the log-probabilities of the 8 groups summed from it, so the
    two always agree. In training mode the year log-probabilities are also returned, as ``YEARS_DIST``.
    With ``years_in_groups`` the 8 groups keep their own softmax head (``age`` logits) and the years
    layer gives a distribution within each group: p(year) = p(group of year) * p(year | group), so the
    years sum to the group head's probabilities exactly and a years layer can be added to a trained
    group model without changing its groups (``agegender fit-years``).
    """

    def __init__(self, in_features: int, tasks: tuple[str, ...], head: str, age_bins: int = 0,
                 years_in_groups: bool = False, years_estimate: str = "mean"):
        super().__init__()
        self.years_estimate = years_estimate
        self.tasks = tuple(tasks)
        self.head = head
        self.age_bins = age_bins
        self.years_in_groups = years_in_groups
        # the registry's years task (age_years) and the ordinal task its distribution sums into (age)
        self.years_task = next((t for t in self.tasks if task_spec(t).kind == "years"), None)
        if age_bins and self.years_task is None:
            raise ValueError("age_bins > 0 needs a years task (age_years)")
        self.groups_task = task_spec(self.years_task).groups_of if age_bins else None
        if years_in_groups and (not age_bins or head != "cls" or self.groups_task not in self.tasks):
            raise ValueError("years_in_groups needs age_bins, the cls head and the age group task")
        derived = ({self.years_task} if years_in_groups else {self.years_task, self.groups_task}) if age_bins else set()
        specs = [task_spec(t) for t in self.tasks if t not in derived]
        self.logit_tasks = [s.name for s in specs if s.categorical and head == "cls"]
        self.value_tasks = [s.name for s in specs if s.name not in self.logit_tasks]
        self.classifiers = nn.ModuleDict({t: nn.Linear(in_features, task_spec(t).num_classes)
                                          for t in self.logit_tasks})
        self.regressor = nn.Linear(in_features, len(self.value_tasks)) if self.value_tasks else None
        affine = torch.tensor([target_affine(t) for t in self.value_tasks] or [(0.0, 1.0)], dtype=torch.float32)
        self.register_buffer("value_center", affine[:, 0].clone())
        self.register_buffer("value_scale", affine[:, 1].clone())
        self.years = nn.Linear(in_features, age_bins) if age_bins else None
        if age_bins:
            self.register_buffer("year_values", torch.arange(age_bins, dtype=torch.float32))
            # log of the 0/1 membership, -1e4 for "not in this group": logsumexp over it sums the group's years
            self.register_buffer("year_group_log", (year_group_matrix(age_bins) - 1.0) * 1e4)
            if years_in_groups:
                self.register_buffer("year_group_index", year_group_matrix(age_bins).argmax(0))  # (bins,)
        for layer in [*self.classifiers.values(), self.regressor, self.years]:
            if layer is not None:
                nn.init.normal_(layer.weight, std=0.01)
                nn.init.zeros_(layer.bias)

    def forward(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {t: self.classifiers[t](h) for t in self.logit_tasks}
        if self.regressor is not None:
            values = self.regressor(h).float() * self.value_scale + self.value_center  # (B, n_value_tasks)
            out.update({t: values[:, i] for i, t in enumerate(self.value_tasks)})
        if self.years is not None and self.years_in_groups:
            u = self.years(h).float()  # (B, bins): log p(year | its group) up to each group's normaliser
            within = torch.logsumexp(u[:, None, :] + self.year_group_log[None], dim=2)  # (B, 8)
            group_log_p = torch.log_softmax(out[self.groups_task].float(), dim=1)
            log_p = u + (group_log_p - within)[:, self.year_group_index]
            out[self.years_task] = self._years_point(log_p)
            if self.training:
                out[YEARS_DIST] = log_p
        elif self.years is not None:
            log_p = torch.log_softmax(self.years(h).float(), dim=1)  # (B, bins)
            out[self.years_task] = self._years_point(log_p)
            out[self.groups_task] = torch.logsumexp(log_p[:, None, :] + self.year_group_log[None], dim=2)  # (B, 8)
            if self.training:
                out[YEARS_DIST] = log_p
        named = {t: out[t] for t in self.tasks}
        if YEARS_DIST in out:
            named[YEARS_DIST] = out[YEARS_DIST]
        return named


    def _years_point(self, log_p: torch.Tensor) -> torch.Tensor:
        """age_years from (B, bins) year log-probabilities: the expected value in training (the loss's L1
        term is on it) and for ``years_estimate="mean"``, else the median."""
        p = log_p.exp()
        if self.training or self.years_estimate == "mean":
            return (p * self.year_values).sum(1)
        return years_median(p)


def years_median(p: torch.Tensor) -> torch.Tensor:
    """Interpolated median of (B, bins) year probabilities, year y spread evenly over y - 0.5 .. y + 0.5:
    continuous in ``p`` (a probability moving across the halfway point moves the median smoothly)."""
    bins = p.shape[1]
    c = torch.cumsum(p, 1)
    y = (c < 0.5 * c[:, -1:]).sum(1, keepdim=True).clamp(max=bins - 1)  # the bin holding the halfway point
    before = torch.gather(c - p, 1, y)
    inside = torch.gather(p, 1, y).clamp_min(1e-12)
    half = 0.5 * c[:, -1:]
    return (y.to(p.dtype) - 0.5 + (half - before) / inside).clamp(0, bins - 1).squeeze(1)


class TaskBranches(nn.Module):
    """One branch per task group, each mapping the shared features (B, F) to its own named outputs;
    the outputs are merged in task order. Used in place of ``fc`` + ``MultiTaskHead`` when each task
    gets its own FC stack (``ModelConfig.fc_branches``)."""

    def __init__(self, branches: dict[str, nn.Module], tasks: tuple[str, ...]):
        super().__init__()
        self.branches = nn.ModuleDict(branches)
        self.tasks = tuple(tasks)

    def forward(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for branch in self.branches.values():
            out.update(branch(h))
        return {t: out[t] for t in self.tasks}


class FaceNet(nn.Module):
    """Every architecture's shape: ``normalize`` -> ``features`` (conv trunk) -> ``fc`` -> ``head``.

    Subclasses set the four modules; the forward split follows timm (``forward_features`` /
    ``forward_head``) and the output is always one named tensor per task.
    """

    normalize: nn.Module
    features: nn.Module
    fc: nn.Module
    head: MultiTaskHead

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, 3, S, S) RGB in 0..255 -> (B, C, h, w)
        return self.features(self.normalize(x))

    def forward_head(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head(self.fc(feats))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_head(self.forward_features(x))
