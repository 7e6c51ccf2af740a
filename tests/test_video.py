import json

import numpy as np
import pytest

from agegender import Predictor
from agegender.cli import main
from agegender.inference.predict import EXAMPLE_PHOTO, FaceResult, asset_path
from agegender.inference.video import IouTracker, predict_video
from agegender.preprocess import load_image

cv2 = pytest.importorskip("cv2")


@pytest.fixture
def clip(tmp_path):
    """12 frames of the bundled portrait drifting right by 4 px a frame."""
    photo = load_image(asset_path(EXAMPLE_PHOTO))[..., ::-1]  # BGR for OpenCV
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (512, 512))
    for i in range(12):
        writer.write(np.ascontiguousarray(np.roll(photo, 4 * i, axis=1)))
    writer.release()
    return path


def test_video_tracks_one_face_across_frames(clip, tmp_path):
    results = list(predict_video(Predictor(), clip, every=3, annotate=tmp_path / "out.mp4"))
    assert [r.frame for r in results] == [0, 3, 6, 9]
    assert {r.track for r in results} == {0}  # the same face keeps its track id
    assert results[1].box[0] > results[0].box[0]  # and it moves right
    assert (tmp_path / "out.mp4").stat().st_size > 0


def test_video_through_the_cli(clip, capsys):
    assert main(["predict", str(clip), "--every", "4", "--format", "jsonl", "--no-progress"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["frame"] for r in records] == [0, 4, 8] and all("time_s" in r and "track" in r for r in records)


def test_cli_annotated_video_is_not_replaced_unasked(clip, tmp_path, capsys):
    ann = tmp_path / "ann"
    args = ["predict", str(clip), "--every", "6", "--annotate", str(ann), "--format", "jsonl", "--no-progress"]
    assert main(args) == 0 and (ann / "clip.annotated.webm").stat().st_size > 0
    import cv2

    back = cv2.VideoCapture(str(ann / "clip.annotated.webm"))
    assert back.get(cv2.CAP_PROP_FOURCC) and back.read()[0]  # a real VP8 WebM that reads back
    back.release()
    (ann / "clip.annotated.webm").write_bytes(b"mine")
    capsys.readouterr()
    assert main(args) == 1
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["frame"] for r in records[:-1]] == [0, 6] and "pass --force" in records[-1]["error"]
    assert (ann / "clip.annotated.webm").read_bytes() == b"mine"
    assert main(args + ["--force"]) == 0 and (ann / "clip.annotated.webm").stat().st_size > 4


def test_tracker_smooths_probabilities_and_splits_far_faces():
    labels = {"age": [str(i) for i in range(8)], "gender": ["male", "female"]}
    tracker = IouTracker(smoothing=0.5)

    def face(x, p_age, gender, conf):
        return FaceResult(path="v", face=0, box=[x, 0, 50, 50], age_group_probs=list(p_age), gender=gender,
                          gender_confidence=conf, age_group_index=int(np.argmax(p_age)))

    a = np.eye(8)[2]
    b = np.eye(8)[5]
    first = tracker.update([face(0, a, "male", 0.9)], labels)[0]
    second = tracker.update([face(5, b, "female", 0.6), face(300, b, "female", 0.9)], labels)
    assert second[0].track == first.track and second[1].track != first.track
    assert second[0].age_group_probs[2] == pytest.approx(0.5) and second[0].age_group_probs[5] == pytest.approx(0.5)
    assert second[0].gender == "male"  # 0.5 * 0.9 + 0.5 * 0.4 = 0.65 male after smoothing


def test_tracker_smooths_every_task_of_the_registry():
    """A further task (race) and age in years are smoothed as age and gender are: through the registry."""
    labels = {"gender": ["male", "female"], "race": ["white", "black", "asian", "indian", "other"],
              "age_years": []}
    tracker = IouTracker(smoothing=0.5)

    def face(race_probs, years):
        r = FaceResult(path="v", face=0, box=[0, 0, 50, 50], gender="female", gender_confidence=0.8,
                       age_years=years)
        r.tasks = {"race": labels["race"][int(np.argmax(race_probs))], "race_probs": list(race_probs)}
        return r

    tracker.update([face([0.7, 0.3, 0, 0, 0], 30.0)], labels)
    second = face([0.2, 0.8, 0, 0, 0], 40.0)
    smoothed = tracker.update([second], labels)[0]
    assert smoothed.tasks["race_probs"] == pytest.approx([0.45, 0.55, 0, 0, 0]) and smoothed.tasks["race"] == "black"
    assert smoothed.age_years == pytest.approx(35.0) and smoothed.gender == "female"
    assert second.tasks["race_probs"] == [0.2, 0.8, 0, 0, 0]  # the face's own record is not changed


def test_missing_video_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        list(predict_video(Predictor(), tmp_path / "nope.mp4"))


def test_unreadable_video_in_a_batch_is_an_error_record(clip, tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nope.mp4"), str(clip), "--every", "6", "--format", "jsonl",
                 "--no-progress"]) == 1
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "no such video" in records[0]["error"] and [r["frame"] for r in records[1:]] == [0, 6]
