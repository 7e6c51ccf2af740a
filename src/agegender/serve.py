"""`agegender serve`: the HTTP service, on FastAPI + uvicorn (``pip install "agegender[serve]"``; no torch).

    GET  /          a web page: pick or drop photos, see the boxes, age group bars, age in years, gender
    POST /predict   the image file's bytes as the body (``curl --data-binary @photo.jpg``; chunked is fine),
                    or multipart/form-data with one or more files (``curl -F file=@a.jpg -F file=@b.png``).
                    Answers {"results": [face records]}: the records of ``agegender predict --format json``,
                    ``path`` being the upload's file name. An input that cannot be read or holds no face
                    gives one record with ``error``, as in a batch; 200 when any input gave a face, 422
                    when none did.
    GET  /health    {"status": "ok", "version", "model", "tasks", "labels", "detector", ...}
    GET  /docs      the OpenAPI page (served from the swagger-ui-bundle package: works offline);
                    /openapi.json the schema

Every error body is JSON ``{"error": message}``: 400 malformed, 404 no such endpoint, 405 wrong method,
408 a body that did not arrive within ``read_timeout`` seconds, 413 a body over ``max_bytes`` (refused from
its Content-Length before it is read, and counted while streaming when the length is absent or lies) or
more than ``max_files`` files, 500 a fault of the service itself.

Concurrency: the event loop only moves bytes; predictions run on a pool of ``workers`` threads. The ONNX
session is shared (its ``run`` is thread-safe); each worker thread has its own detector instance
(``Predictor.detector``), never one detector across threads. Slow clients cost an idle coroutine, not a
thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import socket
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from importlib import resources

from agegender import __version__
from agegender.inference.predict import FaceResult, Predictor

try:
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException
except ImportError as _err:  # pragma: no cover - exercised by hand without the extra
    raise ImportError(f"agegender serve needs the [serve] extra: pip install \"agegender[serve]\" ({_err})") from None

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_FILES = 64
DEFAULT_READ_TIMEOUT = 30.0
ENDPOINTS = "GET /, POST /predict, GET /health, GET /docs"


class RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Service:
    """The state behind the app: the predictor, its worker pool and the limits."""

    def __init__(self, predictor: Predictor, max_bytes: int, max_files: int, workers: int, read_timeout: float):
        self.predictor = predictor
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.read_timeout = read_timeout
        self.workers = workers
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="agegender-predict")

    async def predict(self, files: list[tuple[str, bytes]]) -> list[FaceResult]:
        loop = asyncio.get_running_loop()
        run = self.predictor.records_for_bytes
        answers = await asyncio.gather(*(loop.run_in_executor(self.pool, run, d, n) for n, d in files))
        return [r for rs in answers for r in rs]

    def describe(self) -> dict:
        p = self.predictor
        detector = None if p.aligned else str(p.detector_name) if p.detector_name is not None else p.detector.name
        return {"status": "ok", "version": __version__, "model": str(p.model.path.name), "head": p.model.head,
                "precision": p.model.precision, "tasks": p.model.tasks, "labels": p.model.labels,
                "input_size": p.model.size,
                "detector": detector, "aligned": p.aligned, "mirror": p.mirror, "workers": self.workers,
                "max_bytes": self.max_bytes, "max_files": self.max_files}

    async def read_body(self, request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise RequestError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {length!r}")
            if int(length) > self.max_bytes:
                raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, self._too_large(int(length)))
        chunks, size = [], 0
        try:
            async with asyncio.timeout(self.read_timeout):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > self.max_bytes:  # no (or a lying) Content-Length: counted as it streams
                        raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, self._too_large(size, more=True))
                    chunks.append(chunk)
        except TimeoutError:
            raise RequestError(HTTPStatus.REQUEST_TIMEOUT, f"request body not received within {self.read_timeout:g} s "
                               f"({size:,} bytes arrived)") from None
        body = b"".join(chunks)
        if not body:
            raise RequestError(HTTPStatus.BAD_REQUEST, "empty request body: send an image file")
        return body

    def _too_large(self, n: int, more: bool = False) -> str:
        return (f"body of {'more than ' if more else ''}{n:,} bytes is over this server's limit of "
                f"{self.max_bytes:,} (agegender serve --max-mb)")

    async def uploads(self, request: Request, body: bytes) -> list[tuple[str, bytes]]:
        """(file name, bytes) of each file: the body itself, or each file part of a multipart body (plain
        form fields are ignored)."""
        if not request.headers.get("content-type", "").lower().startswith("multipart/"):
            return [(request.query_params.get("name", "<upload>"), body)]
        request._body = body  # starlette's form parser reads the body already received (and size-checked)
        try:
            form = await request.form(max_files=self.max_files, max_fields=1000)
        except HTTPException as err:
            status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE if "Too many files" in str(err.detail) else err.status_code
            detail = (f"more than {self.max_files} files in one request (agegender serve --max-files)"
                      if status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE else f"malformed multipart body: {err.detail}")
            raise RequestError(status, detail) from None
        files = [(f.filename or "<upload>", await f.read()) for _, f in form.multi_items() if isinstance(f, UploadFile)]
        await form.close()
        if not files:
            raise RequestError(HTTPStatus.BAD_REQUEST, "multipart body holds no file part (use -F file=@photo.jpg)")
        return files


def _page() -> str:
    return (resources.files("agegender") / "assets" / "web" / "index.html").read_text(encoding="utf-8")


_PREDICT_BODY = {"required": True, "content": {
    "image/*": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}}


def create_app(predictor: Predictor, max_bytes: int = DEFAULT_MAX_BYTES, max_files: int = DEFAULT_MAX_FILES,
               workers: int | None = None, read_timeout: float = DEFAULT_READ_TIMEOUT) -> FastAPI:
    """The ASGI app (run it with any ASGI server; ``serve`` runs it on uvicorn)."""
    service = Service(predictor, max_bytes, max_files, workers or os.cpu_count() or 1, read_timeout)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        service.pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="agegender", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Age group, age in years and gender for each face in a photo.")
    app.state.service = service

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):
        message = (f"no such endpoint {request.url.path}: {ENDPOINTS}" if err.status_code == 404
                   else f"{request.method} is not allowed on {request.url.path}: {ENDPOINTS}"
                   if err.status_code == 405 else str(err.detail))
        return _error(err.status_code, message, getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError):
        return _error(422, f"invalid request: {err.errors()}")

    @app.exception_handler(Exception)
    async def crashed(request: Request, err: Exception):
        print(f"agegender serve: {request.method} {request.url.path}: {type(err).__name__}: {err}", file=sys.stderr)
        return _error(500, f"internal error: {type(err).__name__}: {err}")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(_page())

    @app.get("/health")
    async def health() -> dict:
        """What this service runs: version, model, tasks, labels, detector and limits."""
        return service.describe()

    @app.post("/predict", openapi_extra={"requestBody": _PREDICT_BODY},
              responses={200: {"description": "at least one input gave a face"},
                         422: {"description": "no input gave a face"}, 413: {"description": "too large"}})
    async def predict(request: Request):
        """Face records for each uploaded image (the records of `agegender predict --format json`)."""
        try:
            files = await service.uploads(request, await service.read_body(request))
        except RequestError as err:
            return _error(err.status, str(err), {"Connection": "close"} if err.status >= 408 else None)
        results = await service.predict(files)
        ok = any(r.error is None for r in results)
        return JSONResponse({"results": [r.to_dict() for r in results]}, status_code=200 if ok else 422)

    _mount_docs(app)
    return app


def _mount_docs(app: FastAPI) -> None:
    """/docs from the swagger-ui-bundle package's files (FastAPI's default loads them from a CDN)."""
    from fastapi.openapi.docs import get_swagger_ui_html

    try:
        from fastapi.staticfiles import StaticFiles
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:  # without the bundle: a page that says so, and the schema at /openapi.json
        @app.get("/docs", include_in_schema=False)
        async def docs_missing():
            return HTMLResponse('<p>The OpenAPI page needs the swagger-ui-bundle package (pip install '
                                '"agegender[serve]"). The schema is at <a href="/openapi.json">/openapi.json</a>.</p>')
        return
    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_path), name="swagger")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="agegender API",
                                   swagger_js_url="/static/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/static/swagger/swagger-ui.css",
                                   swagger_favicon_url="/static/swagger/favicon-32x32.png")


def _log_config(quiet: bool) -> dict:
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["formatters"]["default"]["fmt"] = "%(asctime)s %(levelprefix)s %(message)s"
    config["formatters"]["access"]["fmt"] = '%(asctime)s %(client_addr)s "%(request_line)s" %(status_code)s'
    if quiet:
        config["loggers"]["uvicorn.access"]["level"] = "WARNING"
    return config


def uvicorn_config(app: FastAPI, host: str = "127.0.0.1", port: int = 8080, quiet: bool = False,
                   max_connections: int = 1000) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, backlog=2048, timeout_keep_alive=5,
                          limit_concurrency=max_connections, log_config=_log_config(quiet), access_log=not quiet,
                          log_level="warning" if quiet else "info",
                          server_header=False)


@contextlib.contextmanager
def running(app: FastAPI, host: str = "127.0.0.1", port: int = 0, quiet: bool = True) -> Iterator[tuple[str, int]]:
    """Run ``app`` on uvicorn in a background thread (for tests, benchmarks and embedding); yields the
    (host, port) it listens on (``port=0``: a free one)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn_config(app, host, port, quiet))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the service failed to start (see stderr)")
        threading.Event().wait(0.02)
    try:
        yield sock.getsockname()[:2]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def serve(predictor: Predictor, host: str = "127.0.0.1", port: int = 8080, max_bytes: int = DEFAULT_MAX_BYTES,
          quiet: bool = False, workers: int | None = None, max_files: int = DEFAULT_MAX_FILES,
          read_timeout: float = DEFAULT_READ_TIMEOUT) -> None:
    if not predictor.aligned:
        predictor.detector  # noqa: B018 (load it now: a broken detector fails at start, not on a request)
    app = create_app(predictor, max_bytes, max_files, workers, read_timeout)
    print(f"agegender serve: http://{host}:{port}/  (page at /, POST /predict, GET /health, /docs; Ctrl-C stops)",
          file=sys.stderr)
    uvicorn.Server(uvicorn_config(app, host, port, quiet)).run()
