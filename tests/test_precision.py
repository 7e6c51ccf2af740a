"""Precision per CPU: the int8 file where the CPU has VNNI int8 dot products, the float file elsewhere,
``--precision`` to choose; parity of every bundled file with the float one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures import face_image

from agegender.inference import predict as predict_mod
from agegender.inference import runtime
from agegender.inference.predict import BUNDLED_MODELS, Predictor, bundled_file, load_model


def _int8_files():
    return [name for name in BUNDLED_MODELS if bundled_file(name, "int8").is_file()]


def test_auto_picks_int8_with_vnni_or_avx2_and_a_file(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_vnni"}))
    for name in BUNDLED_MODELS:
        has_int8 = bundled_file(name, "int8").is_file()
        assert bundled_file(name, "auto").name == (f"{name}.int8.onnx" if has_int8 else f"{name}.onnx")
        assert bundled_file(name, "float").name == f"{name}.onnx"
    monkeypatch.setenv("AGEGENDER_NO_INT8", "1")
    assert all(bundled_file(n, "auto").name == f"{n}.onnx" for n in BUNDLED_MODELS)
    monkeypatch.delenv("AGEGENDER_NO_INT8")
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2", "fma"}))  # AVX2 only: int8 too
    assert bundled_file("default", "auto").name == "default.int8.onnx"
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"sse4_2", "ssse3"}))  # older: float
    assert all(bundled_file(n, "auto").name == f"{n}.onnx" for n in BUNDLED_MODELS)


def test_cpu_flags_reads_this_machine():
    flags = runtime.cpu_flags()
    assert isinstance(flags, frozenset)
    assert runtime.int8_is_faster() == any(f in flags for f in runtime.INT8_FLAGS)


def test_bad_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="precision 'fp8'"):
        load_model("default", precision="fp8")
    if "fast" not in _int8_files():
        with pytest.raises(predict_mod.ModelError, match="no int8 file"):
            load_model("fast", precision="int8")


@pytest.mark.parametrize("name", _int8_files() or [pytest.param("default", marks=pytest.mark.skip("no int8 file"))])
def test_int8_file_agrees_with_the_float_file(name):
    """Parity per bundled file: on 48 generated faces and the bundled photo, the int8 model gives the
    same gender on nearly all faces and nearly the same age-group probabilities."""
    fl, q = load_model(name, threads=1, precision="float"), load_model(name, threads=1, precision="int8")
    assert q.precision == "int8" and fl.precision != "int8" and q.size == fl.size
    faces = np.stack([np.asarray(face_image(i, fl.size)) for i in range(48)])
    a, b = fl.run(faces), q.run(faces)

    def probs(x):
        e = np.exp(x - x.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    same_gender = (probs(a["gender"]).argmax(1) == probs(b["gender"]).argmax(1)).mean()
    assert same_gender >= 0.9
    assert np.abs(probs(a["age"]) - probs(b["age"])).sum(1).mean() < 0.25
    photo = predict_mod.asset_path(predict_mod.EXAMPLE_PHOTO)
    (rf,), (rq,) = Predictor(name, precision="float").predict(photo), Predictor(name, precision="int8").predict(photo)
    assert (rf.gender, rf.age_group) == (rq.gender, rq.age_group)


def test_cli_precision_flag_and_health_report_it(capsys):
    from agegender.cli import main

    assert main(["demo", "--precision", "float", "--format", "json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["gender"] in ("male", "female")
    from agegender.serve import Service

    service = Service(Predictor("default", precision="float"), 1000, 1, 1, 1.0)
    assert service.describe()["precision"] in ("fp16", "fp32")


def test_a_large_batch_on_several_threads_runs_as_parallel_slices_with_the_same_outputs():
    import numpy as np

    from agegender.inference.predict import bundled_file
    from agegender.inference.runtime import SPLIT_MIN, OnnxModel

    faces = np.random.default_rng(0).integers(0, 256, (2 * SPLIT_MIN + 3, 64, 64, 3), dtype=np.uint8)
    one = OnnxModel(bundled_file("default", "float"), threads=1)
    two = OnnxModel(bundled_file("default", "float"), threads=2)
    want, got = one.run(faces), two.run(faces)
    assert two._split is not None and one._split is None  # the slices ran; one thread never splits
    for task in want:
        np.testing.assert_allclose(got[task], want[task], rtol=1e-4, atol=1e-4)
    small = two.run(faces[:5])  # below the threshold: the one session with both threads
    np.testing.assert_allclose(small["gender"], want["gender"][:5], rtol=1e-4, atol=1e-4)
