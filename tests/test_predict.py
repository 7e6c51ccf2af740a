import io
import json
import struct
import zlib

import numpy as np
import pytest
from fixtures import face_image, flip_bits
from PIL import Image

from agegender import FaceResult, Predictor
from agegender.cli import main
from agegender.preprocess import ImageError, load_image, load_image_reduced

FIELDS = {"path", "face", "box", "det_score", "age_group", "age_group_index", "age_group_probs", "gender",
          "gender_confidence", "yaw"}


def _png_header_only(path, width, height):
    """A PNG whose header claims width x height (a decompression bomb's calling card)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


@pytest.fixture
def inputs(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    face = face_image(0, 100)
    face.save(d / "a_rgb.jpg")
    face.convert("L").save(d / "b_gray.png")
    face.convert("RGBA").save(d / "c_rgba.png")
    face.convert("CMYK").save(d / "d_cmyk.jpg")
    face.convert("P").save(d / "e_palette.bmp")
    face.save(d / "f.webp")
    Image.fromarray(np.asarray(face.convert("L"), dtype=np.uint16) * 257).save(d / "g_16bit.png")
    (d / "h_zero.jpg").write_bytes(b"")
    (d / "i_text.png").write_text("not an image")
    (d / "j_truncated.jpg").write_bytes((d / "a_rgb.jpg").read_bytes()[:300])
    _png_header_only(d / "k_bomb.png", 30000, 30000)
    return d


def test_bad_inputs_raise_clear_errors(inputs):
    for name, message in [("h_zero.jpg", "cannot read image"), ("i_text.png", "cannot read image"),
                          ("j_truncated.jpg", "cannot read image"), ("k_bomb.png", "decompression bomb"),
                          ("missing.jpg", "no such file")]:
        with pytest.raises(ImageError, match=message) as info:
            load_image(inputs / name)
        assert name in str(info.value)


def test_every_mode_becomes_rgb(inputs):
    for name in ("a_rgb.jpg", "b_gray.png", "c_rgba.png", "d_cmyk.jpg", "e_palette.bmp", "f.webp", "g_16bit.png"):
        img = load_image(inputs / name)
        assert img.shape == (100, 100, 3) and img.dtype == np.uint8, name
    gray = load_image(inputs / "b_gray.png")[..., 0].astype(int)
    assert np.abs(load_image(inputs / "g_16bit.png")[..., 0].astype(int) - gray).max() <= 1


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    im.save(tmp_path / "rot.jpg", exif=exif)
    assert load_image(tmp_path / "rot.jpg").shape == (40, 20, 3)


def test_plain_jpegs_take_the_fast_path_with_the_same_pixels(tmp_path, monkeypatch):
    import simplejpeg

    calls = []
    decode = simplejpeg.decode_jpeg
    monkeypatch.setattr(simplejpeg, "decode_jpeg", lambda *a, **k: calls.append(1) or decode(*a, **k))
    face = face_image(3, 120)
    face.save(tmp_path / "rgb.jpg", quality=90)
    face.convert("L").save(tmp_path / "grey.jpg")
    face.save(tmp_path / "prog.jpg", progressive=True, subsampling="4:4:4")
    (tmp_path / "tail.jpg").write_bytes((tmp_path / "rgb.jpg").read_bytes() + b"camera data")
    for name in ("rgb.jpg", "grey.jpg", "prog.jpg", "tail.jpg"):
        calls.clear()
        with Image.open(tmp_path / name) as im:
            want = np.asarray(im.convert("RGB"))
        got = load_image(tmp_path / name)
        assert got.shape == (120, 120, 3) and got.dtype == np.uint8, name
        assert np.array_equal(got, want), name  # same libjpeg-turbo pixels on either path
        assert calls, name


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_gives_pil_pixels_at_full_and_reduced_size(orientation):
    from PIL import ImageOps

    rng = np.random.default_rng(orientation)
    pixels = np.asarray(face_image(orientation, 120).resize((2700, 1500)), dtype=np.int16)
    pixels = (pixels + rng.integers(-20, 20, pixels.shape)).clip(0, 255).astype(np.uint8)
    pixels[:300, :500] = (250, 30, 30)  # a corner marks which way the picture is turned
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90, exif=exif)
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as im:
        full = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (1350, 750))  # PIL's own 1/2-scale decode
        half = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert np.array_equal(load_image("turned.jpg", data=data), full)
    got, scale = load_image_reduced("turned.jpg", data=data, long_side=1280)
    assert got.shape == half.shape and scale == (0.5, 0.5)
    assert np.array_equal(got, half)
    # not reduced where the long side would fall under long_side, nor for other formats
    assert load_image_reduced("turned.jpg", data=data, long_side=1400)[1] == (1.0, 1.0)
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, "PNG")
    assert load_image_reduced("big.png", data=png.getvalue(), long_side=640)[1] == (1.0, 1.0)


def test_a_large_photo_is_decoded_reduced_and_boxes_come_in_its_full_pixels(tmp_path, monkeypatch):
    """A 2800x2100 photo: the detector sees a 1/2-scale decode, boxes and outputs are those of the full
    decode; a face too small in the reduced picture is cropped from a full decode instead."""
    from agegender.inference import predict as predict_module
    from agegender.inference.predict import EXAMPLE_PHOTO, asset_path

    head = Image.open(asset_path(EXAMPLE_PHOTO)).convert("RGB").crop((120, 20, 340, 240))
    predictor = Predictor()
    for side, refetch in ((700, False), (150, True)):
        photo = Image.new("RGB", (2800, 2100), (90, 120, 150))
        photo.paste(head.resize((side, side), Image.Resampling.BICUBIC), (1500, 600))
        path = tmp_path / f"big_{side}.jpg"
        photo.save(path, quality=92)
        full = predictor.predict(load_image(path))  # an array: never reduced
        calls = []
        real = predict_module.load_image

        def counted(*a, calls=calls, real=real, **k):
            calls.append(a)
            return real(*a, **k)
        monkeypatch.setattr(predict_module, "load_image", counted)
        reduced = predictor.predict(path)
        monkeypatch.setattr(predict_module, "load_image", real)
        assert len(full) == len(reduced) == 1, side
        assert bool(calls) == refetch, side
        (a,), (b,) = full, reduced
        assert np.allclose(a.box, b.box, atol=0.02 * side), (a.box, b.box)
        x, y, w, h = a.box  # inside the pasted head, in the full photo's pixels
        assert x >= 1500 and x + w <= 1500 + side and y >= 600 and y + h <= 600 + side and w > 0.3 * side
        assert a.gender == b.gender
        assert np.abs(np.array(a.age_group_probs) - np.array(b.age_group_probs)).max() < 0.15


def test_damaged_jpegs_are_accepted_or_refused_exactly_as_a_full_pil_decode_does(tmp_path):
    """Bit flips in the compressed data: the fast path must never hand back pixels that PIL's full
    decode refuses (OpenCV's decoder did, filling the damage with garbage), and where PIL accepts a
    file the pixels must be PIL's."""
    import random

    clean = tmp_path / "clean.jpg"
    face_image(4, 160).save(clean, quality=85)
    raw = clean.read_bytes()
    rng = random.Random(0)
    outcomes = {"accepted": 0, "refused": 0}
    for k in range(120):
        path = tmp_path / f"flip_{k}.jpg"
        path.write_bytes(flip_bits(raw, rng))
        try:
            with Image.open(path) as im:
                want = np.asarray(im.convert("RGB"))
        except (OSError, SyntaxError, ValueError):
            want = None
        if want is None:
            with pytest.raises(ImageError, match=f"flip_{k}.jpg"):
                load_image(path)
            outcomes["refused"] += 1
        else:
            assert np.array_equal(load_image(path), want), path.name
            outcomes["accepted"] += 1
    assert outcomes["refused"] >= 1 and outcomes["accepted"] >= 1, outcomes  # both kinds were exercised
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageError, match="truncated.jpg"):
        load_image(truncated)


def test_resize_face_makes_a_crop_like_the_utkface_64px_files(tmp_path):
    """UTKFace's 64x64 files are PIL's default resize of the 200x200 crop saved as a default-quality JPEG;
    a 200x200 crop through resize_face must give exactly the pixels of such a file."""
    from agegender.preprocess import resize_face

    crop = face_image(5, 200)
    # how the dataset's files were made: PIL's defaults, spelled out
    crop.resize((64, 64), Image.Resampling.BICUBIC).save(tmp_path / "utk64.jpg", quality=75)
    want = load_image(tmp_path / "utk64.jpg")
    got = resize_face(np.asarray(crop), 64)
    assert got.shape == (64, 64, 3) and got.dtype == np.uint8
    assert np.array_equal(got, want)
    assert np.array_equal(resize_face(want, 64), want)  # a 64x64 face is used as it is


def test_aligned_batch_continues_past_bad_files_and_keeps_the_contract(onnx_model, inputs, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    code = main(["predict", "--aligned", "--model", onnx_model[0], "--format", "jsonl", "--out", str(out),
                 "--no-progress", str(inputs)])
    assert code == 1  # some inputs failed
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 11  # one per file, in path order
    good = [r for r in records if "error" not in r]
    bad = [r for r in records if "error" in r]
    assert len(good) == 7 and len(bad) == 4
    for r in good:
        assert set(r) == FIELDS and r["box"] is None and r["yaw"] is None and r["face"] == 0
        assert len(r["age_group_probs"]) == 8 and abs(sum(r["age_group_probs"]) - 1) < 1e-3
        assert r["age_group"] in ("0-2", "4-6", "8-13", "15-20", "25-32", "38-43", "48-53", "60+")
        assert r["gender"] in ("male", "female") and 0.5 <= r["gender_confidence"] <= 1
    assert all(r["path"] and r["error"] for r in bad)
    assert "error: " in capsys.readouterr().err
    # --out never replaces an existing file unless asked.
    assert main(["predict", "--aligned", "--model", onnx_model[0], "--out", str(out), str(inputs / "a_rgb.jpg")]) == 2


def test_api_and_cli_agree(onnx_model, inputs, capsys):
    predictor = Predictor(onnx_model[0], aligned=True)
    api = predictor.predict(inputs / "a_rgb.jpg")
    assert len(api) == 1 and isinstance(api[0], FaceResult)
    assert main(["predict", "--aligned", "--model", onnx_model[0], "--format", "json", "--no-progress",
                 str(inputs / "a_rgb.jpg")]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli == [api[0].to_dict()]


def test_checkpoint_folder_and_onnx_give_the_same_answer(onnx_model, inputs):
    onnx_pred = Predictor(onnx_model[0], aligned=True).predict(inputs / "a_rgb.jpg")[0]
    torch_pred = Predictor(onnx_model[1], aligned=True).predict(inputs / "a_rgb.jpg")[0]
    assert onnx_pred.age_group == torch_pred.age_group and onnx_pred.gender == torch_pred.gender
    assert np.allclose(onnx_pred.age_group_probs, torch_pred.age_group_probs, atol=1e-3)


def test_predict_arrays(onnx_model):
    predictor = Predictor(onnx_model[0], aligned=True)
    faces = np.stack([np.asarray(face_image(i, 64)) for i in range(3)])
    assert [r.face for r in predictor.predict_faces(faces)] == [0, 1, 2]
    with pytest.raises(ImageError, match="expected an RGB"):
        predictor.predict(np.zeros((4, 4), np.float32))


def test_mirror_averages_a_face_and_its_mirror_image(onnx_model, capsys, tmp_path):
    faces = np.stack([np.asarray(face_image(i, 64)) for i in range(3)])
    mirrored = np.ascontiguousarray(faces[:, :, ::-1])
    plain = Predictor(onnx_model[0], aligned=True, mirror=False)
    a, b = plain.predict_faces(faces), plain.predict_faces(mirrored)
    assert any(not np.allclose(x.age_group_probs, y.age_group_probs, atol=1e-4) for x, y in zip(a, b, strict=True))
    both = Predictor(onnx_model[0], aligned=True, mirror=True)
    for x, y, m, m_of_mirror in zip(a, b, both.predict_faces(faces), both.predict_faces(mirrored), strict=True):
        # both views run in one batch of 2N: the same numbers as two separate runs
        assert np.allclose(m.age_group_probs, (np.array(x.age_group_probs) + y.age_group_probs) / 2, atol=2e-5)
        assert np.allclose(m.age_group_probs, m_of_mirror.age_group_probs, atol=2e-5)
        assert sum(m.age_group_probs) == pytest.approx(1, abs=1e-4)
        assert m.age_group_index == int(np.argmax(m.age_group_probs)) and m.gender == m_of_mirror.gender
    Image.fromarray(faces[0]).save(tmp_path / "f.png")
    # mirroring is the default of the API and the CLI; --no-mirror runs each face once
    assert Predictor(onnx_model[0], aligned=True).mirror is True
    for flags, want in (([], both), (["--mirror"], both), (["--no-mirror"], plain)):
        assert main(["predict", "--aligned", *flags, "--model", onnx_model[0], "--format", "jsonl", "--no-progress",
                     str(tmp_path / "f.png")]) == 0
        cli = json.loads(capsys.readouterr().out)
        assert cli["age_group_probs"] == pytest.approx(want.predict_faces(faces[:1])[0].age_group_probs, abs=1e-5)
    assert main(["predict", "--aligned", "--mirror", "--model", onnx_model[0], "--format", "jsonl", "--no-progress",
                 str(tmp_path / "f.png")]) == 0
    assert json.loads(capsys.readouterr().out)["age_group_probs"] != pytest.approx(
        plain.predict_faces(faces[:1])[0].age_group_probs, abs=1e-5)


def test_mirror_merge_averages_regressed_values_and_keeps_them_decodable():
    from agegender.decode import decode_task, merge_mirrored

    merged = merge_mirrored({"age": np.array([2.2, 6.9]), "age_years": np.array([30.0, 8.0])},
                            {"age": np.array([3.0, 7.5]), "age_years": np.array([34.0, 9.0])})
    assert np.allclose(merged["age"], [2.6, 7.2]) and np.allclose(merged["age_years"], [32.0, 8.5])
    assert decode_task("age", merged["age"])[0].tolist() == [3, 7]


def test_predictor_takes_a_detector_object_and_levels_its_faces(onnx_model, monkeypatch):
    from agegender.inference import detect, framing

    picture = np.asarray(face_image(0, 300))
    seen = []

    class Fixed:
        name = "blazeface"

        def detect(self, image):
            seen.append(image.shape)
            # eyes 60 px apart, the person's left one 30 px lower: a face tilted about 27 degrees
            points = ((120.0, 120.0), (180.0, 150.0), (150.0, 160.0), (140.0, 190.0), (90.0, 130.0), (210.0, 170.0))
            return [detect.Detection((90.0, 90.0, 140.0, 140.0), 0.9, points)]

    rolls = []
    real_roll = framing.face_roll
    monkeypatch.setattr(framing, "face_roll", lambda d, b: rolls.append(real_roll(d, b)) or rolls[-1])
    (face,) = Predictor(onnx_model[0], detector=Fixed()).predict(picture)
    assert seen == [picture.shape] and face.box == [90.0, 90.0, 140.0, 140.0] and face.det_score == 0.9
    # the nose 25 px below the eyes' midpoint on an eye line 26.6 degrees off level: 11.2 px along it, eye
    # distance 67.1 px, so the head is turned atan(11.2 / (0.5 * 67.1)) = 18.4 degrees
    assert face.yaw == pytest.approx(np.degrees(np.arctan2(25 * np.sin(np.arctan2(30, 60)), 0.5 * np.hypot(60, 30))),
                                     abs=0.05)
    cal = framing.LANDMARK_CALIBRATION["blazeface"]
    assert rolls and rolls[0] == pytest.approx(np.degrees(np.arctan2(30, 60)) - cal.roll - cal.dead_zone, abs=0.01)
