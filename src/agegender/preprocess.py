"""The one preprocessing definition: decode an image file, make it RGB uint8, resize a face to the
network's input. Training (through the cache), evaluation, export checks and prediction all call it.

Normalisation (mean/std) lives inside the network itself, so exported models take plain RGB 0..255.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Refuse decompression bombs before decoding: 30000x30000 would need 2.7 GB as RGB.
MAX_PIXELS = 80_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")  # GIF: its first frame
# How UTKFace's 64x64 training faces were made from the 200x200 crops, read off the files: PIL's default
# resize (bicubic, antialiased) and a JPEG save at PIL's default quality 75 (the quantisation tables match
# it exactly; 4:2:0). In a session-4 check of nine PIL / OpenCV filters on 150 utkface_200 crops, this pair
# came closest to the 64x64 files (mean abs difference 1.3 grey levels; PIL bilinear + q75: 2.6); its effect
# on predictions is in docs/BENCHMARKS.md, "Detect-then-crop vs aligned crops".
RESAMPLE = Image.Resampling.BICUBIC
JPEG_QUALITY = 75


class ImageError(ValueError):
    """An input image that cannot be used; the message names the file."""


def load_image(path: str | os.PathLike, data: bytes | None = None) -> np.ndarray:
    """Decode ``path`` (or the encoded file ``data``, named ``path`` in messages) to an RGB uint8 array
    (H, W, 3), EXIF orientation applied.

    Handles grayscale, palette, RGBA (composited on white), CMYK and 16-bit images.
    Raises ImageError with the path for unreadable, truncated or oversized files.
    """
    return _load(path, data, 0)[0]


def load_image_reduced(path: str | os.PathLike, data: bytes | None = None,
                       long_side: int = 1280) -> tuple[np.ndarray, tuple[float, float]]:
    """``load_image``, but a JPEG whose long side is at least 2 x ``long_side`` is decoded at 1/2, 1/4 or
    1/8 of its size (libjpeg's DCT scaling, in the decoder itself), the smallest of those whose long side
    is still at least ``long_side``: a 4000x3000 phone photo comes out 2000x1500, in 21.6 against 32.5 ms
    for the full decode (docs/BENCHMARKS.md, large photos). Returns the pixels and the
    (x, y) scale of the result against the full image (1.0, 1.0 when decoded at full size), so that
    coordinates found on it can be given in the full image's pixels. Other formats decode at full size.
    """
    return _load(path, data, long_side)


def _load(path, data, long_side: int) -> tuple[np.ndarray, tuple[float, float]]:
    try:
        if data is None and not stat.S_ISREG(os.stat(path).st_mode) and not os.path.isdir(path):
            # a FIFO, socket or device named like a photo would block the reader or never end
            raise ImageError(f"{path}: not a regular file (a pipe, socket or device), not read")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data) if data is not None else path) as im:
                w, h = im.width, im.height
                if w * h > MAX_PIXELS:
                    raise ImageError(f"{path}: image of {w}x{h} pixels is over the "
                                     f"{MAX_PIXELS:,}-pixel limit (possible decompression bomb)")
                k = _reduction(max(w, h), long_side) if im.format == "JPEG" else 1
                orientation = im.getexif().get(0x0112, 1)
                out = _decode_jpeg(path, im, data, k, orientation)
                if out is None:
                    # draft: a no-op except for JPEG; picks libjpeg's 1/k scale (w // k, h // k is met by
                    # exactly that power of two), or keeps full size for k = 1
                    im.draft("RGB", (max(1, w // k), max(1, h // k)))
                    ImageOps.exif_transpose(im, in_place=True)  # in place: no copy when there is nothing to turn
                    out = to_rgb(im)
                if orientation in (5, 6, 7, 8):  # turned a quarter: the full picture is h x w
                    w, h = h, w
                return out, (out.shape[1] / w, out.shape[0] / h)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(f"{path}: refused as a possible decompression bomb ({err})") from None
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image") from None
    except UnidentifiedImageError:  # PIL's message repeats the file name (or an in-memory buffer's repr)
        raise ImageError(f"{path}: cannot read image (not an image format this reader knows, or empty)") from None
    except (OSError, SyntaxError, ValueError) as err:
        # PIL reports truncated files as OSError.
        raise ImageError(f"{path}: cannot read image ({err})") from None


def _reduction(long: int, long_side: int) -> int:
    """The largest of 8, 4, 2 by which a ``long``-pixel side can be divided and stay at least ``long_side``
    (libjpeg rounds a scaled side up), else 1. Only powers of two: libjpeg's other scales (3/8, 5/8, ...)
    decoded a 12 MP photo no faster than in full, or slower (docs/BENCHMARKS.md, large photos)."""
    if long_side <= 0:
        return 1
    return next((k for k in (8, 4, 2) if -(-long // k) >= long_side), 1)


def _decode_jpeg(path: str | os.PathLike, im: Image.Image, raw: bytes | None = None, k: int = 1,
                 orientation: int = 1) -> np.ndarray | None:
    """A plain JPEG (RGB or grey, intact) through simplejpeg's strict decoder, at 1/``k`` of its size and
    turned as its EXIF ``orientation`` says, else None.

    Both decode with libjpeg-turbo's defaults (accurate DCT, fancy upsampling) and give the same pixels
    (bit for bit on UTKFace, utkface_200, CelebA and fairface files, and for each EXIF orientation and
    scale; tests/test_preprocess.py checks it on fixtures), but PIL's path costs copies more: 0.89 ms
    against 0.38 ms for a 320x320 photo here (OpenCV's imdecode: 0.58), and 162 against 51 ms for a
    12 MP photo stored turned (docs/BENCHMARKS.md, large photos). ``strict`` turns libjpeg's "corrupt data"
    warnings into errors, so a damaged file is never half-decoded here: it goes to PIL, whose full decode
    accepts or refuses it (OpenCV's decoder filled bit-flipped files with garbage that PIL refuses).
    Everything else (CMYK, other formats) goes to PIL too.
    """
    if im.format != "JPEG" or im.mode not in ("RGB", "L"):
        return None
    import simplejpeg

    data = raw if raw is not None else Path(path).read_bytes()
    want = (-(-im.height // k), -(-im.width // k))  # libjpeg's size at scale 1/k
    try:
        # the largest scale M/8 whose output is at least ``want`` is exactly 1/k
        img = simplejpeg.decode_jpeg(data, "RGB", strict=True, min_height=want[0], min_width=want[1])
    except ValueError:  # corrupt or unsupported: PIL decides, and names the fault
        return None
    if img.shape[:2] != want:
        return None
    turn = _ORIENTATION.get(orientation)
    return img if turn is None else np.ascontiguousarray(turn(img))


# EXIF orientation -> the array operation that shows the picture upright (PIL's ImageOps.exif_transpose),
# in OpenCV: a quarter turn of a 12 MP photo took 95 ms with numpy (rot90 + copy), 20 ms with cv2.rotate.
def _turn(code: int):
    def turn(a: np.ndarray) -> np.ndarray:
        import cv2

        return cv2.rotate(a, code)
    return turn


def _flip(code: int):
    def flip(a: np.ndarray) -> np.ndarray:
        import cv2

        return cv2.flip(a, code)
    return flip


def _transpose(a: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.transpose(a)


def _transverse(a: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.flip(cv2.transpose(a), -1)


_ORIENTATION = {
    2: _flip(1),
    3: _turn(1),  # cv2.ROTATE_180
    4: _flip(0),
    5: _transpose,
    6: _turn(0),  # cv2.ROTATE_90_CLOCKWISE
    7: _transverse,
    8: _turn(2),  # cv2.ROTATE_90_COUNTERCLOCKWISE
}


def to_rgb(im: Image.Image) -> np.ndarray:
    """Any PIL image mode -> RGB uint8 array."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        return np.repeat((a / top * 255.0).round().clip(0, 255).astype(np.uint8)[..., None], 3, axis=2)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        a = (a - a.min()) / max(a.max() - a.min(), 1e-12) * 255.0
        return np.repeat(a.round().astype(np.uint8)[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    return np.asarray(im if im.mode == "RGB" else im.convert("RGB"), dtype=np.uint8)


def resize_face(face: np.ndarray, size: int) -> np.ndarray:
    """A face crop (H, W, 3) uint8 -> (size, size, 3) uint8, the network's input.

    A crop of another size is made the way the training faces were: bicubic resize, then a JPEG round
    trip at quality 75. The JPEG step matters: the models learned on faces with its artefacts, and on
    held-out 200x200 UTKFace crops the fold models agreed with their own predictions on the 64x64 files
    for 91 % of the age groups with a plain bilinear resize and 98 % with this (594 faces, docs/BENCHMARKS.md). A
    crop already at ``size`` is used as it is.
    """
    if face.shape[0] == size and face.shape[1] == size:
        return np.ascontiguousarray(face)
    buf = io.BytesIO()
    Image.fromarray(face).resize((size, size), RESAMPLE).save(buf, "JPEG", quality=JPEG_QUALITY)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def square_face(face: np.ndarray) -> np.ndarray:
    """A non-square face crop padded to a square (mirrored edges on the short sides), so that resizing
    it to the network's square input keeps the face's proportions. CelebA's crops are about 78x106:
    squeezed to 64x64 they made every face 35 % wider than a detector's square crop of the same person."""
    h, w = face.shape[:2]
    if h == w:
        return face
    d = abs(h - w)
    pad = ((d // 2, d - d // 2), (0, 0), (0, 0)) if h < w else ((0, 0), (d // 2, d - d // 2), (0, 0))
    return np.pad(face, pad, mode="symmetric" if d // 2 <= min(h, w) else "edge")


def load_face(path: str | os.PathLike, size: int) -> np.ndarray:
    """An aligned face crop file -> network input (size, size, 3) uint8 (non-square crops padded square)."""
    return resize_face(square_face(load_image(path)), size)
