"""Synthetic datasets laid out exactly like the real downloads (names, folders, file formats).

Images are small generated pictures; each class gets its own colour so tiny models can learn them.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ADIENCE_HEADER = ["user_id", "original_image", "face_id", "age", "gender", "x", "y", "dx", "dy", "tilt_ang",
                  "fiducial_yaw_angle", "fiducial_score"]


def face_image(seed: int, size: int = 64, tint: tuple[int, int, int] = (128, 128, 128)) -> Image.Image:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 60, (size, size, 3)) + np.array(tint)
    yy, xx = np.mgrid[:size, :size]
    blob = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / 3) ** 2
    a[blob] = (a[blob] * 0.6 + 80).astype(a.dtype)
    return Image.fromarray(a.clip(0, 255).astype(np.uint8))


def make_utkface(root: Path, n: int = 40, size: int = 64) -> Path:
    """``root/UTKFace/AGE_GENDER_RACE_DATETIME.jpg.chip.jpg`` plus the real data's quirks: a name without
    race, a malformed name, identical files with equal labels and with conflicting labels."""
    folder = root / "UTKFace"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ages = [1, 5, 10, 18, 28, 40, 50, 70, 3, 23, 35, 57]
    for i in range(n):
        age, gender, race = ages[i % len(ages)], i % 2, i % 5
        img = face_image(i, size, tint=(40 + 150 * gender, 60 + age * 2, 90))
        img.save(folder / f"{age}_{gender}_{race}_2017011{i:07d}{rng.integers(100, 999)}.jpg.chip.jpg", quality=92)
    face_image(900, size).save(folder / "39_1_20170116174525125.jpg.chip.jpg")  # race field missing
    face_image(901, size).save(folder / "notalabel.jpg.chip.jpg")  # malformed: reported and skipped
    same = face_image(902, size)
    same.save(folder / "30_0_0_20170101000000001.jpg.chip.jpg")  # identical, same labels: kept together
    same.save(folder / "30_0_0_20170101000000002.jpg.chip.jpg")
    clash = face_image(903, size)
    clash.save(folder / "25_1_0_20170101000000003.jpg.chip.jpg")  # identical, conflicting labels: dropped
    clash.save(folder / "35_1_0_20170101000000004.jpg.chip.jpg")
    return folder


# Every kind of label noise in the real fold files, cycled over the synthetic rows.
ADIENCE_AGES = ["(0, 2)", "(4, 6)", "(8, 12)", "(15, 20)", "(25, 32)", "(38, 43)", "(48, 53)", "(60, 100)",
                "None", "35", "13", "(25, 23)", "(27, 32)", "(38, 48)", "(38, 42)", "(8, 23)", "2", "22"]
ADIENCE_GENDERS = ["m", "f", "u", "", "f", "m"]


def make_adience(root: Path, users_per_fold: int = 2, faces_per_user: int = 9, layout: str = "aligned",
                 write_images: bool = True) -> Path:
    """Fold files (``root/Folds/original_txt_files/fold_K_data.txt``) and images at the paths they name."""
    prefix = {"aligned": "landmark_aligned_face", "faces": "coarse_tilt_aligned_face"}[layout]
    fold_dir = root / "Folds" / "original_txt_files"
    fold_dir.mkdir(parents=True, exist_ok=True)
    row = 0
    for fold in range(5):
        with open(fold_dir / f"fold_{fold}_data.txt", "w", newline="") as f:
            w = csv.writer(f, delimiter="\t", lineterminator="\n")
            w.writerow(ADIENCE_HEADER)
            for u in range(users_per_fold):
                user = f"{1000 + fold * 10 + u}@N0{fold}"
                for _ in range(faces_per_user):
                    image, face_id = f"{row:05d}_abc_o.jpg", str(row % 50)
                    w.writerow([user, image, face_id, ADIENCE_AGES[row % len(ADIENCE_AGES)],
                                ADIENCE_GENDERS[row % len(ADIENCE_GENDERS)], 0, 0, 100, 100, 0, 0, 50])
                    if write_images:
                        path = root / layout / user / f"{prefix}.{face_id}.{image}"
                        path.parent.mkdir(parents=True, exist_ok=True)
                        face_image(row, 80).save(path)
                    row += 1
    return root


def make_levi_lists(root: Path, test_fold: int = 0, image_root: Path | None = None) -> Path:
    """``root/test_fold_is_K/{age,gender}_{train,val,test}.txt``; images under ``image_root/aligned``."""
    folder = root / f"test_fold_is_{test_fold}"
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        for task, n_cls in (("age", 8), ("gender", 2)):
            with open(folder / f"{task}_{split}.txt", "w") as f:
                for i in range(6):
                    if task == "gender" and i == 5:
                        continue  # an image listed for age only
                    rel = f"{split}{i}@N0{test_fold}/landmark_aligned_face.{i}.{split}_{i}_o.jpg"
                    f.write(f"{rel} {i % n_cls}\n")
                    if image_root is not None and not (image_root / "aligned" / rel).exists():
                        (image_root / "aligned" / rel).parent.mkdir(parents=True, exist_ok=True)
                        face_image(i, 48).save(image_root / "aligned" / rel)
    return root


def make_csv(root: Path, n: int = 12) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "labels.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "age", "gender", "subject_id"])
        for i in range(n):
            name = f"img{i}.png"
            face_image(i).save(root / name)
            w.writerow([name, 5 + 6 * i, ["male", "female"][i % 2], f"s{i // 3}"])
    return path


def make_celeba_gender(root: Path, people: int = 10, faces_per_person: int = 3) -> Path:
    """``male/`` and ``female/`` crops named like the download (``063429.jpg.jpg``, about 83x107) plus
    ``identities.csv`` (path, celeba_identity); person ``p`` has ``faces_per_person`` crops."""
    rows = ["path,celeba_identity"]
    image_id = 1
    for person in range(people):
        gender = ("male", "female")[person % 2]
        (root / gender).mkdir(parents=True, exist_ok=True)
        for _ in range(faces_per_person):
            name = f"{image_id:06d}.jpg.jpg"
            face_image(image_id, 96, (150, 110, 100)).resize((83, 107)).save(root / gender / name, "JPEG")
            rows.append(f"{gender}/{name},{1000 + person}")
            image_id += 1
    (root / "identities.csv").write_text("\n".join(rows) + "\n")
    return root


def composed_photos(folder: Path, n: int = 36) -> list[Path]:
    """Photos that need the detector: the bundled portrait's face pasted at different places, sizes and
    angles into generated backgrounds, saved as jpg / png / webp."""
    from agegender.inference.predict import EXAMPLE_PHOTO, asset_path

    portrait = Image.open(asset_path(EXAMPLE_PHOTO)).convert("RGB")
    head = portrait.crop((120, 20, 340, 240))  # the face with some hair and shoulders around it
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        w, h = (640, 480) if i % 3 else (480, 640)
        ramp = np.linspace(0, 1, w)[None, :, None] * rng.integers(0, 255, 3)[None, None, :]
        bg = (rng.integers(40, 200, 3)[None, None, :] * 0.6 + ramp * 0.4).repeat(h, axis=0)
        photo = Image.fromarray((bg + rng.normal(0, 6, (h, w, 3))).clip(0, 255).astype(np.uint8))
        side = int(rng.integers(150, 300))
        face = head.resize((side, side), Image.Resampling.BICUBIC).rotate(float(rng.uniform(-12, 12)),
                                                                         resample=Image.Resampling.BICUBIC)
        photo.paste(face, (int(rng.integers(0, w - side)), int(rng.integers(0, h - side))))
        if i % 4 == 1:
            photo = photo.filter(ImageFilter.GaussianBlur(1.0))
        ext = (".jpg", ".png", ".webp")[i % 3]
        path = folder / f"photo_{i:02d}{ext}"
        photo.save(path, quality=int(rng.integers(50, 95))) if ext == ".jpg" else photo.save(path)
        paths.append(path)
    return paths


def flip_bits(raw: bytes, rng, flips: int = 3) -> bytes:
    """``raw`` with ``flips`` random bits flipped past its first third (the compressed data of a JPEG,
    beyond its headers) and its last two bytes (the end marker) left alone."""
    data = bytearray(raw)
    for _ in range(flips):
        i = rng.randrange(len(data) // 3, len(data) - 2)
        data[i] ^= 1 << rng.randrange(8)
    return bytes(data)


def _damaged_jpeg(raw: bytes) -> bytes:
    """The first of a fixed sequence of bit-flipped copies of ``raw`` that PIL's full decode refuses."""
    import io
    import random

    rng = random.Random(0)
    for _ in range(1000):
        data = flip_bits(raw, rng)
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
        except (OSError, SyntaxError, ValueError):
            return data
    raise AssertionError("no refused bit-flip found")


def hostile_corpus(folder: Path) -> dict[str, str]:
    """Files a user's folder may hold, good and bad: {file name: "ok" or the kind of failure expected}.

    Truncated, bit-flipped, zero-byte, non-image, a decompression bomb, CMYK / 16-bit / palette / alpha, the 8 EXIF
    orientations, animated GIF, multi-page TIFF, 1x1, a large photo, 50 faces in one picture, odd names."""
    import io
    import struct
    import zlib

    folder.mkdir(parents=True, exist_ok=True)
    face = face_image(3, 96)
    kinds: dict[str, str] = {}

    def save(name: str, kind: str, img: Image.Image | None = None, data: bytes | None = None, **kw) -> None:
        if data is None:
            buf = io.BytesIO()
            img.save(buf, **kw)
            data = buf.getvalue()
        (folder / name).write_bytes(data)
        kinds[name] = kind

    save("plain.jpg", "ok", face, format="JPEG")
    full = io.BytesIO()
    face.save(full, "JPEG")
    save("truncated.jpg", "bad", data=full.getvalue()[: len(full.getvalue()) // 3])
    save("bitflip.jpg", "bad", data=_damaged_jpeg(full.getvalue()))
    save("zero.jpg", "bad", data=b"")
    save("text.png", "bad", data=b"hello, I am not a picture\n" * 10)
    # a PNG header claiming 100000 x 100000 pixels: refused before any pixel is decoded
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    save("bomb.png", "bad", data=b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
         + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    save("cmyk.jpg", "ok", face.convert("CMYK"), format="JPEG")
    save("sixteen.png", "ok", Image.fromarray(np.asarray(face.convert("L")).astype(np.uint16) * 257), format="PNG")
    save("palette.png", "ok", face.convert("P"), format="PNG")
    save("alpha.png", "ok", face.convert("RGBA"), format="PNG")
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        save(f"exif_{o}.jpg", "ok", face, format="JPEG", exif=exif)
    save("animated.gif", "ok", face, format="GIF", save_all=True, append_images=[face_image(4, 96)])
    save("pages.tiff", "ok", face, format="TIFF", save_all=True, append_images=[face_image(5, 96)])
    save("one_pixel.png", "ok", Image.new("RGB", (1, 1), (90, 80, 70)), format="PNG")
    save("large.jpg", "ok", face.resize((4000, 3000)), format="JPEG", quality=70)
    grid = Image.new("RGB", (10 * 64, 5 * 64))
    for i in range(50):
        grid.paste(face_image(i, 64), ((i % 10) * 64, (i // 10) * 64))
    save("fifty.png", "ok", grid, format="PNG")
    for odd in ("with space.jpg", "ünïcødé.jpg", "-leading-dash.jpg", "UPPER.JPG", "semi;colon.jpg"):
        save(odd, "ok", face, format="JPEG")
    return kinds
