"""Decode-once image cache: every face of a dataset resized to the input size, as one uint8 memmap.

The cache lives under ``$AGEGENDER_CACHE`` (default ``~/.cache/agegender``), never beside the data
(which may be read-only). Its key covers the file list, sizes, mtimes, the input size and the
preprocessing version, so a changed dataset gets a new cache instead of stale pixels.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from agegender.console import progress_bar
from agegender.preprocess import load_face

PREPROCESS_VERSION = 3  # 2: resize_face became bicubic + JPEG q75 (was bilinear); 3: non-square crops padded square


def cache_dir() -> Path:
    return Path(os.environ.get("AGEGENDER_CACHE") or Path.home() / ".cache" / "agegender")


def cache_key(paths: list[str], size: int, tag: str) -> str:
    h = hashlib.sha1(f"{tag}|{size}|v{PREPROCESS_VERSION}".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"|{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def load_images(paths: list[str], size: int, tag: str = "images", workers: int | None = None,
                progress: bool = True) -> np.ndarray:
    """(N, size, size, 3) uint8 array of the faces at ``paths``, from the cache if it is there.

    Building decodes in a thread pool (PIL releases the GIL while decoding) and writes atomically.
    """
    folder = cache_dir()
    key = cache_key(paths, size, tag)
    data_file = folder / f"{tag}-{size}px-{key}.u8"
    shape = (len(paths), size, size, 3)
    if data_file.is_file() and data_file.stat().st_size == int(np.prod(shape)):
        return np.memmap(data_file, dtype=np.uint8, mode="r", shape=shape)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = data_file.with_suffix(f".tmp{os.getpid()}")
    out = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=shape)
    workers = workers or min(8, (os.cpu_count() or 1) * 2)
    bar = _progress(len(paths), f"caching {tag} at {size}px", progress)
    try:
        with ThreadPoolExecutor(workers) as pool:
            for i, face in enumerate(pool.map(lambda p: load_face(p, size), paths, chunksize=64)):
                out[i] = face
                bar.update(1)
        out.flush()
        del out
        os.replace(tmp, data_file)
    finally:
        bar.close()
        if tmp.exists():
            tmp.unlink()
    (folder / f"{tag}-{size}px-{key}.json").write_text(json.dumps({"n": len(paths), "size": size, "tag": tag}))
    return np.memmap(data_file, dtype=np.uint8, mode="r", shape=shape)


def _progress(total: int, desc: str, enabled: bool):
    return progress_bar(total, desc, enabled)
