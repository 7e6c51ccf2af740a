"""`agegender serve` under load, against `agegender predict` on a folder of the same photo (same machine, same run).

    python benchmarks/serve_load.py [--photo ../shared/data/fairface_ood/images/X.jpg] [--clients 50]
        [--requests 2000] [--docs docs/BENCHMARKS.md]

Loopback only. The server is the real command (`agegender serve`, default workers) in its own process;
CLIENTS threads share REQUESTS POSTs of one real photo over keep-alive connections while SLOW clients hold
half-sent bodies open. Reported: errors, requests/s and its ratio to `predict FOLDER`'s files/s, p50 / p99
latency, the server's RSS before and after, and the answers to an oversized, a lying and a streamed-too-long
body.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from agegender.provenance import publish  # noqa: E402

FAIRFACE = Path(__file__).resolve().parents[2] / "shared" / "data" / "fairface_ood" / "images"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def predict_folder(photo: Path, n: int) -> float:
    """files/s of `agegender predict FOLDER` on n copies of the photo."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for i in range(n):
            shutil.copyfile(photo, folder / f"{i:05d}{photo.suffix}")
        t = time.perf_counter()
        run = subprocess.run(["agegender", "predict", str(folder), "--format", "jsonl", "--out",
                              str(Path(tmp) / "out.jsonl"), "--no-progress"], capture_output=True, text=True)
        dt = time.perf_counter() - t
        if run.returncode != 0:
            raise SystemExit(f"predict failed: {run.stderr[-2000:]}")
    return n / dt


def raw(port: int, data: bytes, timeout: float = 30) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        try:
            return s.recv(4096).split(b"\r\n", 1)[0].decode()
        except (ConnectionResetError, TimeoutError) as err:
            return type(err).__name__


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photo", type=Path)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=2000, help="in all, shared by the clients")
    ap.add_argument("--slow", type=int, default=20, help="clients holding a half-sent body open meanwhile")
    ap.add_argument("--folder-files", type=int, default=300)
    ap.add_argument("--docs")
    args = ap.parse_args()
    photo = args.photo or sorted(FAIRFACE.glob("*.jpg"))[0]
    data = photo.read_bytes()

    folder_rate = predict_folder(photo, args.folder_files)

    port = free_port()
    server = subprocess.Popen(["agegender", "serve", "--port", str(port), "--quiet"], stderr=subprocess.PIPE)
    try:
        for _ in range(300):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health")
                health = json.loads(c.getresponse().read())
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("server did not start: " + server.stderr.read().decode()[-2000:])
        c.request("POST", "/predict", data)  # warm-up
        c.getresponse().read()
        rss_before = rss_mb(server.pid)

        slow = []
        for _ in range(args.slow):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + data[:1000])
            slow.append(s)

        latencies: list[float] = []
        errors: list[str] = []
        counter = iter(range(args.requests))
        lock = threading.Lock()

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            while True:
                with lock:
                    if next(counter, None) is None:
                        break
                t = time.perf_counter()
                try:
                    conn.request("POST", "/predict", data, {"Content-Type": "image/jpeg"})
                    resp = conn.getresponse()
                    body = resp.read()
                    ok = resp.status == 200 and b'"age_group"' in body
                except (OSError, http.client.HTTPException) as err:
                    ok, body = False, repr(err).encode()
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                dt = time.perf_counter() - t
                with lock:
                    latencies.append(dt)
                    if not ok:
                        errors.append(body[:200].decode(errors="replace"))
            conn.close()

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        rss_after = rss_mb(server.pid)
        slow_answers = []
        for s in slow:
            s.settimeout(60)
            try:
                slow_answers.append(s.recv(4096).split(b"\r\n", 1)[0].decode())
            except OSError as err:
                slow_answers.append(type(err).__name__)
            s.close()

        max_bytes = health["max_bytes"]
        big = raw(port, f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {500 * 2**20}\r\n\r\n".encode())
        lying = raw(port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n" + b"x" * 1000)
        chunk = 2**20
        stream = (b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  + (f"{chunk:x}\r\n".encode() + b"x" * chunk + b"\r\n") * (max_bytes // chunk + 2))
        streamed = raw(port, stream)
        rss_end = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(20)

    rate = len(latencies) / wall
    q = statistics.quantiles(latencies, n=100)
    slow_codes = {a: slow_answers.count(a) for a in sorted(set(slow_answers))}
    lines = [
        f"Photo `{photo.name}` ({len(data) / 1024:.0f} KB, one face), server `agegender serve` (workers "
        f"{health['workers']}, model {health['model']}, detector {health['detector']}, test-time mirroring "
        f"{'on' if health.get('mirror') else 'off'}; `predict` alike) in its own process.",
        "",
        "| | |",
        "|---|---|",
        f"| requests | {len(latencies):,} from {args.clients} concurrent keep-alive clients, {args.slow} slow "
        "clients holding half-sent bodies meanwhile |",
        f"| errors | {len(errors)} |",
        f"| throughput | {rate:.1f} requests/s |",
        f"| `agegender predict FOLDER` of {args.folder_files} copies, same photo | {folder_rate:.1f} files/s |",
        f"| ratio service / predict | {rate / folder_rate:.2f} |",
        f"| latency p50 / p99 | {1000 * statistics.median(latencies):.0f} ms / {1000 * q[98]:.0f} ms |",
        f"| server RSS before / after load / after the bad bodies | {rss_before:.0f} / {rss_after:.0f} / "
        f"{rss_end:.0f} MB |",
        f"| slow clients' answers | {slow_codes} (the load was served meanwhile) |",
        f"| Content-Length 500 MB | `{big}` |",
        f"| Content-Length -1 | `{lying}` |",
        f"| chunked body past the {max_bytes // 2**20} MB limit | `{streamed}` |",
    ]
    if errors:
        lines += ["", "First errors: " + "; ".join(sorted(set(errors))[:5])]
    publish(args.docs, "Service under load (agegender serve)", "\n".join(lines))


if __name__ == "__main__":
    main()
