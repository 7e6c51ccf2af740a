"""Hostile folders and names through `agegender predict`: each case states the input and the clean outcome."""

import json
import os
import threading

from fixtures import face_image
from tqdm import tqdm

from agegender.cli import _count_inputs_into, main
from agegender.inference.output import printable


def _folder(tmp_path, n=3):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(n):
        face_image(i, 64).save(folder / f"face_{i}.jpg")
    return folder


def _records(capsys):
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_a_symlink_loop_in_a_folder_is_not_followed_and_the_batch_completes(tmp_path, onnx_model, capsys):
    folder = _folder(tmp_path)
    (folder / "loop").symlink_to(folder, target_is_directory=True)  # in/loop -> in
    (folder / "sub").mkdir()
    (folder / "sub" / "back").symlink_to(folder, target_is_directory=True)  # in/sub/back -> in
    (folder / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    code = main(["predict", str(folder), "--model", str(onnx_model[0]), "--aligned", "--format", "jsonl",
                 "--no-progress"])
    records = _records(capsys)
    good = [r for r in records if "error" not in r]
    assert sorted(os.path.basename(r["path"]) for r in good) == ["face_0.jpg", "face_1.jpg", "face_2.jpg"]
    bad = [r for r in records if "error" in r]
    assert [os.path.basename(r["path"]) for r in bad] == ["dangling.jpg"] and "no such file" in bad[0]["error"]
    assert code == 1


def test_a_fifo_named_like_a_photo_is_refused_without_blocking(tmp_path, onnx_model, capsys):
    folder = _folder(tmp_path, 2)
    os.mkfifo(folder / "x.jpg")
    done = []
    worker = threading.Thread(target=lambda: done.append(main(
        ["predict", str(folder), "--model", str(onnx_model[0]), "--aligned", "--format", "jsonl", "--no-progress"])))
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "predict blocked on the FIFO"
    records = _records(capsys)
    fifo = [r for r in records if r["path"].endswith("x.jpg")]
    assert len(fifo) == 1 and "not a regular file" in fifo[0]["error"]
    assert len([r for r in records if "error" not in r]) == 2 and done == [1]


def test_out_onto_an_input_photo_is_refused_even_with_force(tmp_path, onnx_model, capsys):
    folder = _folder(tmp_path, 2)
    victim = folder / "face_0.jpg"
    before = victim.read_bytes()
    for inputs in ([str(victim)], [str(folder)]):
        code = main(["predict", *inputs, "--model", str(onnx_model[0]), "--aligned", "--out", str(victim),
                     "--force", "--no-progress"])
        assert code == 2 and "is one of the inputs" in capsys.readouterr().err
        assert victim.read_bytes() == before
    # a new records file inside the input folder is fine (not an image, not read back)
    assert main(["predict", str(folder), "--model", str(onnx_model[0]), "--aligned", "--out",
                 str(folder / "records.jsonl"), "--no-progress"]) == 0


def test_non_utf8_and_control_character_names_are_escaped_in_the_table(tmp_path, onnx_model, capfd):
    folder = tmp_path / "in"
    folder.mkdir()
    face_image(0, 64).save(os.path.join(os.fsencode(folder), b"caf\xe9.jpg"))  # Latin-1 name, not UTF-8
    face_image(1, 64).save(folder / "evil\x1b[31mred\n.jpg")
    code = main(["predict", str(folder), "--model", str(onnx_model[0]), "--aligned", "--format", "table",
                 "--no-progress"])
    out = capfd.readouterr().out
    assert code == 0
    assert "caf\\xe9.jpg" in out and "evil\\x1b[31mred\\n.jpg" in out
    assert "\x1b" not in out and len(out.strip().splitlines()) == 3  # header + two rows, no broken line
    assert printable("plain/name.jpg") == "plain/name.jpg"


def test_the_progress_bar_gets_the_number_of_inputs_as_its_total(tmp_path):
    folder = _folder(tmp_path, 5)
    (folder / "deeper").mkdir()
    face_image(9, 64).save(folder / "deeper" / "more.png")
    bar = tqdm(disable=False, file=open(os.devnull, "w"))  # noqa: SIM115
    _count_inputs_into(bar, [str(folder), str(tmp_path / "missing.jpg")], None)
    for _ in range(200):
        if bar.total is not None:
            break
        threading.Event().wait(0.01)
    assert bar.total == 7


def test_paths_after_options_are_read_too(tmp_path, onnx_model, capsys):
    folder = _folder(tmp_path, 3)
    a, b, c = (str(folder / f"face_{i}.jpg") for i in range(3))
    assert main(["predict", a, "--format", "jsonl", b, "--aligned", c, "--model", str(onnx_model[0]),
                 "--no-progress"]) == 0
    assert [r["path"] for r in _records(capsys)] == [a, b, c]
    import pytest

    with pytest.raises(SystemExit):
        main(["predict", a, "--nosuch-flag", "--aligned"])
