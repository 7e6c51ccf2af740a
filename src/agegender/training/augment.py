"""Training augmentation on whole batches of uint8 faces (B, 3, S, S), all draws from one torch.Generator.

Two policies (``TrainConfig.augment_policy``):

- ``flip_shift``: the original one: a random horizontal flip and a shift of up to ``shift`` px.
- ``wild``: what a detector's crop of a real photo looks like next to UTKFace's aligned, frontal, evenly lit
  crops: framing (scale, aspect, shift, rotation around the detector's frame), colour (brightness,
  contrast, saturation, white balance, grayscale), optics (blur, down-then-up sampling of small faces,
  sensor noise), JPEG at low to high quality, and occlusion (random erasing).

Everything but the JPEG round trip is batched tensor work; JPEG goes through OpenCV one face at a time
(about 0.05 ms for a 64 px face). ``benchmarks/augment_speed.py`` measures the images/s of each policy
against a training step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from agegender.config import AUGMENT_POLICIES

POLICIES = AUGMENT_POLICIES  # named in config, so that a config is checked without importing training


@dataclass(frozen=True)
class WildParams:
    """Ranges of the ``wild`` policy; each transform fires with its probability ``p_*``."""

    scale: tuple[float, float] = (0.8, 1.2)  # > 1 zooms in (tighter crop), < 1 out (edges replicated)
    aspect: tuple[float, float] = (0.9, 1.1)
    shift: float = 0.08  # of the side, each axis
    rotate_deg: float = 15.0
    p_affine: float = 0.8
    brightness: float = 0.35  # multiply by 1 +- this
    contrast: float = 0.35
    saturation: float = 0.5
    white_balance: float = 0.1  # per-channel gain 1 +- this
    p_color: float = 0.8
    p_gray: float = 0.1
    p_blur: float = 0.2
    blur_sigma: tuple[float, float] = (0.4, 1.6)
    p_downup: float = 0.25
    downup: tuple[float, float] = (0.25, 0.7)  # side of the small copy, as a share of S
    p_noise: float = 0.2
    noise_std: tuple[float, float] = (2.0, 10.0)  # grey levels
    p_jpeg: float = 0.5
    jpeg_quality: tuple[int, int] = (20, 95)
    p_erase: float = 0.25
    erase_area: tuple[float, float] = (0.02, 0.15)


WILD = WildParams()


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _chance(n: int, p: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) < p


def flip(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = batch.shape[0]
    mirror = _chance(n, 0.5, gen)
    return torch.where(mirror.view(n, 1, 1, 1), batch.flip(3), batch)


def flip_shift(batch: torch.Tensor, shift: int, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and a random shift of up to ``shift`` px (edge-replicated), uint8 in/out."""
    batch = flip(batch, gen)
    n = batch.shape[0]
    if shift <= 0:
        return batch
    size = batch.shape[-1]
    padded = F.pad(batch.float(), (shift,) * 4, mode="replicate").to(torch.uint8)
    offsets = torch.randint(0, 2 * shift + 1, (n, 2), generator=gen).tolist()
    return torch.stack([padded[i, :, dy:dy + size, dx:dx + size] for i, (dy, dx) in enumerate(offsets)])


def affine(x: torch.Tensor, gen: torch.Generator, p: WildParams = WILD) -> torch.Tensor:
    """Scale, aspect, rotation and shift per face (float (B, 3, S, S)); borders replicated."""
    n = x.shape[0]
    on = _chance(n, p.p_affine, gen)
    scale = torch.where(on, _uniform(n, *p.scale, gen), torch.ones(n))
    aspect = torch.where(on, _uniform(n, *p.aspect, gen), torch.ones(n)).sqrt()
    angle = torch.where(on, _uniform(n, -p.rotate_deg, p.rotate_deg, gen), torch.zeros(n)) * math.pi / 180
    tx = torch.where(on, _uniform(n, -p.shift, p.shift, gen), torch.zeros(n)) * 2  # grid units: side = 2
    ty = torch.where(on, _uniform(n, -p.shift, p.shift, gen), torch.zeros(n)) * 2
    # The grid maps output to input coordinates: zooming in by s samples a region 1/s as large.
    sx, sy = 1 / (scale * aspect), aspect / scale
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos * sx, -sin * sy, tx], 1), torch.stack([sin * sx, cos * sy, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color(x: torch.Tensor, gen: torch.Generator, p: WildParams = WILD) -> torch.Tensor:
    n = x.shape[0]
    on = _chance(n, p.p_color, gen).view(n, 1, 1, 1)
    bright = _uniform(n, 1 - p.brightness, 1 + p.brightness, gen).view(n, 1, 1, 1)
    contrast = _uniform(n, 1 - p.contrast, 1 + p.contrast, gen).view(n, 1, 1, 1)
    sat = _uniform(n, 1 - p.saturation, 1 + p.saturation, gen).view(n, 1, 1, 1)
    gains = _uniform(n * 3, 1 - p.white_balance, 1 + p.white_balance, gen).view(n, 3, 1, 1)
    y = x * bright * gains
    gray = (0.299 * y[:, 0:1] + 0.587 * y[:, 1:2] + 0.114 * y[:, 2:3])
    y = gray + (y - gray) * sat
    mean = gray.mean(dim=(2, 3), keepdim=True)
    y = mean + (y - mean) * contrast
    y = torch.where(on, y, x)
    to_gray = _chance(n, p.p_gray, gen).view(n, 1, 1, 1)
    g = (0.299 * y[:, 0:1] + 0.587 * y[:, 1:2] + 0.114 * y[:, 2:3]).expand_as(y)
    return torch.where(to_gray, g, y).clamp(0, 255)


def blur(x: torch.Tensor, gen: torch.Generator, p: WildParams = WILD) -> torch.Tensor:
    """Gaussian blur with a sigma per face (a grouped conv: one 7x7 kernel per face and channel)."""
    n, c = x.shape[:2]
    on = _chance(n, p.p_blur, gen)
    if not bool(on.any()):
        return x
    sigma = _uniform(n, *p.blur_sigma, gen)
    r = torch.arange(-3, 4, dtype=torch.float32)
    k1 = torch.exp(-(r[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    k1 = k1 / k1.sum(1, keepdim=True)  # (B, 7)
    k2 = (k1[:, :, None] * k1[:, None, :]).repeat_interleave(c, 0)[:, None]  # (B*C, 1, 7, 7)
    sel = on.nonzero().flatten()
    xs = x[sel]
    ks = k2.view(n, c, 1, 7, 7)[sel].reshape(-1, 1, 7, 7)
    out = F.conv2d(F.pad(xs.reshape(1, -1, *x.shape[2:]), (3,) * 4, mode="replicate"), ks, groups=ks.shape[0])
    x = x.clone()
    x[sel] = out.view_as(xs)
    return x


def down_up(x: torch.Tensor, gen: torch.Generator, p: WildParams = WILD) -> torch.Tensor:
    """A small face: shrunk to a random side (area average), then enlarged back (bilinear)."""
    n, _, s, _ = x.shape
    on = _chance(n, p.p_downup, gen)
    sides = (_uniform(n, *p.downup, gen) * s).round().clamp(min=8).int().tolist()
    x = x.clone()
    for i in on.nonzero().flatten().tolist():
        small = F.interpolate(x[i:i + 1], size=(sides[i], sides[i]), mode="area")
        x[i:i + 1] = F.interpolate(small, size=(s, s), mode="bilinear", align_corners=False)
    return x


def noise(x: torch.Tensor, gen: torch.Generator, p: WildParams = WILD) -> torch.Tensor:
    n = x.shape[0]
    on = _chance(n, p.p_noise, gen).view(n, 1, 1, 1)
    std = _uniform(n, *p.noise_std, gen).view(n, 1, 1, 1)
    return torch.where(on, x + torch.randn(x.shape, generator=gen) * std, x).clamp(0, 255)


def jpeg(x: torch.Tensor, gen: torch.Generator, p: WildParams = WILD) -> torch.Tensor:
    """A JPEG round trip at a random quality (OpenCV, per face), for the faces drawn."""
    import cv2

    n = x.shape[0]
    on = _chance(n, p.p_jpeg, gen)
    quality = torch.randint(p.jpeg_quality[0], p.jpeg_quality[1] + 1, (n,), generator=gen).tolist()
    idx = on.nonzero().flatten().tolist()
    if not idx:
        return x
    x = x.clone()
    faces = x[idx].round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (k, S, S, 3) RGB
    for j, i in enumerate(idx):
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(faces[j]), [cv2.IMWRITE_JPEG_QUALITY, quality[i]])
        if not ok:
            raise RuntimeError("OpenCV could not JPEG-encode a training face")
        dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        x[i] = torch.from_numpy(dec).permute(2, 0, 1).float()
    return x


def erase(x: torch.Tensor, gen: torch.Generator, p: WildParams = WILD) -> torch.Tensor:
    """Random erasing (Zhong et al. 2020): a rectangle of the face replaced by noise."""
    n, _, s, _ = x.shape
    on = _chance(n, p.p_erase, gen)
    area = _uniform(n, *p.erase_area, gen) * s * s
    ratio = torch.exp(_uniform(n, math.log(0.5), math.log(2.0), gen))
    h = (area * ratio).sqrt().round().clamp(1, s - 1).int()
    w = (area / ratio).sqrt().round().clamp(1, s - 1).int()
    y0 = (torch.rand(n, generator=gen) * (s - h + 1).float()).int()
    x0 = (torch.rand(n, generator=gen) * (s - w + 1).float()).int()
    x = x.clone()
    for i in on.nonzero().flatten().tolist():
        hh, ww, yy, xx = int(h[i]), int(w[i]), int(y0[i]), int(x0[i])
        x[i, :, yy:yy + hh, xx:xx + ww] = torch.rand((3, hh, ww), generator=gen) * 255
    return x


def wild(batch: torch.Tensor, gen: torch.Generator, p: WildParams = WILD) -> torch.Tensor:
    """The ``wild`` policy on a uint8 batch (B, 3, S, S); returns float32 in 0..255."""
    x = flip(batch, gen).float()
    x = affine(x, gen, p)
    x = color(x, gen, p)
    x = blur(x, gen, p)
    x = down_up(x, gen, p)
    x = noise(x, gen, p)
    x = jpeg(x, gen, p)
    return erase(x, gen, p)


def augment_batch(batch: torch.Tensor, policy: str, shift: int, gen: torch.Generator) -> torch.Tensor:
    """One training batch (uint8 (B, 3, S, S)) through ``policy``; float32 out."""
    if policy == "flip_shift":
        return flip_shift(batch, shift, gen).float()
    if policy == "wild":
        return wild(batch, gen)
    raise ValueError(f"unknown augmentation policy {policy!r}; known: {', '.join(POLICIES)}")
