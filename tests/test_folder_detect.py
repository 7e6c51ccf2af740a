"""A folder of ordinary photos through the detect path, as users run it (`agegender predict FOLDER`).

The photos are built from the bundled public-domain portrait: its face pasted at different places, sizes
and angles into generated backgrounds, saved in several formats. Every one needs the detector.
"""

import json
import threading

import numpy as np
import pytest
from fixtures import composed_photos as _photos
from PIL import Image

from agegender import Predictor
from agegender.cli import main
from agegender.inference.predict import EXAMPLE_PHOTO, asset_path

N_PHOTOS = 36

@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos") / "in"
    _photos(folder)
    return folder


def test_folder_through_predict_cli_gives_a_face_for_every_photo_and_no_error(photo_folder, tmp_path, capsys):
    out = tmp_path / "faces.jsonl"
    assert main(["predict", str(photo_folder), "--format", "jsonl", "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    errors = [r for r in records if "error" in r]
    assert errors == []
    assert {r["path"] for r in records} == {str(p) for p in sorted(photo_folder.iterdir())}
    assert len({r["path"] for r in records}) == N_PHOTOS
    for r in records:
        assert r["box"] is not None and r["gender"] in ("male", "female") and r["age_group"]
    assert "0 inputs failed" in capsys.readouterr().err


def test_folder_predictions_equal_one_file_at_a_time(photo_folder):
    """The thread pool must not change an answer: the streamed folder equals a loop over the files."""
    predictor = Predictor()
    paths = sorted(photo_folder.iterdir())
    streamed = [r.to_dict() for r in predictor.predict_paths(paths, workers=4)]
    single = []
    for p in paths:
        for n, r in enumerate(predictor.predict(p)):
            r.face = n
            single.append(r.to_dict())
    assert [r["path"] for r in streamed] == [r["path"] for r in single]
    for a, b in zip(streamed, single, strict=True):
        assert a["box"] == b["box"] and a["age_group"] == b["age_group"] and a["gender"] == b["gender"]
        assert np.allclose(a["age_group_probs"], b["age_group_probs"], atol=1e-4)


def test_each_worker_thread_gets_its_own_detector(photo_folder):
    predictor = Predictor()
    seen = {}

    def grab():
        seen[threading.get_ident()] = predictor.detector

    threads = [threading.Thread(target=grab) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    instances = list(seen.values()) + [predictor.detector]
    assert len({id(d) for d in instances}) == len(instances)


@pytest.mark.parametrize("backend", ["haar", "blazeface_fast"])
def test_other_backends_survive_a_folder(photo_folder, backend):
    """haar crashed the process (segfault) when its cascade was shared by the pool's threads."""
    records = list(Predictor(detector=backend).predict_paths(sorted(photo_folder.iterdir()), workers=4))
    assert len({r.path for r in records}) == N_PHOTOS
    assert all(r.error is None or r.error.endswith("no face found") for r in records)


def test_a_detector_object_given_by_the_caller_is_never_called_from_two_threads_at_once(photo_folder):
    from agegender.inference.detect import create_detector

    inner = create_detector()
    active, most = [0], [0]
    lock = threading.Lock()

    class Counting:
        name = inner.name

        def detect(self, image):
            with lock:
                active[0] += 1
                most[0] = max(most[0], active[0])
            try:
                return inner.detect(image)
            finally:
                with lock:
                    active[0] -= 1

    records = list(Predictor(detector=Counting()).predict_paths(sorted(photo_folder.iterdir()), workers=4))
    assert most[0] == 1
    assert not [r for r in records if r.error]


@pytest.mark.parametrize(("margin", "side"), [(-0.15, 48), (-0.15, 64), (0.0, 64), (0.1, 100)])
def test_a_tight_face_crop_filling_the_picture_is_still_found(margin, side):
    """A photo that is itself a face crop, the face touching the borders (like UTKFace's 64 px files).
    The two crops inside the face box give no face in the first pass: the padded second try finds them."""
    from agegender.inference.detect import create_detector

    portrait = Image.open(asset_path(EXAMPLE_PHOTO)).convert("RGB")
    x, y, w, h = 174, 70, 105, 105  # the face box the default detector gives on the whole portrait
    m = int(margin * w)
    crop = portrait.crop((x - m, y - m, x + w + m, y + h + m))
    crop = np.asarray(crop.resize((side, side), Image.Resampling.BICUBIC))
    found = create_detector().detect(crop)
    assert len(found) == 1
    bx, by, bw, bh = found[0].box
    assert bw > side / 2 and bh > side / 2  # the face, not a speck


@pytest.mark.parametrize(("args", "message"), [
    (["--every", "0"], "--every"), (["--every", "-1"], "--every"), (["--batch-size", "0"], "--batch-size"),
    (["--max-frames", "0"], "--max-frames"),
])
def test_bad_numbers_are_usage_errors(args, message, capsys, photo_folder):
    with pytest.raises(SystemExit) as info:
        main(["predict", str(photo_folder), *args])
    assert info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize(("detector", "message"), [("nosuch", "unknown face detector"), ("yunet", "ONNX file")])
def test_bad_detector_is_one_clean_error_before_any_file(detector, message, capsys, photo_folder):
    assert main(["predict", str(photo_folder), "--detector", detector]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error") == 1 and "Traceback" not in err


def test_version(capsys):
    from agegender import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and __version__ in capsys.readouterr().out


def test_a_closed_pipe_ends_quietly(photo_folder):
    """`agegender predict FOLDER | head -2`: no "Broken pipe" message, no traceback."""
    import subprocess
    import sys

    cmd = (f"{sys.executable} -m agegender.cli predict --no-progress --format jsonl {photo_folder} | head -2")
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert len(done.stdout.splitlines()) == 2
    assert "Broken pipe" not in done.stderr and "Traceback" not in done.stderr and "error" not in done.stderr


def test_annotated_copies_of_a_webp_and_a_jpg_with_one_stem_do_not_collide(tmp_path, capsys):
    folder = tmp_path / "in"
    _photos(folder, n=3)  # photo_00.jpg, photo_01.png, photo_02.webp
    Image.open(folder / "photo_00.jpg").save(folder / "photo_00.webp")
    ann = tmp_path / "ann"
    assert main(["predict", str(folder), "--annotate", str(ann), "--format", "jsonl", "--no-progress"]) == 0
    names = sorted(p.name for p in ann.iterdir())
    assert names == ["photo_00.jpg", "photo_00.webp.jpg", "photo_01.png", "photo_02.webp.jpg"]


def test_label_font_grows_with_the_picture():
    from agegender.inference.annotate import label_font

    assert label_font((640, 480)).size == 16 and label_font((4000, 3000)).size == 100
    assert label_font((100, 80)).size == 12
