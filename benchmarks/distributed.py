"""Batch scoring on Dask against the local engine: 5,000,000 real URLs in 20 Parquet files.

Engines, one after the other on the same input:
- local: `cybersentinel predict` (the local engine, forked processes, one per core) over one Parquet file that
  holds the same rows in the same order (the local engine takes one file);
- dask 2x1 and dask 1x2: `cybersentinel predict --engine dask --scheduler tcp://...` over the folder of 20
  files, on a cluster started here with `dask scheduler` and `dask worker` on 127.0.0.1 (2 worker processes of
  1 thread, then 1 process of 2 threads).

Start-up is timed apart from scoring: for the local engine, `predict` on a one-row file (interpreter, imports,
model load); for Dask, the cluster's start (until its workers are connected) and then `predict --engine dask` on
a one-row folder (client, model shipped to and loaded on each worker, numba kernels warmed). The scoring rate is
rows / (wall time of the full run - that one-row run's wall time). Peak memory is the summed proportional set
size (PSS) of every process involved (CLI, its children, the scheduler and workers), sampled every 100 ms. The
score column of every engine's output is hashed (float64 bytes in row order): the hashes must be equal.

The machine's load average is printed: other work on the shared cores slows every figure here.

    python benchmarks/distributed.py                     # 5,000,000 URLs in 20 files
    python benchmarks/distributed.py --rows 500000 --files 16
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # this file would shadow `distributed`
_spec = importlib.util.spec_from_file_location("predict_throughput", HERE / "predict_throughput.py")
_throughput = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_throughput)
real_urls = _throughput.real_urls  # the same real URLs the local benchmark scores

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


class PeakMemory:
    """Peak summed PSS of some process trees, sampled in a thread every 100 ms."""

    def __init__(self, roots: list[psutil.Process]):
        self.roots, self.peak, self._stop = roots, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            total = 0
            for root in self.roots:
                try:
                    processes = [root, *root.children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
                for p in processes:
                    try:
                        total += p.memory_full_info().pss
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        continue
            self.peak = max(self.peak, total)
            self._stop.wait(0.1)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def timed(cmd: list[str], extra: list[psutil.Process]) -> tuple[float, int]:
    """Wall seconds of ``cmd`` and the peak summed PSS of it, its children and ``extra`` (the cluster)."""
    start = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    with PeakMemory([proc, *extra]) as memory:
        _, err = proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} failed ({proc.returncode}):\n{err[-3000:]}")
    return seconds, memory.peak


def write_inputs(folder: Path, rows: int, files: int, seed: int = 0) -> Path:
    """``files`` Parquet files of ``rows`` real URLs in all (collections repeated, shuffled); and one file
    with all of them in the same order for the local engine. Returns that file."""
    base = np.asarray(real_urls(), dtype=object)
    rng = np.random.default_rng(seed)
    urls = np.concatenate([base[rng.permutation(len(base))] for _ in range(-(-rows // len(base)))])[:rows]
    (folder / "parts").mkdir(parents=True)
    for i, chunk in enumerate(np.array_split(urls, files)):
        pq.write_table(pa.table({"url": pa.array(chunk.tolist(), pa.string())}), folder / "parts" / f"{i:03d}.parquet")
    whole = folder / "all.parquet"
    pq.write_table(pa.table({"url": pa.array(urls.tolist(), pa.string())}), whole, row_group_size=1 << 20)
    (folder / "one").mkdir()
    pq.write_table(pa.table({"url": ["https://example.com/"]}), folder / "one" / "one.parquet")
    return whole


def score_hash(paths: list[Path]) -> tuple[str, int]:
    digest, rows = hashlib.sha256(), 0
    for path in paths:
        scores = pq.read_table(path, columns=["score"])["score"].to_numpy(zero_copy_only=False).astype(np.float64)
        digest.update(scores.tobytes())
        rows += len(scores)
    return digest.hexdigest()[:16], rows


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_cluster(workers: int, threads: int, folder: Path) -> tuple[str, list[psutil.Popen], float]:
    """`dask scheduler` and `dask worker` on 127.0.0.1; the address, the processes and the start-up seconds."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    start = time.perf_counter()
    log = open(folder / f"cluster-{workers}x{threads}.log", "w")  # noqa: SIM115 - closed with the processes
    scheduler = psutil.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                              "--dashboard-address", ":0", "--no-show"], stdout=log, stderr=log)
    worker = psutil.Popen([str(BIN / "dask"), "worker", address, "--host", "127.0.0.1", "--nworkers", str(workers),
                           "--nthreads", str(threads), "--no-dashboard", "--memory-limit", "0"], stdout=log, stderr=log)
    with Client(address, timeout="60s") as client:
        client.wait_for_workers(workers, timeout=120)
    return address, [scheduler, worker], time.perf_counter() - start


def stop(processes: list[psutil.Popen]) -> None:
    for p in reversed(processes):
        p.terminate()
        try:
            p.wait(timeout=30)
        except psutil.TimeoutExpired:
            p.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--model-dir", type=Path, default=REPO / "models")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "cybersentinel-bench-dask")
    args = parser.parse_args()
    if not 16 <= args.files <= 32:
        print(f"note: {args.files} files (the issue asks for 16 to 32)")
    shutil.rmtree(args.work_dir, ignore_errors=True)
    args.work_dir.mkdir(parents=True)
    whole = write_inputs(args.work_dir, args.rows, args.files)
    cli = [str(BIN / "cybersentinel"), "predict", "--model-dir", str(args.model_dir), "--no-feeds", "--no-progress"]
    load_before = psutil.getloadavg()[0]
    print(f"input: {args.rows:,} real URLs in {args.files} Parquet files "
          f"({sum(p.stat().st_size for p in (args.work_dir / 'parts').iterdir()) / 1e6:.0f} MB), "
          f"{psutil.cpu_count()} cores, load average {load_before:.1f}")
    results = {}

    one = args.work_dir / "one" / "one.parquet"
    startup, _ = timed([*cli, "-i", str(one), "-o", str(args.work_dir / "one.parquet")], [])
    seconds, peak = timed([*cli, "-i", str(whole), "-o", str(args.work_dir / "local.parquet")], [])
    digest, rows = score_hash([args.work_dir / "local.parquet"])
    results["local"] = (startup, 0.0, seconds, peak, digest, rows, psutil.cpu_count())

    for workers, threads in ((2, 1), (1, 2)):
        name = f"dask {workers}x{threads}"
        address, cluster, cluster_seconds = start_cluster(workers, threads, args.work_dir)
        try:
            processes = [psutil.Process(p.pid) for p in cluster]
            dask_cli = [*cli, "--engine", "dask", "--scheduler", address]
            startup, _ = timed([*dask_cli, "-i", str(args.work_dir / "one"), "-o", str(args.work_dir / "one-dask")],
                               processes)
            out = args.work_dir / f"dask-{workers}x{threads}"
            seconds, peak = timed([*dask_cli, "-i", str(args.work_dir / "parts"), "-o", str(out)], processes)
        finally:
            stop(cluster)
        digest, rows = score_hash(sorted(out.glob("part-*.parquet")))
        results[name] = (startup, cluster_seconds, seconds, peak, digest, rows, workers * threads)

    print(f"{'engine':<12} {'cluster start':>13} {'start-up':>9} {'wall':>8} {'URLs/s':>9} {'per core':>9} "
          f"{'peak PSS':>9}  score hash        rows out")
    for name, (startup, cluster_seconds, seconds, peak, digest, rows, cores) in results.items():
        rate = args.rows / max(seconds - startup, 1e-9)
        print(f"{name:<12} {cluster_seconds:>12.1f}s {startup:>8.1f}s {seconds:>7.1f}s {rate:>9,.0f} "
              f"{rate / cores:>9,.0f} {peak / 2**20:>6,.0f} MiB  {digest}  {rows:,}")
    print(f"load average after: {psutil.getloadavg()[0]:.1f}")
    hashes = {r[4] for r in results.values()}
    counts = {r[5] for r in results.values()}
    if len(hashes) != 1 or counts != {args.rows}:
        sys.exit(f"engines disagree: score hashes {hashes}, rows {counts}")
    print("score hashes equal across engines; rows out = rows in")


if __name__ == "__main__":
    main()
