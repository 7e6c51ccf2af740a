"""What every command group shares."""

from __future__ import annotations

import argparse


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a usage error otherwise, not a traceback later)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value
