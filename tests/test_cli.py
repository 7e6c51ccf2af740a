import json

import pytest
from fixtures import make_adience, make_levi_lists, make_utkface

from agegender.cli import main


def test_cv_on_synthetic_utkface_writes_results(tmp_path, capsys):
    root = make_utkface(tmp_path / "utk", n=30, size=32).parent
    out = tmp_path / "run"
    args = ["cv", "--dataset", "utkface", "--data-root", str(root), "--folds", "2", "--epochs", "1",
            "--batch-size", "8", "--lr", "0.01", "--threads", "1", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["summary"]["folds_done"] == [0, 1]
    for key in ("gender_acc", "age_strict_exact", "age_strict_1off", "age_exact", "age_1off"):
        assert set(results["summary"][key]) == {"mean", "std", "n"}
    fold = json.loads((out / "fold_0" / "results.json").read_text())
    assert fold["metrics"]["age_confusion"] and fold["commit"] and fold["train_images_per_s"] > 0
    from agegender.training.engine import bf16_supported

    assert fold["precision"] == ("bf16 autocast" if bf16_supported() else "fp32")  # what ran, not what was asked
    assert "gender_acc" in capsys.readouterr().out
    # A rerun skips finished folds.
    assert main(args) == 0
    assert "results exist, skipped" in capsys.readouterr().err
    assert main(["report", str(out), "--out", str(tmp_path / "report"), "--docs", str(tmp_path / "R.md")]) == 0
    table1 = (tmp_path / "R.md").read_text()
    assert "## Table 1: 5-fold UTK-8 cross-validation" in table1 and "| run |" in table1 and "86.0 ± 1.2" in table1
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| run |" in text and "| fold |" in text and "true \\ predicted" in text
    # per-face analysis: each fold's held-out faces re-predicted from its checkpoint, cached, broken down
    assert "By age group (strict):" in text and "By race (UTKFace):" in text and "| white |" in text
    assert (out / "fold_1" / "predictions.npz").is_file()
    assert (tmp_path / "report" / "run_confusion.png").stat().st_size > 0
    assert (tmp_path / "report" / "run_examples.png").stat().st_size > 0
    # On a machine without the run's checkpoints (results.json only), the kept face analysis is reused.
    import shutil

    for fold in (0, 1):
        shutil.rmtree(out / f"fold_{fold}")
    capsys.readouterr()
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    assert "reusing the analysis of folds [0, 1]" in capsys.readouterr().err
    assert (tmp_path / "report" / "report.md").read_text() == text


def test_cv_on_synthetic_adience(tmp_path):
    make_adience(tmp_path / "adience", users_per_fold=2, faces_per_user=5)
    out = tmp_path / "run"
    assert main(["cv", "--dataset", "adience", "--data-root", str(tmp_path / "adience"), "--head", "cls",
                 "--only-folds", "0", "--epochs", "1", "--batch-size", "8", "--threads", "1", "--no-progress",
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"]["read"]["rules"]["age:typo-range"] > 0
    assert results["folds"][0]["n_eval"] < results["folds"][0]["n_train"]


def test_train_then_bad_paths_give_clear_errors(tmp_path, capsys):
    root = make_utkface(tmp_path / "utk", n=16, size=32).parent
    out = tmp_path / "model"
    common = ["--dataset", "utkface", "--data-root", str(root), "--epochs", "1", "--batch-size", "8",
              "--threads", "1", "--no-progress", "--out", str(out)]
    assert main(["train", *common]) == 0
    assert (out / "checkpoint" / "model.safetensors").is_file()
    assert main(["train", *common]) == 2  # refuses to overwrite
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--dataset", "utkface", "--data-root", str(tmp_path / "nope"), "--out",
                 str(tmp_path / "x")]) == 2
    assert "nope: not a folder" in capsys.readouterr().err


def test_other_input_size_trains_exports_and_predicts(tmp_path, capsys):
    """--input-size reaches the model, the cache, the export and prediction; --set shift=3 the augmentation."""
    from agegender import Predictor

    root = make_utkface(tmp_path / "utk", n=16, size=40).parent
    out = tmp_path / "model"
    assert main(["train", "--dataset", "utkface", "--data-root", str(root), "--head", "cls", "--input-size", "48",
                 "--set", "shift=3", "--epochs", "1", "--batch-size", "8", "--threads", "1", "--no-progress",
                 "--out", str(out)]) == 0
    meta = json.loads((out / "checkpoint" / "meta.json").read_text())
    assert meta["model"]["input_size"] == 48 and meta["train"]["shift"] == 3
    assert main(["export", str(out / "checkpoint"), "--out", str(tmp_path / "m.onnx")]) == 0
    capsys.readouterr()
    face = next((root / "UTKFace").glob("*.jpg"))
    [result] = Predictor(model=str(tmp_path / "m.onnx"), aligned=True).predict(face)
    assert result.error is None and abs(sum(result.age_group_probs) - 1) < 1e-4
    assert main(["train", "--dataset", "utkface", "--data-root", str(root), "--input-size", "8",
                 "--out", str(tmp_path / "tiny")]) == 2
    assert "input_size must be at least 16" in capsys.readouterr().err


def test_task_weights_reach_the_loss(tmp_path, capsys):
    """--task-weights is stored with the checkpoint and scales that task's term of the summed loss."""
    import torch

    from agegender.training.losses import multitask_loss

    root = make_utkface(tmp_path / "utk", n=8, size=40).parent
    out = tmp_path / "model"
    assert main(["train", "--dataset", "utkface", "--data-root", str(root), "--head", "cls", "--task-weights",
                 "gender=2.5", "--epochs", "1", "--batch-size", "8", "--threads", "1", "--no-progress",
                 "--out", str(out)]) == 0
    meta = json.loads((out / "checkpoint" / "meta.json").read_text())
    weights = meta["train"]["task_weights"]
    assert weights == {"gender": 2.5}
    outputs = {"age": torch.randn(4, 8), "gender": torch.randn(4, 2)}
    targets = {"age": torch.tensor([0, 3, 7, 2]), "gender": torch.tensor([0, 1, 1, 0])}
    plain, parts = multitask_loss(outputs, targets)
    weighted, _ = multitask_loss(outputs, targets, weights)
    assert abs(float(weighted) - (parts["age"] + 2.5 * parts["gender"])) < 1e-5
    assert abs(float(plain) - (parts["age"] + parts["gender"])) < 1e-5
    for bad in ("race=2", "gender", "gender=-1", "gender=x", "gender=inf", "gender=nan"):
        assert main(["train", "--dataset", "utkface", "--data-root", str(root), "--task-weights", bad,
                     "--out", str(tmp_path / "bad")]) == 2
        assert "--task-weights" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_cv_with_levi_lists(tmp_path):
    for fold in range(5):
        make_levi_lists(tmp_path / "lists", fold, image_root=tmp_path / "img")
    out = tmp_path / "run"
    assert main(["cv", "--dataset", "adience", "--protocol", "levi", "--data-root", str(tmp_path / "lists"),
                 "--image-root", str(tmp_path / "img"), "--only-folds", "2", "--epochs", "1", "--batch-size", "4",
                 "--threads", "1", "--no-progress", "--out", str(out)]) == 0
    fold = json.loads((out / "fold_2" / "results.json").read_text())
    assert fold["n_train"] == 6 and fold["n_eval"] == 6


def test_bench_speed_writes_a_dated_table(tmp_path, capsys):
    """Functional check only (timings are never asserted): rows for each runtime, a docs section."""
    import json

    docs, raw = tmp_path / "RESULTS.md", tmp_path / "speed.json"
    assert main(["bench", "speed", "--archs", "paper,levi", "--threads", "1", "--batch", "2",
                 "--min-seconds", "0", "--json", str(raw), "--docs", str(docs)]) == 0
    rows = json.loads(raw.read_text())
    assert {(r["arch"], r["runtime"]) for r in rows} == {(a, r) for a in ("paper", "levi")
                                                          for r in ("pytorch", "onnxruntime")}
    assert all(r["latency_ms"] > 0 and r["throughput"] > 0 for r in rows)
    text = docs.read_text()
    assert "## Table 2: speed of four architectures" in text and "agegender bench speed" in text
    assert "| levi | 227 | 8,860,170 | 1.298 |" in text


def test_ablation_runs_rows_fold_major_resumes_and_writes_table(tmp_path, capsys):
    root = make_utkface(tmp_path / "utk", n=30, size=32).parent
    out, docs = tmp_path / "abl", tmp_path / "RESULTS.md"
    args = ["ablation", "--dataset", "utkface", "--data-root", str(root), "--folds", "2", "--only-folds", "0",
            "--rows", "age-3conv,gender-cls-4conv,multi-cls-4conv", "--epochs", "1", "--batch-size", "8",
            "--threads", "1", "--no-progress", "--out", str(out), "--docs", str(docs)]
    assert main(args) == 0
    assert (out / "age-3conv" / "fold_0" / "results.json").is_file()
    assert not (out / "age-3conv" / "fold_1").exists()
    table = docs.read_text()
    assert "| age-3conv | age | 3 | reg | 1/2 |" in table
    assert "| multi-cls-4conv | age+gender | 4 | cls | 1/2 |" in table
    # our single-task softmax row: a gender number, no age number
    cls_row = next(line for line in table.splitlines() if line.startswith("| gender-cls-4conv | gender | 4 | cls"))
    assert cls_row.split("|")[6].strip() and cls_row.split("|")[7].strip() == ""
    # multi-task vs single-task of the same head, paired by fold: gender for cls (age-cls-4conv was not run)
    sharing = [line for line in table.splitlines() if line.startswith("| cls | ")]
    assert len(sharing) == 1 and sharing[0].startswith("| cls | gender (gender acc %) | 1 |")
    cells = [c.strip() for c in sharing[0].split("|")[1:-1]]
    assert float(cells[4]) - float(cells[3]) == pytest.approx(float(cells[5]), abs=0.11) and cells[6] == cells[5]
    # the single-task age row has no gender number; the recipe is the short ablation schedule
    age_row = next(line for line in table.splitlines() if line.startswith("| age-3conv"))
    assert age_row.split("|")[6].strip() == ""
    ours = "|".join(age_row.split("|")[:10])  # the paper's Adience columns follow
    assert "±" not in ours and age_row.split("|")[7].strip()  # one fold: a number, no spread
    saved = json.loads((out / "age-3conv" / "results.json").read_text())
    assert saved["train"]["grad_clip"] == 1.0 and saved["train"]["lr_step_epochs"] == [1.5]
    # fold 1 next: fold 0 is skipped, and the row's results.json then holds both folds
    assert main(args[:8] + ["1"] + args[9:]) == 0
    assert "fold 0: results exist, skipped" not in capsys.readouterr().err  # fold 0 not re-run, just counted
    saved = json.loads((out / "multi-cls-4conv" / "results.json").read_text())
    assert saved["summary"]["folds_done"] == [0, 1]
    assert "| 2/2 |" in docs.read_text()
    # short vs long schedule: a cv run of the same net (2 epochs) beside the ablation row, fold by fold
    long = tmp_path / "cv-cls"
    assert main(["cv", "--dataset", "utkface", "--data-root", str(root), "--folds", "2", "--only-folds", "1",
                 "--head", "cls", "--epochs", "2", "--batch-size", "8", "--threads", "1", "--no-progress",
                 "--out", str(long)]) == 0
    assert main(args[:8] + ["1"] + args[9:] + ["--table-only", "--long", str(long)]) == 0
    text = docs.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| multi-cls-4conv | 1 |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    long_fold = json.loads((long / "fold_1" / "results.json").read_text())["metrics"]
    assert cells[2] == "1" and cells[5] == "2" and cells[6] == f"{long_fold['gender_acc']:.1f}"
    assert not any(line.startswith("| multi-cls-4conv | 0 |") for line in text.splitlines())  # fold 0: no long run
    # the long run's committed results.json alone (its fold folders gone with the machine) gives the same rows
    kept = tmp_path / "kept" / "cv-cls"
    kept.mkdir(parents=True)
    (kept / "results.json").write_text((long / "results.json").read_text())
    assert main(args[:8] + ["1"] + args[9:] + ["--table-only", "--long", str(kept)]) == 0
    def long_rows(doc):
        return [line for line in doc.splitlines() if line.startswith("| multi-cls-4conv | 1 |")]

    assert long_rows(text) and long_rows(docs.read_text()) == long_rows(text)
    # a single-task long run sits beside its row; its missing task shows as empty cells
    age_long = tmp_path / "cv-age"
    assert main(["cv", "--dataset", "utkface", "--data-root", str(root), "--folds", "2", "--only-folds", "1",
                 "--tasks", "age", "--conv-layers", "3", "--recipe", "cpu", "--grad-clip", "1", "--epochs", "2",
                 "--batch-size", "8", "--threads", "1", "--no-progress", "--out", str(age_long)]) == 0
    assert main(args[:8] + ["1"] + args[9:] + ["--table-only", "--long", str(age_long)]) == 0
    row = next(line for line in docs.read_text().splitlines() if line.startswith("| age-3conv | 1 |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[3] == "" and cells[4] and cells[6] == "" and cells[8].startswith("- / ")
    # refused: the row's own folder, and a net that no row trains
    assert main(args[:8] + ["1"] + args[9:] + ["--table-only", "--long", str(out / "age-3conv")]) == 2
    other = json.loads((long / "results.json").read_text())  # the same net at another depth / input size
    for key, value in (("conv_layers", 5), ("input_size", 96)):
        (kept / "results.json").write_text(json.dumps({**other, "model": {**other["model"], key: value}}))
        assert main(args[:8] + ["1"] + args[9:] + ["--table-only", "--long", str(kept)]) == 2
        assert "no ablation row trains that net" in capsys.readouterr().err


def test_parallel_only_folds_runs_keep_each_others_folds(tmp_path, monkeypatch):
    """Two `cv --only-folds` runs on two cores share one run folder: the summary written by one must
    include a fold that the other finished while it was training (read back from disk)."""
    import shutil

    import agegender.experiments.cv as cv

    root = make_utkface(tmp_path / "utk", n=30, size=32).parent
    common = ["cv", "--dataset", "utkface", "--data-root", str(root), "--folds", "2", "--epochs", "1",
              "--batch-size", "8", "--lr", "0.01", "--threads", "1", "--no-progress"]
    other, shared = tmp_path / "other", tmp_path / "shared"
    assert main(common + ["--only-folds", "0", "--out", str(other)]) == 0
    real_fit = cv.fit

    def fit_while_the_other_run_finishes(model_cfg, train_cfg, train, out_dir, *a, **kw):
        (shared / "fold_0").mkdir(parents=True, exist_ok=True)  # the parallel run lands fold 0 meanwhile
        shutil.copy(other / "fold_0" / "results.json", shared / "fold_0" / "results.json")
        return real_fit(model_cfg, train_cfg, train, out_dir, *a, **kw)

    monkeypatch.setattr(cv, "fit", fit_while_the_other_run_finishes)
    assert main(common + ["--only-folds", "1", "--out", str(shared)]) == 0
    results = json.loads((shared / "results.json").read_text())
    assert results["summary"]["folds_done"] == [0, 1]
    assert [f["fold"] for f in results["folds"]] == [0, 1]
    # the recorded command is the whole run's, not this process's share of it
    assert results["command"].startswith("agegender cv ") and "--only-folds" not in results["command"]


def test_cv_with_extra_gender_data_split_by_person(tmp_path, capsys):
    """`cv --extra celeba_gender:PATH`: the extra crops join each fold's training part, their held-out
    people are scored on their own, and no person is on both sides of a fold."""
    from fixtures import make_celeba_gender

    root = make_utkface(tmp_path / "utk", n=30, size=32).parent
    celeba = make_celeba_gender(tmp_path / "celeba", people=10, faces_per_person=3)
    out = tmp_path / "run"
    assert main(["cv", "--dataset", "utkface", "--data-root", str(root), "--extra", f"celeba_gender:{celeba}",
                 "--head", "cls", "--folds", "2", "--epochs", "1", "--batch-size", "8", "--lr", "0.01",
                 "--threads", "1", "--no-progress", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"]["extra"][0]["dataset"] == "celeba_gender"
    held_out = 0
    for fold in results["folds"]:
        extra = fold["extra_metrics"]["celeba_gender"]
        assert 0 <= extra["gender_acc"] <= 100 and "age_exact" not in extra  # gender-only data
        assert fold["n_train_extra"] + extra["n_eval"] == 30
        held_out += extra["n_eval"]
    assert held_out == 30  # every crop is held out exactly once
    assert set(results["summary"]["extra"]["celeba_gender"]) == {"gender_acc"}
    captured = capsys.readouterr()
    assert "celeba_gender gender_acc" in captured.out
    for fold in results["folds"]:  # the log names both parts of each fold
        n = fold["extra_metrics"]["celeba_gender"]["n_eval"]
        assert f"fold {fold['fold']}: " in captured.err and f"celeba_gender: {30 - n} train / {n} test" in captured.err
    # Table 1 gets a column for the held-out CelebA people
    assert main(["report", str(out), "--out", str(tmp_path / "report"), "--no-faces", "--docs",
                 str(tmp_path / "R.md")]) == 0
    table = (tmp_path / "R.md").read_text()
    mean = results["summary"]["extra"]["celeba_gender"]["gender_acc"]
    assert "celeba_gender gender (held-out people)" in table and f"{mean['mean']:.1f} ± {mean['std']:.1f}" in table


def test_cv_tune_val_scores_extra_people_carved_from_the_training_part(tmp_path, monkeypatch, capsys):
    """With `--tune-val` the extra's test people stay untouched like the main test fold: the extra is
    scored on validation people carved from its training part, and none of them is trained on."""
    from fixtures import make_celeba_gender

    import agegender.experiments.cv as cv
    from agegender.data.folds import assign_folds
    from agegender.data.readers import read_celeba_gender

    root = make_utkface(tmp_path / "utk", n=30, size=32).parent
    celeba = make_celeba_gender(tmp_path / "celeba", people=20, faces_per_person=2)
    seen = {}
    real_fit, real_evaluate = cv.fit, cv.evaluate

    def recording_fit(model_cfg, train_cfg, train, *a, **kw):
        seen["train"] = {r.group for r in train.records if r.path.startswith(str(celeba))}
        return real_fit(model_cfg, train_cfg, train, *a, **kw)

    def recording_evaluate(model, faces, **kw):
        seen["scored"] = {r.group for r in faces.records}
        return real_evaluate(model, faces, **kw)

    monkeypatch.setattr(cv, "fit", recording_fit)
    monkeypatch.setattr(cv, "evaluate", recording_evaluate)
    out = tmp_path / "run"
    assert main(["cv", "--dataset", "utkface", "--data-root", str(root), "--extra", f"celeba_gender:{celeba}",
                 "--head", "cls", "--folds", "2", "--only-folds", "0", "--tune-val", "0.5", "--epochs", "1",
                 "--batch-size", "8", "--lr", "0.01", "--threads", "1", "--no-progress", "--out", str(out)]) == 0
    records = read_celeba_gender(celeba)
    test_people = {r.group for r, f in zip(records, assign_folds(records, 2), strict=True) if f == 0}
    assert seen["scored"] and seen["train"]
    assert not seen["scored"] & test_people and not seen["train"] & test_people
    assert not seen["scored"] & seen["train"]
    fold = json.loads((out / "fold_0" / "results.json").read_text())
    n = fold["extra_metrics"]["celeba_gender"]["n_eval"]
    assert fold["extra_split"] == "val" and fold["n_train_extra"] + n == 2 * (20 - len(test_people))
    assert f"celeba_gender: {fold['n_train_extra']} train / {n} val" in capsys.readouterr().err


def test_extra_folds_keep_each_person_on_one_side(tmp_path):
    from fixtures import make_celeba_gender

    from agegender.data.folds import assign_folds
    from agegender.data.readers import read_celeba_gender

    records = read_celeba_gender(make_celeba_gender(tmp_path / "celeba", people=12, faces_per_person=3))
    folds = assign_folds(records, 3)
    person_folds: dict[str, set[int]] = {}
    for r, f in zip(records, folds, strict=True):
        person_folds.setdefault(r.group, set()).add(f)
    assert len(person_folds) == 12 and all(len(s) == 1 for s in person_folds.values())
    assert sorted(set(folds)) == [0, 1, 2]


def test_ablation_table_puts_the_papers_table_3_beside_ours_and_reads_committed_results(tmp_path):
    """The committed layout (docs/results/ablation/ROW/fold_K.json) is read like a run folder's
    fold_K/results.json; the paper's Adience values stand in their own columns."""
    import json

    from agegender.experiments.ablation import ablation_table

    for fold, acc in enumerate((80.0, 82.0)):
        row = tmp_path / "multi-reg-4conv"
        row.mkdir(exist_ok=True)
        (row / f"fold_{fold}.json").write_text(json.dumps({"fold": fold, "metrics": {"gender_acc": acc}}))
    line = next(x for x in ablation_table(tmp_path, k=2).splitlines() if x.startswith("| multi-reg-4conv"))
    assert "| 2/2 | 81.0 ± 1.4 |" in line and line.endswith("| 86.0 ± 1.2 | 46.0 ± 1.1 |")
    gender3 = next(x for x in ablation_table(tmp_path, k=2).splitlines() if x.startswith("| gender-3conv"))
    assert "| 0/2 |" in gender3 and "83.7 ± 0.7" in gender3
