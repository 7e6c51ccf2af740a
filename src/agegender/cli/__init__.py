"""Command line: the only place that parses arguments. Heavy imports happen inside each command."""

# one module per command group: training (train, cv, ablation, report, bench), fitting (fit-years), predicting (predict,
# predict-ray, serve, demo), exporting (export); this module builds the parser from them and runs main

from __future__ import annotations

import argparse
import os
import shlex
import sys

from agegender.cli import exporting, fitting, predicting, training
from agegender.cli.predicting import _count_inputs_into  # noqa: F401 (used by the tests)
from agegender.cli.training import _train_config  # noqa: F401 (used by the tests)

# optional dependencies a command may import, and the extra (pyproject.toml) that installs each
EXTRA_OF_MODULE = {"torch": "train", "safetensors": "train", "onnx": "train", "matplotlib": "train",
                   "fastapi": "serve", "uvicorn": "serve", "multipart": "serve", "ray": "ray"}


def build_parser() -> argparse.ArgumentParser:
    from agegender import __version__

    parser = argparse.ArgumentParser(prog="agegender", description=__doc__)
    parser.add_argument("--version", action="version", version=f"agegender {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    for group in (training, fitting, predicting, exporting):
        group.add_commands(sub)
    return parser


def _without_only_folds(argv: list[str]) -> list[str]:
    """The command as recorded: a run's results.json (and the report) name the command for the whole run,
    so `--only-folds`, which only says which process trains which folds, is left out."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--only-folds":
            skip = True
        elif not a.startswith("--only-folds="):
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest:
        # `predict a.jpg --format jsonl b.jpg`: paths after an option are paths too, in the order given
        if getattr(args, "paths", None) is not None and not any(a.startswith("-") for a in rest):
            args.paths += rest
        else:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.command_line = "agegender " + shlex.join(_without_only_folds(argv))  # recorded in results and docs
    from agegender.console import show_messages

    show_messages()
    try:
        return args.func(args)
    except BrokenPipeError:
        # the reader went away (`agegender predict ... | head`): nothing left to say to it, and no message
        # for the user, who asked for only the first lines; stdout to /dev/null so the exit flush is quiet
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except ModuleNotFoundError as err:
        extra = EXTRA_OF_MODULE.get((err.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"agegender {args.command}: error: needs the '{extra}' extra (no module {err.name!r}): "
              f"pip install \"agegender[{extra}]\" (from a checkout: pip install -e \".[{extra}]\")", file=sys.stderr)
        return 2
    except (FileNotFoundError, FileExistsError, ValueError, OSError) as err:
        print(f"agegender {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
