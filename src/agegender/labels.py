"""Label spaces (age groups, gender, race) and the clean-up maps for the Adience fold files.

Everything here is plain Python: prediction imports it without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

# The eight Adience age groups, as the paper names them. The fold files write the third one "(8, 12)";
# the paper and most follow-up work call it 8-13, and an exact age of 13 is filed there.
AGE_GROUPS: tuple[str, ...] = ("0-2", "4-6", "8-13", "15-20", "25-32", "38-43", "48-53", "60+")
AGE_GROUP_RANGES: tuple[tuple[int, int], ...] = (
    (0, 2), (4, 6), (8, 13), (15, 20), (25, 32), (38, 43), (48, 53), (60, 200),
)
# Nearest-group rule for ages between groups (data README): split the gaps at their midpoints.
NEAREST_UPPER: tuple[int, ...] = (3, 7, 14, 22, 35, 45, 56)

GENDERS: tuple[str, ...] = ("male", "female")  # index 0 = male, 1 = female (UTKFace and Levi's lists agree)
RACES: tuple[str, ...] = ("white", "black", "asian", "indian", "other")  # UTKFace's race field

MISSING = -1  # label value of a task a record has no label for; the loss masks it


KINDS = ("classes", "ordinal", "years")
RECORD_STYLES = ("probs", "index_probs", "confidence", "value")


@dataclass(frozen=True)
class TaskSpec:
    """One output of the network, and everything the package does with it.

    kind: "classes" (labels; a softmax head and cross-entropy, or the paper's regressed index under an
    L2 loss; accuracy and confusion), "ordinal" (classes in order, e.g. age groups: also the 1-off
    accuracy) or "years" (a real value: L2 regression, or a distribution over the years with the
    label-distribution loss; MAE).
    field / record: the record keys a prediction fills. "probs": FIELD and FIELD_probs; "index_probs":
    FIELD, FIELD_index and FIELD_probs; "confidence": FIELD and FIELD_confidence (the stated label's
    probability); "value": FIELD (a number).
    exact_from: for an ordinal task, the years task whose exact labels give the strict score
    (``accuracy_report``'s FIELD_strict_*: only faces whose exact value lies inside a group).
    groups_of: for a years task, the ordinal task whose groups its year distribution sums into.
    headline: the metric keys summaries show, first the one tables compare; headline_labels: their
    headings in the report (default: the task's name); metric_label: the first one's heading in tables
    that compare one metric per task (the ablation).
    column: the table's heading for the label (default: the name).
    source: where its labels come from, when only some datasets have them (shown in report headings).
    """

    name: str
    labels: tuple[str, ...] = ()
    kind: str = "classes"
    field: str = ""
    record: str = "probs"
    exact_from: str | None = None
    groups_of: str | None = None
    headline: tuple[str, ...] = ()
    headline_labels: tuple[str, ...] = ()
    metric_label: str = ""
    column: str = ""
    source: str = ""

    def __post_init__(self):
        if self.kind not in KINDS or self.record not in RECORD_STYLES:
            raise ValueError(f"task {self.name}: kind {self.kind!r} / record {self.record!r} unknown")
        if (self.kind == "years") != (not self.labels):
            raise ValueError(f"task {self.name}: a years task has no labels, every other task has them")
        if (self.kind == "years") != (self.record == "value"):
            raise ValueError(f"task {self.name}: record 'value' is for years tasks, and only for them")
        # defaults in order: each may use the ones before it
        self._default("field", self.name)
        self._default("column", self.field)
        self._default("headline", (f"{self.name}_{'mae' if self.kind == 'years' else 'acc'}",))
        self._default("metric_label", self.headline[0])
        self._default("headline_labels", (self.name,) * len(self.headline))
        if len(self.headline_labels) != len(self.headline):
            raise ValueError(f"task {self.name}: one heading per headline metric")

    def _default(self, key: str, value) -> None:
        if not getattr(self, key):
            object.__setattr__(self, key, value)  # frozen dataclass: set once, while it is being built

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def categorical(self) -> bool:
        return bool(self.labels)

    def record_fields(self, value, probs, names) -> dict:
        """The record keys of one prediction: ``value`` the class index (or the number, for a years
        task), ``probs`` the class probabilities or None (a regression head), ``names`` the model's
        label names for this task."""
        if self.record == "value":
            return {self.field: round(float(value), 1)}
        index = int(value)
        out = {self.field: names[index]}
        if self.record == "index_probs":
            out[f"{self.field}_index"] = index
        if self.record == "confidence":
            out[f"{self.field}_confidence"] = round(float(probs[index]), 5) if probs is not None else None
        else:
            out[f"{self.field}_probs"] = [round(float(p), 5) for p in probs] if probs is not None else None
        return out

    def record_probs(self, fields: dict, names) -> list[float] | None:
        """The class probabilities a record holds for this task (the inverse of ``record_fields``; for
        "confidence" the rest of the mass is spread evenly over the other labels), or None."""
        if self.record == "value":
            return None
        if self.record != "confidence":
            return fields.get(f"{self.field}_probs")
        confidence, label = fields.get(f"{self.field}_confidence"), fields.get(self.field)
        if confidence is None or label is None:
            return None
        rest = (1 - confidence) / max(1, len(names) - 1)
        return [confidence if n == label else rest for n in names]


# The registry: every task the package knows. Order: the order of summaries' headline metrics.
# Adding a task: an entry here and a reader that fills its labels (docs/ARCHITECTURE.md, "A new task").
TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (
    TaskSpec("gender", GENDERS, record="confidence", metric_label="gender acc %"),
    TaskSpec("age", AGE_GROUPS, kind="ordinal", field="age_group", record="index_probs", exact_from="age_years",
             headline=("age_strict_exact", "age_strict_1off", "age_exact", "age_1off"),
             headline_labels=("age exact (strict)", "age 1-off (strict)", "age exact (nearest)", "age 1-off (nearest)"),
             metric_label="age exact % (strict)"),
    TaskSpec("age_years", kind="years", record="value", groups_of="age", headline_labels=("age MAE (years)",),
             metric_label="age MAE (years)"),
    TaskSpec("race", RACES, metric_label="race acc %", source="UTKFace"),
)}


def task_spec(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None


def age_group_strict(age: float) -> int:
    """Group index of an exact age if it lies inside one of the eight groups, else MISSING."""
    for i, (lo, hi) in enumerate(AGE_GROUP_RANGES):
        if lo <= age <= hi:
            return i
    return MISSING


def age_group_nearest(age: float) -> int:
    """Group index of an exact age, gap ages assigned to the nearer group (midpoint rule)."""
    age = round(age)
    for i, upper in enumerate(NEAREST_UPPER):
        if age <= upper:
            return i
    return len(AGE_GROUPS) - 1


# --- Adience clean-up -------------------------------------------------------------------------------
# Every age string that occurs in the five official fold files, mapped to a group index or dropped
# (MISSING). Each entry names the rule that applied, so the reader can report how many rows each rule
# touched. tests/test_labels.py fails on any string in the real fold files that is not listed here.
_ADIENCE_GROUP_STRINGS = ["(0, 2)", "(4, 6)", "(8, 12)", "(15, 20)", "(25, 32)", "(38, 43)", "(48, 53)",
                          "(60, 100)"]
ADIENCE_AGE_MAP: dict[str, tuple[int, str]] = {s: (i, "group") for i, s in enumerate(_ADIENCE_GROUP_STRINGS)}
ADIENCE_AGE_MAP.update({
    # Typos and off-by-a-bit ranges that overlap one group almost entirely.
    "(25, 23)": (4, "typo-range"),   # reversed/typo'd 25-32
    "(27, 32)": (4, "typo-range"),
    "(38, 42)": (5, "typo-range"),
    "(38, 48)": (5, "typo-range"),   # starts at the 38-43 group; as in MiVOLO's age_map
    # Spans three groups: no honest single label.
    "(8, 23)": (MISSING, "ambiguous-range"),
    "None": (MISSING, "no-label"),
    "": (MISSING, "no-label"),
})


def adience_age(value: str) -> tuple[int, str]:
    """Map an age string of an Adience fold file to (group index or MISSING, rule name).

    Exact ages inside a group go to that group ("exact-in-group"); exact ages between groups are
    dropped ("exact-gap"), as the Adience protocol scores only the eight groups. Raises ValueError
    for any other string so new kinds of noise are noticed, not silently mapped.
    """
    value = value.strip()
    if value in ADIENCE_AGE_MAP:
        return ADIENCE_AGE_MAP[value]
    if value.isdigit():
        group = age_group_strict(int(value))
        return (group, "exact-in-group") if group != MISSING else (MISSING, "exact-gap")
    raise ValueError(f"unknown Adience age label {value!r}")


ADIENCE_GENDER_MAP: dict[str, tuple[int, str]] = {
    "m": (0, "gender"),
    "f": (1, "gender"),
    "u": (MISSING, "gender-unknown"),
    "": (MISSING, "gender-unknown"),
}


def adience_gender(value: str) -> tuple[int, str]:
    value = value.strip()
    try:
        return ADIENCE_GENDER_MAP[value]
    except KeyError:
        raise ValueError(f"unknown Adience gender label {value!r}") from None
