"""Latency of the scoring service under load, measured over real HTTP on 127.0.0.1.

Starts `cybersentinel serve` (unless --url names a running server), then drives it with wrk, a C load generator
(Debian package `wrk`), through benchmarks/load_test.lua:

1. single-URL requests at a fixed rate (default 500/s for 60 s), each body a different real URL from the
   upstream mirror: target p99 < 10 ms and no errors;
2. batches of 1,000 real URLs, one connection, back to back: target p99 < 50 ms. With ``--fresh-hosts``
   every URL of every batch has a host the server has not seen, so no per-host cache helps (the worst case).

Why wrk: it is compiled C with an epoll loop, so on this 2-core machine the generator takes little of the CPU the
server needs and adds little to the latencies it records (microsecond resolution); its Lua hook lets every
request carry a different URL (so no cache sees the same URL twice in a row) and paces requests to a fixed rate.
`hey` can only repeat one body, and Python generators (locust) cost far more CPU per request and report
whole-millisecond percentiles. wrk measures from the moment a request is written: when the server falls behind,
waiting time is not counted, so the script also reports how many sends were late (see load_test.lua).

Beside each single-URL latency it prints the CPU time the server's processes spent per request (from /proc, so
the other jobs on the cores and wrk do not count), each process's share of it (two workers that share the load
unevenly show as, say, 75% / 25%: the kernel hashes the 8 connections over their sockets) and wrk's own CPU per
request: on a shared machine the latencies swing with other jobs, the CPU per request much less.

    python benchmarks/load_test.py                       # the full run (about 75 s + server start)
    python benchmarks/load_test.py --duration 5 --rate 100 --batch-duration 3   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LUA = HERE / "load_test.lua"
P99_SINGLE_MS, P99_BATCH_MS = 10.0, 50.0
FLOOR_RATIO = 2.0  # single-URL p99 at most this multiple of the bare endpoint's p99 at the same rate


def real_urls(seed: int = 0) -> list[str]:
    """Every distinct URL of the shared collections, shuffled (phishing and legitimate mixed): from
    data/validated.parquet (`dvc pull`/`dvc repro`), as the other benchmarks do, else the upstream mirror
    ($CYBERSENTINEL_DATA_MIRROR, else ../shared/data/upstream)."""
    validated = REPO / "data" / "validated.parquet"
    mirror = Path(os.environ.get("CYBERSENTINEL_DATA_MIRROR") or REPO.parent / "shared" / "data" / "upstream")
    urls: list[str] = []
    if validated.is_file():
        urls = pd.read_parquet(validated, columns=["url"])["url"].astype(str).tolist()
    elif (mirror / "dataset_phishing.csv").is_file():
        for name in ("data_legitimate_36400.json", "data_phishing_37175.json"):
            urls += [str(u) for u in json.loads((mirror / name).read_text())]
        urls += pd.read_csv(mirror / "dataset_phishing.csv", usecols=["url"])["url"].astype(str).tolist()
    else:
        raise SystemExit(f"no URLs to send: neither {validated} (`dvc pull prepare`) nor an upstream mirror at "
                         f"{mirror} (set CYBERSENTINEL_DATA_MIRROR)")
    urls = sorted(set(urls))
    random.Random(seed).shuffle(urls)
    return urls


def write_bodies(path: Path, urls: list[str], per_request: int) -> int:
    """One JSON request body per line, ``per_request`` URLs each (the last partial batch is dropped)."""
    with path.open("w") as out:
        count = 0
        for start in range(0, len(urls) - per_request + 1, per_request):
            out.write(json.dumps({"urls": urls[start:start + per_request]}) + "\n")
            count += 1
    return count


def write_fresh_bodies(path: Path, urls: list[str], per_request: int, count: int) -> int:
    """``count`` bodies whose every URL has a host no other body has (``f<body>.`` before the host): each
    request is a cold one, with host features and feed lookups computed afresh for each of its hosts."""
    scheme = re.compile(r"^(\w+://)?")
    with path.open("w") as out:
        for body in range(count):
            start = body * per_request % (len(urls) - per_request)
            fresh = [scheme.sub(rf"\g<0>f{body}.", u, count=1) for u in urls[start:start + per_request]]
            out.write(json.dumps({"urls": fresh}) + "\n")
    return count


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(base: str, process: subprocess.Popen | None, timeout: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"the server exited with code {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:  # noqa: S310 (our own server)
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.25)
    raise SystemExit(f"{base}/healthz did not answer within {timeout:.0f} s")


def run_wrk(url: str, bodies: Path, *, rate: float, duration: int, connections: int, threads: int,
            api_key: str) -> dict:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "5s", "-s", str(LUA),
               url, "--", str(bodies), str(rate), str(threads), api_key]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("LOADTEST_RESULT ")]
    if result.returncode != 0 or not lines:
        raise SystemExit(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return json.loads(lines[-1].removeprefix("LOADTEST_RESULT "))


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) so far of ``pid`` and every process below it, by pid, from /proc (Linux; empty
    elsewhere): what the server's processes spent, apart from the load generator and other jobs on the cores."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):  # gone meanwhile
            continue
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        times[child] = (int(fields[11]) + int(fields[12])) / tick
    found, todo = {}, [pid]
    while todo:
        current = todo.pop()
        if current in times:
            found[current] = times[current]
            todo += [child for child, parent in parents.items() if parent == current]
    return found


def measured(server_pid: int | None, run: Any) -> tuple[dict, dict]:
    """``run()``'s wrk figures with the CPU spent meanwhile: by the server's processes (each process's share of
    it, so an uneven split of connections over the workers shows) and by wrk itself, in us per request."""
    before = tree_cpu(server_pid) if server_pid else {}
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    stats = run()
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = tree_cpu(server_pid) if server_pid else {}
    spent = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    total = sum(spent.values())
    wrk = wrk_after.ru_utime + wrk_after.ru_stime - wrk_before.ru_utime - wrk_before.ru_stime
    requests = max(stats["requests"], 1)
    cpu = {"server_us_per_request": 1e6 * total / requests if before else None,
           "process_shares": sorted((round(t / total, 3) for t in spent.values() if t > 0.01 * total),
                                    reverse=True) if total > 0 else [],
           "wrk_us_per_request": 1e6 * wrk / requests}
    return stats, cpu


def cpu_text(cpu: dict) -> str:
    server = "" if cpu["server_us_per_request"] is None else (
        f"server CPU {cpu['server_us_per_request']:.0f} us per request (by process "
        + " / ".join(f"{share:.0%}" for share in cpu["process_shares"]) + "), ")
    return f"{server}wrk CPU {cpu['wrk_us_per_request']:.0f} us per request"


FLOOR_SERVER = """
import sys
import uvicorn
from cybersentinel.ops import workers
from cybersentinel.ops.service import ServerLimits, server_options
options = server_options("127.0.0.1", int(sys.argv[1]), access_log=False, log_level="warning", limits=ServerLimits())
count = int(sys.argv[2])
if count > 1 and workers.supported():
    sys.exit(workers.serve(options, count, app="load_floor:app", factory=False))
uvicorn.run("load_floor:app", workers=count, **options)
"""


def measure_floor(args: argparse.Namespace, bodies: Path, api_key: str) -> tuple[dict, dict]:
    """wrk against benchmarks/load_floor.py served exactly as `serve` runs the service (the same uvicorn options
    from `server_options`, the same worker processes, each on its own socket), with the same bodies, rate,
    duration and connections."""
    port = free_port()
    command = [sys.executable, "-c", FLOOR_SERVER, str(port), str(args.workers)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    floor = subprocess.Popen(command, cwd=REPO, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, floor)
        url = f"{base}/v1/score"
        if args.warmup:
            run_wrk(url, bodies, rate=args.rate, duration=args.warmup, connections=args.connections, threads=1,
                    api_key=api_key)
        return measured(floor.pid, lambda: run_wrk(url, bodies, rate=args.rate, duration=args.duration,
                                                   connections=args.connections, threads=1, api_key=api_key))
    finally:
        floor.terminate()
        floor.wait(timeout=30)


def report(name: str, stats: dict, p99_target: float) -> bool:
    errors = sum(stats["errors"].values())
    ok = stats["p99_ms"] < p99_target and errors == 0
    print(f"{name}: {stats['requests']:,} requests in {stats['duration_s']:.1f} s ({stats['rate']:.1f}/s); "
          f"latency ms p50 {stats['p50_ms']:.2f}  p95 {stats['p95_ms']:.2f}  p99 {stats['p99_ms']:.2f}  "
          f"p99.9 {stats['p999_ms']:.2f}  max {stats['max_ms']:.2f}; errors {errors} {stats['errors']}; "
          f"late sends {stats['late']}  -> {'PASS' if ok else 'FAIL'} (target p99 < {p99_target:g} ms, no errors)")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="base URL of a running server (default: start one on a free port)")
    parser.add_argument("--model-dir", type=Path, default=REPO / "models")
    parser.add_argument("--feeds-dir", type=Path, default=None, help="threat-intel feeds (default: the mirror)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes of the started server "
                        "(2, as in the Docker image, for 2 cores)")
    parser.add_argument("--rate", type=float, default=500.0, help="single-URL requests per second")
    parser.add_argument("--duration", type=int, default=60, help="seconds of single-URL load")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--batch-duration", type=int, default=10, help="seconds of back-to-back batches")
    parser.add_argument("--fresh-hosts", action="store_true", help="batches whose hosts the server has never "
                        "seen (no host cache helps): the worst case")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of unmeasured load first")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--no-floor", dest="floor", action="store_false", help="skip the bare endpoint (the floor: "
                        "the same server stack and workers, no scoring) measured at the same rate")
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    feeds = args.feeds_dir or next((p for p in (Path(os.environ.get("CYBERSENTINEL_FEEDS_MIRROR", "")),
                                                REPO / "data" / "feeds", REPO.parent / "shared" / "data" / "feeds")
                                    if str(p) != "." and p.is_dir()), REPO / "data" / "feeds")
    api_key = os.environ.get("CYBERSENTINEL_API_KEYS", "").split(",")[0].strip()
    urls = real_urls()

    process = None
    base = args.url
    if base is None:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "cybersentinel", "serve", "--port", str(port), "--workers",
                   str(args.workers), "--model-dir", str(args.model_dir), "--feeds-dir", str(feeds),
                   "--no-access-log", "--log-level", "warning"]
        process = subprocess.Popen(command, cwd=REPO)
    try:
        started = time.monotonic()
        health = wait_healthy(base, process)
        print(f"server {base}: model {health['name']} {health['version']}, intel {health['intel']}, "
              f"workers {args.workers if process else '?'}"
              + (f", ready {time.monotonic() - started:.1f} s after start" if process else "")
              + f"; {len(urls):,} distinct real URLs")
        with tempfile.TemporaryDirectory(prefix="cybersentinel-load-") as tmp:
            single, batch = Path(tmp) / "single.jsonl", Path(tmp) / "batch.jsonl"
            write_bodies(single, urls, 1)
            if args.fresh_hosts:  # more bodies than the server can take in the batch phase: none repeats
                batches = write_fresh_bodies(batch, urls, args.batch_size, 150 * args.batch_duration)
            else:
                batches = write_bodies(batch, urls, args.batch_size)
            score_url = f"{base}/v1/score"
            if args.warmup:
                run_wrk(score_url, single, rate=args.rate, duration=args.warmup, connections=args.connections,
                        threads=1, api_key=api_key)
            single_stats, single_cpu = measured(process.pid if process else None, lambda: run_wrk(
                score_url, single, rate=args.rate, duration=args.duration, connections=args.connections, threads=1,
                api_key=api_key))
            batch_stats = run_wrk(score_url, batch, rate=0, duration=args.batch_duration, connections=1,
                                  threads=1, api_key=api_key)
            floor_stats = floor_cpu = None
            if args.floor and process is not None:  # one server at a time: ours is stopped first
                process.terminate()
                process.wait(timeout=30)
                process = None
                floor_stats, floor_cpu = measure_floor(args, single, api_key)
        ok_single = report(f"single URL at {args.rate:g}/s for {args.duration} s", single_stats, P99_SINGLE_MS)
        print(f"  {cpu_text(single_cpu)}")
        if floor_stats is not None and floor_cpu is not None:
            ratio = single_stats["p99_ms"] / floor_stats["p99_ms"]
            report(f"floor (bare endpoint, same stack, {args.workers} workers) at {args.rate:g}/s", floor_stats,
                   P99_SINGLE_MS)
            print(f"  {cpu_text(floor_cpu)}")
            ok_single = ok_single and ratio <= FLOOR_RATIO
            print(f"single-URL p99 {single_stats['p99_ms']:.2f} ms vs floor p99 {floor_stats['p99_ms']:.2f} ms: "
                  f"{ratio:.2f}x -> {'PASS' if ratio <= FLOOR_RATIO else 'FAIL'} (target <= {FLOOR_RATIO:g}x)")
        kind = "every host new" if args.fresh_hosts else "hosts repeat across bodies"
        ok_batch = report(f"batches of {args.batch_size:,} URLs ({batches} distinct bodies, {kind})", batch_stats,
                          P99_BATCH_MS)
        if args.json:
            args.json.write_text(json.dumps({"single": single_stats, "batch": batch_stats, "floor": floor_stats,
                                             "single_cpu": single_cpu, "floor_cpu": floor_cpu,
                                             "rate": args.rate,
                                             "batch_size": args.batch_size, "workers": args.workers}, indent=2))
        return 0 if ok_single and ok_batch else 1
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
