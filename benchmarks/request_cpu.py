"""CPU time per single-URL request, in process: what a scoring worker spends on one request, apart from the
network, the load generator and whatever else shares the cores (`time.process_time`, so time the process is not
running does not count; on this shared machine wall-clock latencies swing with other jobs, CPU time much less).

Drives the service's ASGI app directly (the same app `serve` runs, feeds on, Prometheus in multiprocess mode as
under `serve --workers`), or `Detector.score_records` alone, one URL per request: the distinct URLs of
data/validated.parquet in the load test's order (hosts repeat as they do there), or with ``--hosts fresh`` each
URL under a host never seen, or with ``--hosts idn`` each URL's host replaced by an invented Cyrillic ``.рф`` name
never seen (names that are not ASCII take the look-alike and IDNA paths). ``--kind floor`` drives
benchmarks/load_floor.py's bare endpoint the same way.

With ``--against SRC`` (the ``src`` folder of another checkout, e.g. from ``git archive``) both versions are
loaded side by side in this one process (each its own modules, caches and model copy) and alternated in blocks,
so both see the same URLs under the same machine load. ``--gap-ms`` idles before each request (not timed), as a
worker of `serve --workers 2` does at 500 requests/s (4 ms apart): the caches are cold again when it starts, which
costs a request several times its back-to-back CPU, so this is the figure to set beside the load test's. With
``--spin`` the gap is spent busy rather than asleep (the core never idles): if requests still cost more after it,
the caches went cold from time passing (whatever else shares the core), not from the core's idle state:

    python benchmarks/request_cpu.py                                  # this checkout, through the app
    mkdir -p /tmp/old && git archive 4e719b3 src | tar -x -C /tmp/old
    python benchmarks/request_cpu.py --against /tmp/old/src --kind score --hosts fresh
    python benchmarks/request_cpu.py --against /tmp/old/src --gap-ms 4 --block 250
    python benchmarks/request_cpu.py --kind score --gap-ms 4 --spin --block 250
    python benchmarks/request_cpu.py --kind score --gap-ms 4 --block 1000 --rounds 5 --slowest 50
    python benchmarks/request_cpu.py --against /tmp/old/src --urls-per-request 1000 --block 10 --rounds 6
    python benchmarks/request_cpu.py --against /tmp/old/src --kind score --hosts idn --urls-per-request 1000 --block 4
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gc
import importlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def load(src: Path, kind: str, feeds: Path | None, model_dir: Path, scratch: Path | None = None, *,
         compile_afresh: bool = False) -> Any:
    """The app (or ``(detector, decider)``) built from the package under ``src``, imported afresh; its files in
    ``scratch`` (default: the system's temporary folder).
    ``compile_afresh``: its numba kernels compiled in this process, not read from their cache: the kernels of
    two trees both read from their caches carry the same symbol names, and the second's then fail
    ("NRT_adapt_ndarray_to_python: 'descr' is NULL"); one tree loaded twice reads one cache and does not."""
    import numba

    for name in [m for m in sys.modules if m == "cybersentinel" or m.startswith("cybersentinel.")]:
        del sys.modules[name]
    sys.path.insert(0, str(src))
    importlib.invalidate_caches()
    cache_dir = numba.config.CACHE_DIR
    if compile_afresh:  # an empty cache folder of its own: read before the package's own __pycache__
        numba.config.CACHE_DIR = tempfile.mkdtemp(prefix="numba-", dir=scratch)
    try:
        from cybersentinel.intel.feeds import IntelIndex
        from cybersentinel.ops.service import Settings, create_app
        from cybersentinel.scoring.detector import Detector
    finally:
        sys.path.remove(str(src))
        numba.config.CACHE_DIR = cache_dir
    if kind == "app":
        feedback_db = Path(tempfile.mkdtemp(dir=scratch)) / "f.db"
        return create_app(Settings(model_dir=model_dir, feeds_dir=feeds, feedback_db=feedback_db))
    detector = Detector.from_dir(model_dir)
    return detector, detector.decider(IntelIndex.from_dir(feeds) if feeds else None)


async def call(app: Any, body: bytes) -> None:
    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise SystemExit(f"the app answered {message['status']}")

    await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
               "scheme": "http", "path": "/v1/score", "raw_path": b"/v1/score", "query_string": b"",
               "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
               "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                           (b"content-length", str(len(body)).encode())]}, receive, send)


def spin(seconds: float) -> None:
    """Busy for ``seconds`` without sleeping: the core stays with this process, touching almost no memory."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def run(target: Any, kind: str, urls: list[str], loop: asyncio.AbstractEventLoop, gap: float = 0.0,
        per_request: int = 1, wait: Any = time.sleep) -> list[float]:
    """Seconds of CPU per request of ``per_request`` URLs, after ``wait(gap)`` before each (not counted)."""
    times = []
    clock = time.process_time
    for batch in (urls[i:i + per_request] for i in range(0, len(urls), per_request)):
        if gap:
            wait(gap)
        if kind == "score":
            detector, decider = target
            started = clock()
            detector.score_records(batch, decider=decider)
        else:
            body = json.dumps({"urls": batch}).encode()
            started = clock()
            loop.run_until_complete(call(target, body))
        times.append(clock() - started)
    return times


def fresh(urls: list[str], tag: str) -> list[str]:
    """The URLs each under a host never seen (``<tag><i>.`` before the host)."""
    scheme = re.compile(r"^(\w+://)?")
    return [scheme.sub(rf"\g<0>{tag}{i}.", url, count=1) for i, url in enumerate(urls)]


CYRILLIC = "абвгдежзиклмнопрстуфхцчшэюя"


def idn(urls: list[str], tag: str) -> list[str]:
    """The URLs each under an invented Cyrillic ``.рф`` host never seen (the index and ``tag`` spelled in Cyrillic
    letters), path and query kept."""
    def name(text: str) -> str:
        return "".join(CYRILLIC[ord(char) % len(CYRILLIC)] for char in text)

    host = re.compile(r"^(\w+://)?[^/?#]*")
    return [host.sub(lambda m, i=i: f"{m.group(1) or ''}{name(tag)}{name(str(i))}.рф", url, count=1)
            for i, url in enumerate(urls)]


def summary(times: list[float], per_request: int) -> str:
    import numpy as np

    unit, scale = ("us", 1e6) if per_request == 1 else ("ms", 1e3)
    cpu = np.asarray(times) * scale
    return (f"{len(cpu):,} requests: mean {cpu.mean():.1f}  p50 {np.median(cpu):.1f}  "
            f"p90 {np.percentile(cpu, 90):.1f}  p99 {np.percentile(cpu, 99):.1f} {unit} CPU per request")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=("app", "score", "floor"), default="app",
                        help="the whole ASGI app, Detector.score_records alone, or the floor's bare endpoint")
    parser.add_argument("--hosts", choices=("real", "fresh", "idn"), default="real",
                        help="URLs as the load test sends them, each under a host never seen, or each under an "
                             "invented Cyrillic host never seen")
    parser.add_argument("--against", type=Path, help="the src folder of another version, alternated with this one")
    parser.add_argument("--urls-per-request", type=int, default=1,
                        help="URLs in each request (the load test's batches: 1000)")
    parser.add_argument("--block", type=int, default=1000, help="requests per version before switching")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--gap-ms", type=float, default=0.0,
                        help="idle milliseconds before each request (a worker's caches go cold between requests)")
    parser.add_argument("--spin", action="store_true",
                        help="spend the gap busy instead of asleep: whether the cost is the core's idle state")
    parser.add_argument("--slowest", type=int, default=0, metavar="N",
                        help="also print each version's N slowest requests (CPU, first URL): what the tail is made of")
    parser.add_argument("--model-dir", type=Path, default=REPO / "models")
    parser.add_argument("--feeds-dir", type=Path, default=REPO / "data" / "intel")
    args = parser.parse_args()
    if args.urls_per_request < 1 or args.block < 1 or args.rounds < 1:
        parser.error("--urls-per-request, --block and --rounds must be at least 1")

    os.chdir(REPO)  # the app reads reports/metrics.json relative to the working directory, as `serve` does
    # as under `serve --workers`: every metric update goes to a shared file (set before prometheus_client loads)
    scratch = Path(tempfile.mkdtemp(prefix="request-cpu-"))  # metric files, numba caches, feedback stores
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(scratch))
    sys.path.insert(0, str(HERE))
    from load_test import real_urls

    feeds = args.feeds_dir if args.feeds_dir.is_dir() else None
    if args.kind == "floor":
        import load_floor

        versions = {"floor": load_floor.app}
    else:
        versions = {"this": load(REPO / "src", args.kind, feeds, args.model_dir, scratch)}
        if args.against:
            other = args.against.resolve()
            versions["against"] = load(other, args.kind, feeds, args.model_dir, scratch,
                                       compile_afresh=other != (REPO / "src").resolve())
    kind = "score" if args.kind == "score" else "app"
    urls = real_urls()
    per_request = args.urls_per_request
    block = args.block * per_request  # URLs per version before switching
    if len(urls) < block * args.rounds + 300:
        raise SystemExit(f"{len(urls):,} URLs: fewer than the {block * args.rounds + 300:,} this run needs")
    loop = asyncio.new_event_loop()
    for name, target in versions.items():  # the first requests of a worker pay one-time costs: not measured
        run(target, kind, fresh(urls[-300:], f"warm{name}"), loop, per_request=min(per_request, 300))
    gc.collect()
    gc.freeze()
    found: dict[str, list[float]] = {name: [] for name in versions}
    first_urls: dict[str, list[str]] = {name: [] for name in versions}  # each request's first URL, as sent
    for r in range(args.rounds):
        urls_now = urls[r * block:(r + 1) * block]
        for name in (list(versions) if r % 2 == 0 else list(versions)[::-1]):
            changed = {"fresh": fresh, "idn": idn}.get(args.hosts)
            sent = changed(urls_now, f"{name}{r}x") if changed else urls_now
            found[name] += run(versions[name], kind, sent, loop, args.gap_ms / 1000, per_request,
                               spin if args.spin else time.sleep)
            first_urls[name] += sent[::per_request]
    feeds_text = f"feeds {feeds}" if feeds else "no feeds"
    waiting = "spinning" if args.spin else "idle"
    print(f"{args.kind}, {per_request:,} URL(s) per request, hosts {args.hosts}, {feeds_text}, "
          f"{args.gap_ms:g} ms {waiting} before each; load average {os.getloadavg()[0]:.2f}")
    for name, times in found.items():
        label = {"this": str(REPO / "src"), "against": str(args.against), "floor": "load_floor.app"}[name]
        print(f"{label}: {summary(times, per_request)}")
        for seconds, url in sorted(zip(times, first_urls[name], strict=True), reverse=True)[:args.slowest]:
            print(f"  {seconds * 1e6:9.1f} us  {url[:100]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
