"""Formatting of prediction records for the terminal (table) and for programs (json / jsonl)."""

from __future__ import annotations

import json
from typing import TextIO

from agegender.inference.predict import FaceResult

COLUMNS = ("path", "face", "box", "age_group", "p(age)", "gender", "p(gender)", "age_years")


def printable(text: str) -> str:
    """``text`` safe for a terminal or a UTF-8 stream: bytes of a non-UTF-8 file name (held as surrogate
    escapes) as ``\\xNN`` and control characters (newline, escape sequences...) as Python escapes, so a
    hostile file name can neither stop the output nor drive the terminal."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if "\udc80" <= ch <= "\udcff":
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif not ch.isprintable():
            out.append(repr(ch)[1:-1] if ch != "\\" else ch)
        else:
            out.append(ch)
    return "".join(out)


def write_jsonl(result: FaceResult, stream: TextIO) -> None:
    stream.write(json.dumps(result.to_dict()) + "\n")


def table_row(r: FaceResult, path_width: int = 40, years: bool = False, tasks: tuple[str, ...] = ()) -> str:
    """One face as a table line; ``years``: the model predicts age in years (an age_years column);
    ``tasks``: its further categorical tasks (predict.extra_tasks), a label and probability column each."""
    path = printable(r.path)
    path = path if len(path) <= path_width else "..." + path[-(path_width - 3):]
    if r.error:
        return f"{path:<{path_width}}  error: {printable(r.error)}"
    box = "-" if r.box is None else "{:.0f},{:.0f},{:.0f},{:.0f}".format(*r.box)
    p_age = "-" if r.age_group_probs is None else f"{r.age_group_probs[r.age_group_index]:.2f}"
    p_gender = "-" if r.gender_confidence is None else f"{r.gender_confidence:.2f}"
    line = (f"{path:<{path_width}}  {r.face:>4}  {box:<19}  {r.age_group or '-':>9}  {p_age:>6}  "
            f"{r.gender or '-':>6}  {p_gender:>9}")
    if years:
        line += f"  {'-' if r.age_years is None else format(r.age_years, '.0f'):>9}"
    for task in tasks:
        extra = r.tasks or {}
        label, probs = extra.get(task), extra.get(f"{task}_probs")
        p = "-" if not probs or label is None else f"{max(probs):.2f}"
        line += f"  {label or '-':>{_width(task)}}  {p:>{len(task) + 3}}"
    return line


def _width(task: str) -> int:
    return max(len(task), 8)


def table_header(path_width: int = 40, years: bool = False, tasks: tuple[str, ...] = ()) -> str:
    line = (f"{'path':<{path_width}}  {'face':>4}  {'box (x,y,w,h)':<19}  {'age_group':>9}  {'p(age)':>6}  "
            f"{'gender':>6}  {'p(gender)':>9}")
    line += f"  {'age_years':>9}" if years else ""
    for task in tasks:
        line += f"  {task:>{_width(task)}}  {f'p({task})':>{len(task) + 3}}"
    return line
