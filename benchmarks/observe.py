"""What observing costs: the service's latency with and without Prometheus metrics and the decision log, and the time
of `cybersentinel drift` on 1,000,000 scored rows.

1. Service overhead. The same `cybersentinel serve --workers 2` is started three times on 127.0.0.1: metrics off
   and no decision log (`--no-prometheus`), metrics on (the default), metrics and the decision log. Each is driven
   by benchmarks/load_test.py (wrk: single-URL requests at a fixed rate, then 1,000-URL batches back to back), and
   p50/p99 are printed side by side. The configurations run in turn, twice over (ABCABC) by default, so a burst of
   other work on the machine does not land on one configuration only.
2. Drift. `cybersentinel predict` scores ``--rows`` real URLs (the collections repeated and shuffled, as in
   benchmarks/predict_throughput.py) into a Parquet file; `cybersentinel drift --current` on that file is timed
   (wall, CPU, peak RSS). Drift recomputes every row's features from its URL (the decision log keeps no features).
   A model folder without a reference profile (trained before `drift` existed) is copied and given one for timing
   only, from data/features/train.parquet scored by the model.

    python benchmarks/observe.py                                   # 60 s per load run, 1,000,000 rows
    python benchmarks/observe.py --duration 10 --rows 100000 --rounds 1   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from load_test import free_port, wait_healthy  # noqa: E402
from predict_throughput import write_input  # noqa: E402

CONFIGURATIONS = {  # name: extra `serve` arguments (a decision log folder is added where marked)
    "no metrics, no log": ["--no-prometheus"],
    "metrics": [],
    "metrics + decision log": ["--decision-log"],
}


def load_run(name: str, args: argparse.Namespace, feeds: Path, work: Path) -> dict:
    extra = list(CONFIGURATIONS[name])
    if extra[-1:] == ["--decision-log"]:
        extra.append(str(work / f"decisions-{len(list(work.iterdir()))}"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "cybersentinel", "serve", "--port", str(port), "--workers", str(args.workers),
               "--model-dir", str(args.model_dir), "--feeds-dir", str(feeds), "--no-access-log",
               "--log-level", "warning", *extra]
    server = subprocess.Popen(command, cwd=REPO)
    try:
        wait_healthy(base, server)
        out = work / "load.json"
        subprocess.run([sys.executable, str(HERE / "load_test.py"), "--url", base, "--rate", str(args.rate),
                        "--duration", str(args.duration), "--batch-duration", str(args.batch_duration),
                        "--json", str(out)], check=False, stdout=subprocess.DEVNULL)
        figures = json.loads(out.read_text())
    finally:
        server.terminate()
        server.wait(timeout=60)
    if "--decision-log" in extra:
        import pyarrow.parquet as pq

        folder = Path(extra[-1])
        figures["logged_rows"] = sum(pq.read_metadata(p).num_rows for p in folder.glob("decisions-*.parquet"))
    return figures


def service_overhead(args: argparse.Namespace) -> None:
    mirror_feeds = Path(os.environ.get("CYBERSENTINEL_FEEDS_MIRROR") or REPO.parent / "shared" / "data" / "feeds")
    results: dict[str, list[dict]] = {name: [] for name in CONFIGURATIONS}
    with tempfile.TemporaryDirectory(prefix="cybersentinel-observe-") as tmp:
        for _ in range(args.rounds):
            for name in CONFIGURATIONS:
                figures = load_run(name, args, mirror_feeds, Path(tmp))
                results[name].append(figures)
                single, batch = figures["single"], figures["batch"]
                print(f"  {name:24s} single {single['rate']:.0f}/s p50 {single['p50_ms']:.2f} ms p99 "
                      f"{single['p99_ms']:.2f} ms errors {sum(single['errors'].values())} late {single['late']}; "
                      f"batch p50 {batch['p50_ms']:.1f} ms p99 {batch['p99_ms']:.1f} ms"
                      + (f"; {figures['logged_rows']:,} rows logged" if "logged_rows" in figures else ""),
                      flush=True)
    print(f"\nservice, {args.workers} workers, single URL at {args.rate:g}/s for {args.duration} s and 1,000-URL "
          f"batches for {args.batch_duration} s, median of {args.rounds} round(s):")
    print(f"  {'configuration':24s} {'single p50':>10s} {'single p99':>10s} {'batch p50':>10s} {'batch p99':>10s}")
    for name, runs in results.items():
        def median(kind: str, key: str, runs: list[dict] = runs) -> float:
            return statistics.median(r[kind][key] for r in runs)

        print(f"  {name:24s} {median('single', 'p50_ms'):8.2f}ms {median('single', 'p99_ms'):8.2f}ms "
              f"{median('batch', 'p50_ms'):8.1f}ms {median('batch', 'p99_ms'):8.1f}ms")


def added_cost(args: argparse.Namespace) -> None:
    """CPU time of what metrics and the decision log add to one request, measured in process (CPU time, so other
    work on the machine changes it far less than it changes wrk's latencies): the middleware's count and timing,
    the verdict/score/feed counts of the results, the decision log's append, and the writer thread's conversion
    to Arrow (paid off the request path, but under the same GIL)."""
    from load_test import real_urls
    from prometheus_client import CollectorRegistry

    from cybersentinel.ops.decisions import DecisionLog, LogSettings, to_table
    from cybersentinel.ops.metrics import HttpMetrics, ScoringMetrics
    from cybersentinel.ops.service import column_values
    from cybersentinel.scoring.detector import Detector

    detector = Detector.from_dir(args.model_dir)
    urls = real_urls(Path(os.environ.get("CYBERSENTINEL_DATA_MIRROR") or REPO.parent / "shared" / "data" / "upstream"))
    registry = CollectorRegistry()
    http, scoring = HttpMetrics(registry, "bench"), ScoringMetrics(registry, "bench", "m", "v")
    print("\nadded CPU per request (in process, median of 5 repeats):")
    with tempfile.TemporaryDirectory(prefix="cybersentinel-log-") as tmp:
        log = DecisionLog(LogSettings(Path(tmp), flush_seconds=3600), "sha")
        for size, repeats in ((1, 20_000), (1000, 200)):
            table = detector.score_values(urls[:size])
            columns = {n: column_values(table[n].combine_chunks()) for n in table.column_names}
            results = [{"url": u, **dict(zip(columns, row, strict=True))}
                       for u, *row in zip(urls[:size], *columns.values(), strict=True)]

            def cpu_us(step, repeats: int = repeats) -> float:
                runs = []
                for _ in range(5):
                    started = time.process_time()
                    for _ in range(repeats):
                        step()
                    runs.append((time.process_time() - started) / repeats * 1e6)
                return sorted(runs)[2]

            middleware = cpu_us(lambda: http.record("/v1/score", "POST", 200, 0.001))
            counts = cpu_us(lambda results=results: scoring.observe(results))
            append = cpu_us(lambda results=results: log.record(results))
            log._pending.clear()
            # the writer converts a second's worth of requests at a time: 500 at 500/s, or one 1,000-URL batch
            per_flush = 500 if size == 1 else 1
            arrow = cpu_us(lambda results=results, n=per_flush: to_table([(0.0, results)] * n, "sha"), 20) / per_flush
            print(f"  {size:>5,}-URL request: metrics {middleware + counts:8.1f} us (middleware {middleware:.1f}, "
                  f"results {counts:.1f}); decision log append {append:.2f} us, its writer thread {arrow:.1f} us")
        log.close()


def model_with_reference(model_dir: Path, work: Path) -> Path:
    """``model_dir`` if it has a reference profile; else a copy with one made for timing only."""
    from cybersentinel.core.files import load_manifest, write_json
    from cybersentinel.model.drift import write_reference

    manifest = load_manifest(model_dir)
    if manifest.get("reference"):
        return model_dir
    import pandas as pd

    from cybersentinel.scoring.detector import Detector

    copy = work / "model"
    shutil.copytree(model_dir, copy)
    detector = Detector.from_dir(copy)
    train = pd.read_parquet(REPO / "data" / "features" / "train.parquet", columns=manifest["features"])
    X = train.sample(n=min(len(train), 10_000), random_state=0).to_numpy()
    manifest["reference"] = write_reference(copy, X, manifest["features"], detector.model_scores(X))
    write_json(copy / "model.json", manifest)
    print(f"  ({model_dir} has no reference profile: a copy got one for timing only)")
    return copy


def timed(command: list[str]) -> tuple[float, float, float, int]:
    """Wall seconds, CPU seconds, peak RSS (MiB) of the child, and its exit code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    code = subprocess.run(command, cwd=REPO, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, after.ru_maxrss / 1024, code


def drift_time(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="cybersentinel-drift-") as tmp:
        work = Path(tmp)
        model = model_with_reference(args.model_dir, work)
        urls, scored = work / "urls.csv", work / "scored.parquet"
        write_input(urls, args.rows, cold=False)
        wall, *_ = timed([sys.executable, "-m", "cybersentinel", "predict", "-i", str(urls), "-o", str(scored),
                          "--model-dir", str(model)])
        print(f"\ndrift on {args.rows:,} scored rows (scored by predict in {wall:.1f} s):")
        wall, cpu, rss, code = timed([sys.executable, "-m", "cybersentinel", "drift", "--current", str(scored),
                                      "--model-dir", str(model), "--out", str(work / "report")])
        figures = json.loads((work / "report" / "drift.json").read_text())
        print(f"  cybersentinel drift: {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS {rss:,.0f} MiB, exit {code} "
              f"({'drift' if figures['drift'] else 'no drift'}; {len(figures['drifted_features'])} features "
              f"drifted; score PSI {figures['score']['psi']:.3f}; rows {figures['rows']:,})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=REPO / "models")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--duration", type=int, default=60, help="seconds of single-URL load per run")
    parser.add_argument("--batch-duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each configuration (interleaved)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="scored rows for drift")
    parser.add_argument("--skip-service", action="store_true")
    parser.add_argument("--skip-drift", action="store_true")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if not args.skip_service:
        if shutil.which("wrk") is None:
            raise SystemExit("wrk is not installed: apt-get install wrk")
        service_overhead(args)
    added_cost(args)
    if not args.skip_drift:
        drift_time(args)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
