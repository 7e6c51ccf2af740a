"""What library code says while it works: messages through the ``agegender`` logger (the CLI shows them on
stderr; a program using the package configures ``logging`` as it likes, and without that Python shows the
warnings only), and the one progress-bar factory."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("agegender")


class _Stderr(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when a message comes (not the stream at set-up time)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 (logging's own contract: report through handleError)
            self.handleError(record)


def show_messages() -> None:
    """The CLI's set-up: info and warnings of the package on stderr, as plain lines."""
    if not any(isinstance(h, _Stderr) for h in log.handlers):
        log.addHandler(_Stderr())
    log.setLevel(logging.INFO)
    log.propagate = False


def progress_bar(total: int | None, desc: str, enabled: bool | None = True, mininterval: float = 1.0, **kw):
    """A tqdm bar on stderr that leaves no line behind when it closes; ``enabled=None``: only when stderr
    is a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=None if enabled is None else not enabled, file=sys.stderr,
                leave=False, mininterval=mininterval, **kw)


def write_line(message: str) -> None:
    """A line on stderr that does not break a progress bar being drawn there."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)
