"""Held-out CelebA people for fine-tuning a model that has already seen ``celeba_gender``.

    python benchmarks/celeba_holdout.py --data ../shared/data --out ~/agegender-runs/celeba-holdout

The bundled default trained on all of ``celeba_gender``; ``celeba_gender_more`` shares its people-id space.
This writes two CSVs (agegender's ``csv`` dataset: path, gender, subject_id) splitting
``celeba_gender_more`` by person: ``val.csv`` holds every crop of one person in five among those who are
*not* in ``celeba_gender`` (people the default never saw; chosen by a hash of the id, so the split is
fixed), ``train.csv`` everyone else's. Train with ``--extra csv:OUT/train.csv`` and score on ``val.csv``.
Nothing is copied: the CSVs name the files in place.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
from pathlib import Path


def held_out(identity: str, parts: int = 5) -> bool:
    return int(hashlib.sha1(identity.encode()).hexdigest(), 16) % parts == 0


def ids(folder: Path) -> dict[str, str]:
    with open(folder / "identities.csv", newline="", encoding="utf-8") as f:
        return {row["path"]: row["celeba_identity"] for row in csv.DictReader(f)}


def split(data: Path) -> dict[str, list[dict]]:
    """``celeba_gender_more`` by person: {"train": rows, "val": rows}, each row path, gender, subject_id."""
    seen = set(ids(data / "celeba_gender").values())
    more = data / "celeba_gender_more"
    rows = {"train": [], "val": []}
    for rel, person in sorted(ids(more).items()):
        part = "val" if person not in seen and held_out(person) else "train"
        rows[part].append({"path": str(more / rel), "gender": rel.split("/")[0], "subject_id": f"celeba:{person}"})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    for part, items in split(Path(args.data).resolve()).items():
        with open(out / f"{part}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=["path", "gender", "subject_id"])
            w.writeheader()
            w.writerows(items)
        people = len({r["subject_id"] for r in items})
        print(f"{out / f'{part}.csv'}: {len(items)} crops, {people} people")


if __name__ == "__main__":
    main()
