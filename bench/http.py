"""HTTP throughput of `tokenmall serve`: durable cash orders against a trivial GET /healthz.

    .venv/bin/python bench/http.py [--connections 64] [--seconds 10] [--runs 3]

Starts `tokenmall serve` on a fresh SQLite ledger in a scratch directory (access log off, no
rate limit for the back end's token), creates an admin and an integration token, registers
--consumers consumers, then loads it from a separate process with wrk (Debian's `wrk` package:
`apt-get install wrk`): first GET /healthz, then POST /v1/orders as the mall's back end, each
request a new cash order of 10.00 with a fresh id and payment_id (a Lua script), answered only
after its commit. Prints
requests/s and the p50/p99 latency of each, medians over --runs, and the ratio of the two rates.
"""

import sys

# This file is bench/http.py, the name the issue gives it. Run as a script, its folder comes first
# on sys.path and the file would hide the standard library's `http` package from urllib.
sys.path = [entry for entry in sys.path if not entry.endswith("bench")]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402

ORDER_SCRIPT = """
local counter = 0
local next_thread = 0
function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer TOKEN"
request = function()
  counter = counter + 1
  local body = string.format(
    '{"id":"r%d-t%d-%d","user":"u%d","amount":"10.00","payment_id":"wx-r%d-t%d-%d"}',
    RUN, thread_id, counter, counter % CONSUMERS, RUN, thread_id, counter)
  return wrk.format("POST", "/v1/orders", nil, body)
end
"""
LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def tokenmall(directory: Path, *args: str) -> str:
    command = [sys.executable, "-m", "tokenmall.cli", *args]
    return subprocess.run(command, cwd=directory, check=True, capture_output=True, text=True).stdout


def post(url: str, token: str, body: dict[str, str]) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def wait_until_up(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit("bench: the server exited at start")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit("bench: the server did not start")


def wrk(args: argparse.Namespace, url: str, script: Path | None) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms); non-2xx answers are counted and reported as a failure."""
    command = ["wrk", "-t2", f"-c{args.connections}", f"-d{args.seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in output:
        sys.exit(f"bench: some requests failed:\n{output}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    latency = {p: float(v) * UNIT_MS[u] for p, v, u in LATENCY.findall(output)}
    return rate, latency["50"], latency["99"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--consumers", type=int, default=1_000)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is needed (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory(dir=".") as scratch:
        directory = Path(scratch)
        admin = tokenmall(directory, "token", "create", "--role", "admin").strip()
        token = tokenmall(directory, "token", "create", "--role", "integration").strip()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        options = ["--log-level", "warning", "--rate-limit", "integration=0"]
        server = subprocess.Popen(
            [sys.executable, "-m", "tokenmall.cli", "serve", "--port", str(port), *options],
            cwd=directory,
        )
        try:
            wait_until_up(base, server)
            for index in range(args.consumers):
                post(f"{base}/v1/consumers", admin, {"user": f"u{index}"})
            healthz, orders = [], []
            for run in range(args.runs):  # interleaved, so that drift hits both alike
                healthz.append(wrk(args, f"{base}/healthz", None))
                script = directory / f"orders-{run}.lua"
                script.write_text(
                    ORDER_SCRIPT.replace("TOKEN", token)
                    .replace("RUN", str(run))
                    .replace("CONSUMERS", str(args.consumers))
                )
                orders.append(wrk(args, base, script))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    print(
        f"{args.connections} connections, {args.seconds} s per measurement, median of {args.runs}"
    )
    for label, results in (("GET /healthz", healthz), ("POST /v1/orders (durable)", orders)):
        rate = statistics.median(r[0] for r in results)
        p50 = statistics.median(r[1] for r in results)
        p99 = statistics.median(r[2] for r in results)
        runs = ", ".join(f"{r[0]:,.0f}" for r in results)
        print(f"  {label}: {rate:,.0f} requests/s ({runs}); p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    ratio = statistics.median(r[0] for r in orders) / statistics.median(r[0] for r in healthz)
    print(f"  orders / healthz: {ratio:.2f}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
