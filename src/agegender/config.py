"""Frozen configs for the model and for training. Checkpoints store them as JSON and rebuild from them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from agegender.labels import task_spec

# Mean / std of RGB in 0..255 used inside the network (no per-dataset statistics: a fixed, documented
# affine map, so a user's own data and exported models need nothing else).
RGB_MEAN = (127.5, 127.5, 127.5)
RGB_STD = (64.0, 64.0, 64.0)
AUGMENT_POLICIES = ("flip_shift", "wild")  # implemented in training/augment.py


class _JsonConfig:
    """to_dict / from_dict for the frozen configs; from_dict ignores keys it does not know (results files
    written by older versions stay readable)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class ModelConfig(_JsonConfig):
    arch: str = "paper"
    tasks: tuple[str, ...] = ("age", "gender")
    head: str = "reg"  # "reg": the paper's joint L2 regression of label indices; "cls": softmax per task
    input_size: int = 64
    conv_layers: int = 4  # paper trunk depth: 3..6 (5th and 6th are extra 512-filter convs at 4x4)
    fc_width: int = 512
    # BatchNorm between each FC layer and its ReLU. The paper has none (False reproduces it); without it
    # the first FC layer lost 94-98 % of its units to dead ReLUs in our trainings (docs/RESULTS.md).
    fc_norm: bool = False
    # One FC stack (fc_width -> fc_width -> output) per task after the shared conv trunk instead of one
    # shared stack: the tasks stop competing for the FC layers (Table 3: sharing cost each task about a
    # point with softmax heads); ~4.5 M parameters and ~2 % FLOPs more per extra task. Measured at the
    # 30-epoch schedule it gains nothing (docs/RESULTS.md, "Changes to the net for the gender target").
    fc_branches: bool = False
    dropout: float = 0.5
    # > 0: age as one softmax over the years 0..age_bins-1 (the last bin: that age and older), trained by
    # label-distribution learning on exact ages; age_years is its expectation and the 8 age groups are
    # summed from it (needs the age_years task). 0: age groups and years as separate outputs.
    age_bins: int = 0
    # With age_bins: the 8 groups keep their own softmax head and the years are a distribution within each
    # group (p(year) = p(group) * p(year | group)), so a years layer can be fitted onto a trained group
    # model without changing its groups (`agegender fit-years`; models/heads.py).
    years_in_groups: bool = False
    # With age_bins: age_years is the year distribution's "mean" (what the years loss's L1 term trains) or
    # its "median", which minimises the absolute error under the distribution and scored 0.07-0.12 years
    # lower MAE on validation and test faces (docs/RESULTS.md, "Age in years: mean or median"). Training
    # always uses the mean; the median is the eval-mode output.
    years_estimate: str = "mean"
    mean: tuple[float, float, float] = RGB_MEAN
    std: tuple[float, float, float] = RGB_STD

    def __post_init__(self):
        if self.head not in ("reg", "cls"):
            raise ValueError(f"head must be 'reg' or 'cls', got {self.head!r}")
        if not self.tasks:
            raise ValueError("a model needs at least one task")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        has_years = any(task_spec(t).kind == "years" for t in self.tasks)
        if self.age_bins and (not has_years or self.age_bins < 61 or self.fc_branches):
            raise ValueError("age_bins needs the age_years task, at least 61 bins (the 60+ group starts at 60) "
                             f"and no fc_branches; got {self.age_bins} with tasks {','.join(self.tasks)}")
        if self.years_in_groups and (not self.age_bins or self.head != "cls" or "age" not in self.tasks):
            raise ValueError("years_in_groups needs age_bins, the cls head and the age task")
        if self.years_estimate not in ("mean", "median"):
            raise ValueError(f"years_estimate must be 'mean' or 'median', got {self.years_estimate!r}")
        if self.input_size < 16:
            raise ValueError(f"input_size must be at least 16 pixels, got {self.input_size}")
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "mean", tuple(self.mean))
        object.__setattr__(self, "std", tuple(self.std))



@dataclass(frozen=True)
class TrainConfig(_JsonConfig):
    """The paper's recipe is the default; departures are documented in docs/RESULTS.md."""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    lr_step_epochs: tuple[float, ...] = (25,)  # lr divided by lr_gamma at each of these (fractional) epochs
    lr_gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.0  # linear warm-up from 0 (fraction of an epoch allowed)
    grad_clip: float = 0.0  # max global grad norm; 0 = off
    augment: bool = True
    # "flip_shift": horizontal flip + shifts of up to `shift` px; "wild": framing, colour, blur, small-face,
    # noise, JPEG and occlusion augmentation for real photos (agegender.training.augment)
    augment_policy: str = "flip_shift"
    shift: int = 4
    bf16: bool = True  # bf16 autocast where the CPU supports it (loss always in fp32)
    channels_last: bool = True  # measured 1.3x faster for training on this CPU (docs/BENCHMARKS.md)
    seed: int = 0
    threads: int = 0  # torch threads; 0 = leave torch's default
    task_weights: dict[str, float] = field(default_factory=dict)
    # Knowledge distillation: a cls-head checkpoint folder whose softened probabilities the student also
    # fits (loss = (1 - w) * labels + w * T^2 * KL(teacher_T || student_T), per softmax task). "" = none.
    teacher: str = ""
    distill_weight: float = 0.5
    distill_temperature: float = 2.0
    # Fine-tuning: a checkpoint folder of the same model whose weights start the run (not its optimizer
    # state or epoch count). "" = from scratch.
    init: str = ""
    # Log the share of live (ever-positive) FC units every epoch (docs/RESULTS.md, "Dead ReLU units"): a
    # diagnosis, off unless asked for (--set probe_dead_units=true).
    probe_dead_units: bool = False

    def __post_init__(self):
        if self.augment_policy not in AUGMENT_POLICIES:
            raise ValueError(f"augment_policy must be one of {', '.join(AUGMENT_POLICIES)}, "
                             f"got {self.augment_policy!r}")
        object.__setattr__(self, "lr_step_epochs", tuple(self.lr_step_epochs))



@dataclass(frozen=True)
class YearsFit(_JsonConfig):
    """How `agegender fit-years` fits a years layer onto a trained model (Adam on its cached features)."""

    age_bins: int = 101
    epochs: int = 40
    batch_size: int = 512
    lr: float = 0.01
    weight_decay: float = 1e-4  # L2 on the layer's weights, added to the loss
    mirror: bool = True  # also fit on each face's mirror image
    seed: int = 0


# Named recipes. "paper" is the paper verbatim; the others record measured departures.
RECIPES: dict[str, dict] = {
    "paper": {},
    # Measured departures for this CPU (docs/RESULTS.md, "Choosing the schedule"): lr 0.1 left the
    # softmax heads at the majority class and the regression head diverged, so lr 0.01 with a one-epoch
    # warm-up; the epoch budget and step come from the validation learning curve.
    "cpu": {"lr": 0.01, "warmup_epochs": 1.0, "epochs": 15, "lr_step_epochs": (10,)},
    # Table 3's 50 trainings must fit in about 12 CPU-hours here (about 15 minutes each, one epoch of a
    # UTK-8 fold costs 8 on one core): 2 epochs, lr / 10 for the last quarter, clipping for every row
    # because the reg rows need it (docs/RESULTS.md, "Table 3").
    "ablation": {"lr": 0.01, "warmup_epochs": 0.25, "epochs": 2, "lr_step_epochs": (1.5,), "grad_clip": 1.0},
    # Second stage of the default model (with --init, a model trained by "cpu" on UTKFace, and --extra
    # CelebA): the "cpu" schedule's shape in a third of its epochs, a warm restart at its starting lr.
    # Chosen by reasoning, not on any test fold: a from-scratch run on UTKFace + CelebA costs 3x more
    # per fold, and the first stage is exactly the cv-cls run already finished.
    "finetune": {"lr": 0.01, "warmup_epochs": 0.5, "epochs": 5, "lr_step_epochs": (2,)},
    # The recommended recipe, and the default of `agegender train` / `cv`: the 30-epoch first stage that
    # cross-validated best on UTK-8 (docs/RESULTS.md, "The 30-epoch first stage": 92.4 +- 0.3 % gender with
    # the cls head). The paper's own recipe (lr 0.1) stays available as "paper".
    "recommended": {"lr": 0.01, "warmup_epochs": 1.0, "epochs": 30, "lr_step_epochs": (20,)},
    # For real photos: the 30-epoch schedule that measured best for the first stage (docs/RESULTS.md, "Recipe
    # pilots") with the "wild" augmentation (agegender.training.augment). Meant with UTKFace + CelebA (--extra).
    "wild": {"lr": 0.01, "warmup_epochs": 1.0, "epochs": 30, "lr_step_epochs": (20,), "augment_policy": "wild"},
    # a further stage for a trained model (e.g. --init default): the finetune schedule, one epoch longer,
    # with the "wild" augmentation; an 8-group age head can grow into a years head here (--age-bins)
    "wild-finetune": {"lr": 0.01, "warmup_epochs": 0.5, "epochs": 6, "lr_step_epochs": (4,),
                      "augment_policy": "wild"},
}


def recipe(name: str, **overrides) -> TrainConfig:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return TrainConfig(**{**RECIPES[name], **{k: v for k, v in overrides.items() if v is not None}})


def parse_overrides(items: list[str] | None) -> tuple[dict, dict]:
    """``--set key=value`` items -> (ModelConfig overrides, TrainConfig overrides), each value parsed by its
    field's type (bool: true/false/1/0; tuples: comma-separated; dicts: k=v,k=v). An unknown key or a bad
    value is a ValueError naming it and the known keys."""
    model_fields = {f.name: f for f in dataclasses.fields(ModelConfig)}
    train_fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    model, train = {}, {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        field_ = train_fields.get(key) or model_fields.get(key)
        if not sep or field_ is None:
            known = ", ".join(sorted(set(train_fields) | set(model_fields)))
            raise ValueError(f"--set {item!r}: expected KEY=VALUE with KEY one of {known}")
        try:
            value = _parse_value(field_, text.strip())
        except ValueError as err:
            raise ValueError(f"--set {item!r}: {err}") from None
        (train if key in train_fields else model)[key] = value
    return model, train


def _parse_value(field_: dataclasses.Field, text: str):
    kind = field_.type if isinstance(field_.type, str) else getattr(field_.type, "__name__", str(field_.type))
    if kind == "bool":
        if text.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise ValueError(f"{text!r} is not true or false")
        return text.lower() in ("true", "1", "yes", "on")
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind.startswith("tuple[float"):
        return tuple(float(v) for v in text.split(",") if v)
    if kind.startswith("tuple[str"):
        return tuple(v for v in text.split(",") if v)
    if kind.startswith("dict[str, float]"):
        pairs = [p.partition("=") for p in text.split(",") if p]
        if any(not sep for _, sep, _ in pairs):
            raise ValueError(f"{text!r} is not k=v,k=v")
        return {k: float(v) for k, _, v in pairs}
    return text
