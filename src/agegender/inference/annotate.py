"""Draw boxes and labels on a copy of an image (PIL only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def label_font(image_size: tuple[int, int]) -> ImageFont.FreeTypeFont:
    """A label font that scales with the picture: about 1/40 of its long side, at least 12 px (a fixed
    ~10 px bitmap font was unreadable on a 4000x3000 photo)."""
    return ImageFont.load_default(size=max(12, round(max(image_size) / 40)))


def draw_results(image: np.ndarray, results) -> Image.Image:
    im = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(im)
    width = max(2, round(max(im.size) / 300))
    font = label_font(im.size)
    for r in results:
        if r.box is None:
            continue
        x, y, w, h = r.box
        label = f"{r.gender or '?'} {r.age_group or '?'}"
        if r.age_years is not None:
            label += f" ({r.age_years:.0f} y)"
        color = (230, 60, 60) if r.gender == "female" else (60, 120, 230)
        draw.rectangle([x, y, x + w, y + h], outline=color, width=width)
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        pad = max(2, font.size // 6)
        th = bottom - top + 2 * pad
        tx, ty = x, y - th if y >= th else y + h  # above the box, or below it at the picture's top
        draw.rectangle([tx, ty, tx + right - left + 2 * pad, ty + th], fill=color)
        draw.text((tx + pad - left, ty + pad - top), label, fill=(255, 255, 255), font=font)
    return im


class Annotator:
    """Writes a copy of each image with boxes and labels under ``folder`` (mirroring the input folders),
    never onto an input file, and onto an existing file only with ``force`` (a rerun into the same folder
    must ask, since the folder may hold files of the user's own)."""

    def __init__(self, folder: str, inputs: list[str], force: bool = False):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.inputs = [Path(p).resolve() for p in inputs]
        self.force = force

    def check_free(self, dest: Path, path: str) -> None:
        """Raise unless ``dest`` may be written: never an input, an existing file only with ``force``."""
        if dest.resolve() == Path(path).resolve():
            raise ValueError(f"{path}: --annotate would overwrite this input; choose another folder")
        if dest.exists() and not self.force:
            raise ValueError(f"{path}: the annotated copy {dest} exists; pass --force to replace it")

    def video_path(self, video: str) -> Path:
        """Where the annotated copy of ``video`` goes (checked like an image's)."""
        dest = self.folder / (Path(video).stem + ".annotated.webm")  # VP8: plays in browsers
        self.check_free(dest, video)
        return dest

    def write(self, path: str, results) -> None:
        from agegender.preprocess import load_image

        src = Path(path).resolve()
        rel = next((src.relative_to(i) for i in self.inputs if i.is_dir() and src.is_relative_to(i)), Path(src.name))
        dest = self.folder / rel
        if src.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            # a.webp -> a.webp.jpg: the full name stays, so a.webp and a.jpg never land on one file
            dest = dest.with_name(dest.name + ".jpg")
        self.check_free(dest, path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        draw_results(load_image(src), results).save(dest)
