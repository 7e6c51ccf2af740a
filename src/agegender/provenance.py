"""Where a number came from: machine description, commit, and writing a dated section into a docs file.

Used by the benchmark scripts and by `agegender bench` / `agegender ablation`, so every table in docs/
carries its command, commit, date and machine."""

from __future__ import annotations

import os
import platform
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path


def machine_line() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        flags = Path("/proc/cpuinfo").read_text()
        isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
        extras = [name for flag, name in (("avx512_vnni", "VNNI"), ("avx_vnni", "AVX-VNNI"),
                                          ("avx512_bf16", "BF16"), ("amx_int8", "AMX")) if flag in flags.split()]
        isa += f" ({', '.join(extras)})" if extras else ""
    except OSError:
        isa = "?"
    return f"{model}, {os.cpu_count()} cores, {isa}, Python {platform.python_version()}"


def load_note() -> str:
    """The 1-minute load average as the table is written: this machine is shared, and a load near the core
    count means absolute timings ran beside other work (ratios measured in the same run stay comparable)."""
    try:
        return f", load average {os.getloadavg()[0]:.1f} when written"
    except OSError:
        return ""


def commit(short: bool = True) -> str:
    """The checkout's commit (with -dirty for uncommitted changes to tracked files), or "unknown"."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", *(["--short"] if short else []), "HEAD"], cwd=here,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_section(path: str, title: str, body: str, command: str) -> None:
    """Replace (or append) the section ``## title`` in the Markdown file ``path``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = p.read_text() if p.exists() else "# Benchmarks\n\nEvery table: the command, commit, date and machine.\n"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (f"## {title}\n\n`{command}`  \ncommit {commit()}, {stamp}, {machine_line()}{load_note()}\n\n"
               f"{body.strip()}\n\n")
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    p.write_text(text)


def publish(docs: str | None, title: str, body: str) -> None:
    """A benchmark's last step: print ``body``; with ``docs``, also write it as section ``title`` there,
    under the command line that produced it (``python benchmarks/SCRIPT ARGS``)."""
    print(body)
    if docs:
        script = Path(sys.argv[0])
        write_section(docs, title, body, shlex.join(["python", f"{script.parent.name}/{script.name}", *sys.argv[1:]]))
