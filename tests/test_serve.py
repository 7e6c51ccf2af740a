"""The HTTP service (FastAPI on uvicorn), run for real on a loopback port and spoken to over sockets."""

import http.client
import io
import json
import socket
import threading
import time
import uuid

import numpy as np
import pytest
from fixtures import composed_photos, face_image

from agegender import __version__
from agegender.inference.predict import Predictor
from agegender.serve import create_app, running


@pytest.fixture(scope="module")
def server(onnx_model):
    app = create_app(Predictor(onnx_model[0], aligned=True), max_bytes=200_000, max_files=5, workers=2,
                     read_timeout=1.0)
    with running(app) as address:
        yield address


def _request(server, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(*server, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    assert resp.getheader("Content-Type", "").startswith("application/json"), raw[:200]
    return resp.status, json.loads(raw)


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
    status, body = _request(server, "POST", "/predict?name=me.jpg", data)
    assert status == 200 and body["results"][0]["path"] == "me.jpg"


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


def test_every_error_is_json_with_its_status(server):
    status, out = _request(server, "POST", "/predict", b"\x89PNG\r\n\x1a\n broken", {"Content-Type": "image/png"})
    assert status == 422 and "cannot read image" in out["results"][0]["error"]
    status, out = _request(server, "POST", "/predict", b"", {"Content-Type": "image/jpeg"})
    assert status == 400 and "empty request body" in out["error"]
    body, ctype = _multipart([])
    status, out = _request(server, "POST", "/predict", body, {"Content-Type": ctype})
    assert status == 400 and "no file part" in out["error"]
    status, out = _request(server, "POST", "/predict", b"x" * 300_000, {"Content-Type": "image/jpeg"})
    assert status == 413 and "over this server's limit" in out["error"]
    body, ctype = _multipart([(f"{i}.jpg", _jpeg(i, 40)) for i in range(6)])  # max_files=5
    status, out = _request(server, "POST", "/predict", body, {"Content-Type": ctype})
    assert status == 413 and "more than 5 files" in out["error"]
    status, out = _request(server, "GET", "/nowhere")
    assert status == 404 and "/predict" in out["error"]
    status, out = _request(server, "GET", "/predict")
    assert status == 405 and "GET is not allowed" in out["error"]
    status, out = _request(server, "PUT", "/predict", b"x")
    assert status == 405


def _raw(server, request: bytes, timeout=10) -> bytes:
    with socket.create_connection(server, timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and b'}' in chunk:
                break
        return b"".join(chunks)


def test_chunked_upload_is_read_and_its_size_counted_while_streaming(server):
    data = _jpeg(3)
    chunked = b"".join(f"{len(data[i:i + 1000]):x}\r\n".encode() + data[i:i + 1000] + b"\r\n"
                       for i in range(0, len(data), 1000)) + b"0\r\n\r\n"
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    answer = _raw(server, head + chunked)
    assert answer.startswith(b"HTTP/1.1 200") and b'"age_group"' in answer
    # no Content-Length and 300 KB streamed: refused once the count passes 200 KB
    big = b"".join(b"fa00\r\n" + b"x" * 0xFA00 + b"\r\n" for _ in range(5)) + b"0\r\n\r\n"
    answer = _raw(server, head + big)
    assert answer.startswith(b"HTTP/1.1 413") and b"more than" in answer


def test_lying_content_length_is_refused(server):
    for length in ("-1", "abc", "99999999999"):
        answer = _raw(server, f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()
                      + b"x" * 100)
        assert answer.split(b" ")[1] in (b"400", b"413"), (length, answer[:200])


def test_a_slow_body_times_out_and_does_not_block_others(server):
    with socket.create_connection(server, timeout=10) as slow:
        slow.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"x" * 100)
        t0 = time.perf_counter()
        status, out = _request(server, "GET", "/health")  # answered while the slow body is pending
        assert status == 200 and time.perf_counter() - t0 < 1.0
        answer = b""
        while chunk := slow.recv(65536):  # read_timeout=1 s; the server closes after answering
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408") and b"not received within" in answer


def test_health_describes_the_service(server):
    status, out = _request(server, "GET", "/health")
    assert status == 200 and out["status"] == "ok" and out["model"] == "m.onnx" and out["version"] == __version__
    assert out["aligned"] is True and out["detector"] is None and out["tasks"] == ["age", "gender"]
    assert len(out["labels"]["age"]) == 8 and out["workers"] == 2


def test_openapi_schema_and_offline_docs_page(server):
    status, schema = _request(server, "GET", "/openapi.json")
    assert status == 200 and "/predict" in schema["paths"] and "/health" in schema["paths"]
    assert "multipart/form-data" in schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    conn = http.client.HTTPConnection(*server, timeout=30)
    conn.request("GET", "/docs")
    page = conn.getresponse().read().decode()
    assert "/static/swagger/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    conn.request("GET", "/static/swagger/swagger-ui-bundle.js")
    resp = conn.getresponse()
    assert resp.status == 200 and len(resp.read()) > 100_000
    conn.request("GET", "/")
    page = conn.getresponse().read().decode()
    assert "<canvas" in page or "canvas" in page and "http" not in page.split("<script>")[1].split("fetch(")[0]
    conn.close()


def test_concurrent_requests_all_get_their_own_answer(server):
    datas = [_jpeg(i) for i in range(8)]
    answers: dict[int, dict] = {}

    def post(i):
        answers[i] = _request(server, "POST", "/predict", datas[i])[1]["results"][0]

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for i in range(8):
        alone = _request(server, "POST", "/predict", datas[i])[1]["results"][0]
        assert np.allclose(answers[i]["age_group_probs"], alone["age_group_probs"], atol=1e-6)


def test_detection_workers_each_have_their_own_detector(onnx_model, tmp_path):
    predictor = Predictor(onnx_model[0], detector="default")
    seen = set()
    original = type(predictor).detector.fget

    def spy(self):
        det = original(self)
        seen.add((threading.get_ident(), id(det)))
        return det

    photos = [p.read_bytes() for p in composed_photos(tmp_path, 6)]
    app = create_app(predictor, workers=2)
    type(predictor).detector = property(spy)
    try:
        with running(app) as address:
            out = []
            threads = [threading.Thread(target=lambda d=d: out.append(_request(address, "POST", "/predict", d)))
                       for d in photos]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
    finally:
        type(predictor).detector = property(original)
    assert len(out) == 6 and all(status == 200 and body["results"][0]["box"] for status, body in out)
    by_thread = {}
    for tid, did in seen:
        by_thread.setdefault(tid, set()).add(did)
    assert all(len(ids) == 1 for ids in by_thread.values())  # one detector per thread
    assert len({did for ids in by_thread.values() for did in ids}) == len(by_thread)  # never shared
