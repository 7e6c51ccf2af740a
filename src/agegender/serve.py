"""`agegender serve`: an HTTP JSON service around Predictor (standard library only; no torch).

    POST /predict   the image file's bytes as the body (any Content-Type, e.g. ``curl --data-binary
                    @photo.jpg``), or multipart/form-data with one or more files (``curl -F
                    file=@a.jpg -F file=@b.png``). Answers {"results": [face records]}: the records of
                    ``agegender predict --format json``, ``path`` being the upload's file name. An input
                    that cannot be read or holds no face gives one record with ``error``, as in a batch;
                    the status is 200 when any input gave a face, 422 when none did.
    GET  /health    {"status": "ok", "model": ..., "detector": ..., "aligned": ..., "mirror": ...}

Malformed requests get 400, a body over ``max_bytes`` 413 (refused before it is read), and every error
body is JSON with an ``error`` message. Requests are served on threads and predicted one at a time (the
detector's interpreter is not thread-safe, and one prediction already uses the cores ONNX Runtime is given).
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agegender.predict import FaceResult, Predictor
from agegender.preprocess import ImageError

DEFAULT_MAX_BYTES = 20 * 1024 * 1024


class RequestError(ValueError):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def uploads(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """(file name, bytes) of each file in a request body: the body itself, or each file part of a
    multipart/form-data body (parts without a file name, i.e. plain form fields, are ignored)."""
    if not body:
        raise RequestError(HTTPStatus.BAD_REQUEST, "empty request body: send an image file")
    if not content_type.lower().startswith("multipart/"):
        return [("<upload>", body)]
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
                                                  + body)
    if not message.is_multipart():
        raise RequestError(HTTPStatus.BAD_REQUEST, "malformed multipart body (missing or wrong boundary?)")
    files = [(part.get_filename(), part.get_payload(decode=True) or b"") for part in message.iter_parts()
             if part.get_filename() is not None]
    if not files:
        raise RequestError(HTTPStatus.BAD_REQUEST, "multipart body holds no file part (use -F file=@photo.jpg)")
    return files


class AgeGenderServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], predictor: Predictor, max_bytes: int = DEFAULT_MAX_BYTES,
                 quiet: bool = False):
        super().__init__(address, Handler)
        self.predictor = predictor
        self.max_bytes = max_bytes
        self.quiet = quiet
        self.lock = threading.Lock()

    def predict(self, files: list[tuple[str, bytes]]) -> list[FaceResult]:
        results = []
        for name, data in files:
            try:
                with self.lock:
                    faces = self.predictor.predict_bytes(data, name)
            except ImageError as err:
                results.append(FaceResult(path=name, error=str(err)))
                continue
            except Exception as err:  # one bad input must not take the service down
                results.append(FaceResult(path=name, error=f"{name}: {type(err).__name__}: {err}"))
                continue
            results.extend(faces or [FaceResult(path=name, error=f"{name}: no face found")])
        return results

    def describe(self) -> dict:
        p = self.predictor
        detector = None if p.aligned else str(p.detector_name) if p.detector_name is not None else p.detector.name
        return {"status": "ok", "model": str(p.model.path.name), "head": p.model.head, "tasks": p.model.tasks,
                "detector": detector,
                "aligned": p.aligned, "mirror": p.mirror, "max_bytes": self.max_bytes}


class Handler(BaseHTTPRequestHandler):
    server: AgeGenderServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's naming)
        if self.path.split("?")[0] == "/health":
            self._send(HTTPStatus.OK, self.server.describe())
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {self.path}: POST /predict, GET /health"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path.split("?")[0] != "/predict":
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {self.path}: POST /predict, GET /health"})
            return
        try:
            files = uploads(self.headers.get("Content-Type", ""), self._body())
        except RequestError as err:
            self._send(err.status, {"error": str(err)})
            return
        results = self.server.predict(files)
        ok = any(r.error is None for r in results)
        self._send(HTTPStatus.OK if ok else HTTPStatus.UNPROCESSABLE_ENTITY,
                   {"results": [r.to_dict() for r in results]})

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked" or length is None:
            self.close_connection = True
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length (no chunked uploads)")
        try:
            n = int(length)
        except ValueError:
            self.close_connection = True
            raise RequestError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {length!r}") from None
        if n > self.server.max_bytes:
            self.close_connection = True  # the unread body must not be parsed as the next request
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"body of {n:,} bytes is over this server's limit of {self.server.max_bytes:,} "
                               "(agegender serve --max-mb)")
        return self.rfile.read(n)

    def _send(self, status: HTTPStatus, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the stdlib's signature)
        if not self.server.quiet:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


def serve(predictor: Predictor, host: str = "127.0.0.1", port: int = 8080, max_bytes: int = DEFAULT_MAX_BYTES,
          quiet: bool = False) -> None:
    if not predictor.aligned:
        predictor.detector  # noqa: B018 (load it now: a broken detector fails at start, not on a request)
    with AgeGenderServer((host, port), predictor, max_bytes, quiet) as server:
        h, p = server.server_address[:2]
        print(f"agegender serve: http://{h}:{p}  (POST /predict, GET /health; Ctrl-C stops)", file=sys.stderr)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
