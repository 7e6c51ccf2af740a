"""Formatting of prediction records for the terminal (table) and for programs (json / jsonl)."""

from __future__ import annotations

import json
from typing import TextIO

from agegender.inference.predict import FaceResult
from agegender.labels import task_spec


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


ALWAYS_SHOWN = ("age", "gender")  # the table's columns for every model (a task it lacks shows "-")


def table_tasks(model_tasks) -> tuple[str, ...]:
    """The tasks the table shows a column (pair) for: age and gender, then the model's other tasks."""
    return ALWAYS_SHOWN + tuple(t for t in model_tasks if t not in ALWAYS_SHOWN)


def _columns(spec) -> list[tuple[str, int]]:
    """(heading, width) of a task's columns: the label (or value) and, for classes, its probability."""
    label = (spec.column, max(len(spec.column), *(len(n) for n in spec.labels)) if spec.labels else len(spec.column))
    return [label] if spec.kind == "years" else [label, (f"p({spec.name})", len(spec.name) + 3)]


def _cells(spec, d: dict) -> list[str]:
    value = d.get(spec.field)
    if spec.kind == "years":
        return ["-" if value is None else format(value, ".0f")]
    probs = spec.record_probs(d, spec.labels)
    if probs is None or value is None:
        return [value or "-", "-"]
    p = probs[spec.labels.index(value)] if value in spec.labels and len(probs) == spec.num_classes else max(probs)
    return [value, f"{p:.2f}"]


def table_row(r: FaceResult, path_width: int = 40, tasks: tuple[str, ...] = ALWAYS_SHOWN) -> str:
    """One face as a table line, a column (pair) per task of ``tasks`` (``table_tasks``), each read
    through the registry (labels.TaskSpec: the record keys, the probabilities)."""
    path = printable(r.path)
    path = path if len(path) <= path_width else "..." + path[-(path_width - 3):]
    if r.error:
        return f"{path:<{path_width}}  error: {printable(r.error)}"
    box = "-" if r.box is None else "{:.0f},{:.0f},{:.0f},{:.0f}".format(*r.box)
    line = f"{path:<{path_width}}  {r.face:>4}  {box:<19}"
    d = r.to_dict()
    for task in tasks:
        spec = task_spec(task)
        for (_, width), cell in zip(_columns(spec), _cells(spec, d), strict=True):
            line += f"  {cell:>{width}}"
    return line


def table_header(path_width: int = 40, tasks: tuple[str, ...] = ALWAYS_SHOWN) -> str:
    line = f"{'path':<{path_width}}  {'face':>4}  {'box (x,y,w,h)':<19}"
    for task in tasks:
        for heading, width in _columns(task_spec(task)):
            line += f"  {heading:>{width}}"
    return line
