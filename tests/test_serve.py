import http.client
import io
import json
import threading
import uuid

import numpy as np
import pytest
from fixtures import face_image

from agegender.predict import Predictor
from agegender.serve import AgeGenderServer


@pytest.fixture(scope="module")
def server(onnx_model):
    srv = AgeGenderServer(("127.0.0.1", 0), Predictor(onnx_model[0], aligned=True), max_bytes=200_000, quiet=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _request(server, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = json.loads(resp.read())
    conn.close()
    return resp.status, data


def _jpeg(i=0, size=100):
    buf = io.BytesIO()
    face_image(i, size).save(buf, "JPEG")
    return buf.getvalue()


def _multipart(files):
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'.encode()]
    for name, data in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_raw_upload_gives_the_same_record_as_the_python_api(server, onnx_model, tmp_path):
    data = _jpeg()
    status, body = _request(server, "POST", "/predict", data, {"Content-Type": "image/jpeg"})
    (tmp_path / "a.jpg").write_bytes(data)
    expected = Predictor(onnx_model[0], aligned=True).predict(tmp_path / "a.jpg")[0].to_dict()
    assert status == 200 and len(body["results"]) == 1
    got = body["results"][0]
    assert got["path"] == "<upload>" and got["box"] is None
    assert {k: v for k, v in got.items() if k != "path"} == {k: v for k, v in expected.items() if k != "path"}


def test_multipart_upload_carries_on_past_a_bad_file(server):
    body, ctype = _multipart([("one.jpg", _jpeg(1)), ("broken.png", b"not an image"), ("two.jpg", _jpeg(2))])
    status, out = _request(server, "POST", "/predict", body, {"Content-Type": ctype})
    assert status == 200
    assert [r["path"] for r in out["results"]] == ["one.jpg", "broken.png", "two.jpg"]
    bad = out["results"][1]
    assert "broken.png" in bad["error"] and bad["age_group"] is None
    for r in (out["results"][0], out["results"][2]):
        assert "error" not in r and sum(r["age_group_probs"]) == pytest.approx(1, abs=1e-3)
        assert r["gender"] in ("male", "female")


def test_all_inputs_failing_is_422_and_bad_requests_are_clear(server):
    status, out = _request(server, "POST", "/predict", b"\x89PNG\r\n\x1a\n broken", {"Content-Type": "image/png"})
    assert status == 422 and "cannot read image" in out["results"][0]["error"]
    status, out = _request(server, "POST", "/predict", b"", {"Content-Type": "image/jpeg"})
    assert status == 400 and "empty request body" in out["error"]
    body, ctype = _multipart([])
    status, out = _request(server, "POST", "/predict", body, {"Content-Type": ctype})
    assert status == 400 and "no file part" in out["error"]
    status, out = _request(server, "POST", "/predict", b"x" * 300_000, {"Content-Type": "image/jpeg"})
    assert status == 413 and "over this server's limit" in out["error"]
    status, out = _request(server, "GET", "/nowhere")
    assert status == 404 and "/predict" in out["error"]


def test_health_describes_the_service(server):
    status, out = _request(server, "GET", "/health")
    assert status == 200 and out["status"] == "ok" and out["model"] == "m.onnx"
    assert out["aligned"] is True and out["detector"] is None and out["tasks"] == ["age", "gender"]


def test_concurrent_requests_all_get_their_own_answer(server):
    datas = [_jpeg(i) for i in range(6)]
    answers: dict[int, dict] = {}

    def post(i):
        answers[i] = _request(server, "POST", "/predict", datas[i])[1]["results"][0]

    threads = [threading.Thread(target=post, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for i in range(6):
        alone = _request(server, "POST", "/predict", datas[i])[1]["results"][0]
        assert np.allclose(answers[i]["age_group_probs"], alone["age_group_probs"], atol=1e-6)
