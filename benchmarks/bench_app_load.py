"""Loopback load check of the demo app: N concurrent gradio_client clients against ``python -m demos.app``.

Starts the app as its own process on a free 127.0.0.1 port (exactly as a user would, with the model
flags), waits for it, sends one warm-up request (the models load on first use), then N clients fire
their request at the same moment: /generate and /detect alternately on the bundled examples.
Every request must succeed (exit 1 otherwise); prints p50/p90/p99/max latency (submit -> result).

    python benchmarks/bench_app_load.py                      # pocket models if installed, else tiny
    python benchmarks/bench_app_load.py --models tiny --clients 20 --concurrency 1 --steps 2
    python benchmarks/bench_app_load.py --models flags -- --unclip /models/sd21-unclip-h ...  (app flags)

The tiny models are random-weight stand-ins (demos.tiny): their latencies measure the app's queue
and plumbing, not image quality or real model cost.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for key, value in {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_ANALYTICS_ENABLED": "False"}.items():
    os.environ.setdefault(key, value)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 180.0) -> float:
    import httpx

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if server.poll() is not None:
            raise RuntimeError(f"the app exited with code {server.returncode} before serving")
        try:
            if httpx.get(url + "config", timeout=2.0).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"the app did not answer at {url} within {timeout:.0f} s")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def request(client, endpoint: str, steps: int):
    from gradio_client import handle_file

    from demos.bundled import example_scene, example_sound

    if endpoint == "/generate":
        gallery = client.predict(handle_file(example_sound("dog")), "", None, 0.3, 0, steps, 1, api_name="/generate")
        if len(gallery) != 1 or not Path(gallery[0]["image"]).is_file():
            raise AssertionError(f"/generate returned {gallery!r}")
    else:
        overlay, table, json_file = client.predict(handle_file(example_scene("scene_dog_drums")),
                                                   handle_file(example_sound("dog")), None, "", 0.9,
                                                   api_name="/detect")
        if not Path(overlay).is_file() or "headers" not in table or not Path(json_file).is_file():
            raise AssertionError(f"/detect returned {overlay!r}, {table!r}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--models", choices=("auto", "pocket", "tiny", "flags"), default="auto",
                        help="auto: pocket if installed, else tiny; flags: the app flags after --")
    parser.add_argument("--concurrency", type=int, default=1, help="the app's --concurrency")
    parser.add_argument("--steps", type=int, default=2, help="denoising steps per /generate request")
    parser.add_argument("--endpoint", choices=("both", "generate", "detect"), default="both")
    parser.add_argument("--json", help="also write the numbers here")
    args, app_flags = parser.parse_known_args(argv)
    app_flags = [f for f in app_flags if f != "--"]

    from gradio_client import Client

    from demos.models import pocket_installed
    from demos.tiny import save_tiny_models

    kind = args.models if args.models != "auto" else ("pocket" if pocket_installed() else "tiny")
    workdir = Path(tempfile.mkdtemp(prefix="bench-app-"))
    if kind == "tiny":
        folders = save_tiny_models(workdir / "tiny")
        app_flags = ["--encoder", folders["encoder"], "--detector", folders["detector"], "--unclip", folders["unclip"]]
    elif kind == "pocket":
        app_flags = []
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, "-m", "demos.app", "--host", "127.0.0.1", "--port", str(port),
               "--concurrency", str(args.concurrency), "--max-queue", str(max(64, 2 * args.clients)), *app_flags]
    log_path = workdir / "app.log"
    print(f"models: {kind}; app: {' '.join(command[1:])}  (log: {log_path})", flush=True)
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                  env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        up = wait_until_up(url, server)
        endpoints = {"both": ["/generate", "/detect"], "generate": ["/generate"], "detect": ["/detect"]}[args.endpoint]
        warm = Client(url, verbose=False)
        warm_times = {}
        for endpoint in endpoints:  # the models load on first use: keep that out of the load numbers
            started = time.perf_counter()
            request(warm, endpoint, args.steps)
            warm_times[endpoint] = time.perf_counter() - started
        clients = [Client(url, verbose=False) for _ in range(args.clients)]
        barrier = threading.Barrier(args.clients)
        results: list[tuple[str, float, str | None]] = [("", 0.0, None)] * args.clients

        def one(i: int) -> None:
            endpoint = endpoints[i % len(endpoints)]
            barrier.wait()
            started = time.perf_counter()
            try:
                request(clients[i], endpoint, args.steps)
                results[i] = (endpoint, time.perf_counter() - started, None)
            except Exception as e:  # noqa: BLE001 - counted and reported
                results[i] = (endpoint, time.perf_counter() - started, f"{type(e).__name__}: {e}")

        threads = [threading.Thread(target=one, args=(i,)) for i in range(args.clients)]
        wall = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - wall
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()

    failures = [(e, err) for e, _, err in results if err]
    latencies = [t for _, t, err in results if not err]
    report = {"models": kind, "clients": args.clients, "concurrency": args.concurrency, "steps": args.steps,
              "server_start_s": round(up, 2), "first_request_s": {k: round(v, 2) for k, v in warm_times.items()},
              "wall_s": round(wall, 2), "succeeded": len(latencies), "failed": len(failures)}
    if latencies:
        report["latency_s"] = {name: round(percentile(latencies, q), 3)
                               for name, q in (("p50", 50), ("p90", 90), ("p99", 99))}
        report["latency_s"]["max"] = round(max(latencies), 3)
        report["latency_s"]["mean"] = round(statistics.fmean(latencies), 3)
        report["per_endpoint_p50_s"] = {e: round(percentile([t for n, t, err in results if n == e and not err], 50), 3)
                                        for e in endpoints if any(n == e and not err for n, _, err in results)}
        report["requests_per_s"] = round(len(latencies) / wall, 2)
    print(f"server up in {report['server_start_s']} s; first requests (model load): {report['first_request_s']}")
    print(f"{args.clients} concurrent clients ({', '.join(endpoints)}), app concurrency {args.concurrency}: "
          f"{report['succeeded']} succeeded, {report['failed']} failed, wall {report['wall_s']} s")
    if latencies:
        lat = report["latency_s"]
        print(f"latency p50 {lat['p50']:.2f} s  p90 {lat['p90']:.2f} s  p99 {lat['p99']:.2f} s  "
              f"max {lat['max']:.2f} s  "
              f"(mean {lat['mean']:.2f} s; {report['requests_per_s']} requests/s; per endpoint p50 "
              f"{report['per_endpoint_p50_s']})")
    for endpoint, error in failures:
        print(f"FAILED {endpoint}: {error}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if failures or len(latencies) != args.clients else 0


if __name__ == "__main__":
    sys.exit(main())
