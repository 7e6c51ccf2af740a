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


@dataclass(frozen=True)
class TaskSpec:
    """One output of the network.

    ``labels`` names the classes of a categorical task; an empty tuple means a real-valued target
    (e.g. exact age in years) that is always regressed.
    """

    name: str
    labels: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def categorical(self) -> bool:
        return bool(self.labels)


TASKS: dict[str, TaskSpec] = {
    "age": TaskSpec("age", AGE_GROUPS),
    "gender": TaskSpec("gender", GENDERS),
    "race": TaskSpec("race", RACES),
    "age_years": TaskSpec("age_years"),
}


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
