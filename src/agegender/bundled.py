"""The files shipped inside the package (agegender/assets/): models by name, the example photo."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_MODEL = "default.onnx"
EXAMPLE_PHOTO = "astronaut.jpg"
BUNDLED_MODELS = {"default": DEFAULT_MODEL, "fast": "fast.onnx"}  # name -> file in agegender/assets


def asset_path(name: str) -> Path:
    return Path(str(resources.files("agegender") / "assets" / name))
