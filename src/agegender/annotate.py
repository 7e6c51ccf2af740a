"""Draw boxes and labels on a copy of an image (PIL only)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def draw_results(image: np.ndarray, results) -> Image.Image:
    im = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(im)
    width = max(2, round(max(im.size) / 300))
    for r in results:
        if r.box is None:
            continue
        x, y, w, h = r.box
        label = f"{r.gender or '?'} {r.age_group or '?'}"
        color = (230, 60, 60) if r.gender == "female" else (60, 120, 230)
        draw.rectangle([x, y, x + w, y + h], outline=color, width=width)
        tx, ty = x, max(0, y - 12)
        draw.rectangle([tx, ty, tx + 7 * len(label), ty + 12], fill=color)
        draw.text((tx + 2, ty), label, fill=(255, 255, 255))
    return im
