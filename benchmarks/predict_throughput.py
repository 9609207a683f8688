"""End-to-end batch scoring throughput: `cybersentinel predict` file -> file on real URLs, beside `fraudurl`.

The input is the URLs of the shared collections (data/validated.parquet, else the upstream JSON files of the
offline mirror), repeated and shuffled to the requested size and written as a one-column CSV. Nothing caches
whole-URL results: every row is parsed, featurized and pushed through the trees. What is cached, per process,
is the host-only features of up to 200,000 distinct hosts (public-suffix split, entropy, brand checks) and,
with feeds, each distinct host's intel lookup within a chunk, as for any log whose hosts repeat. The
collections hold ~740,000 distinct hosts in 1.45 million URLs (the default 1,000,000 rows hold ~546,000, and
the 50,000-row batches ~776,000 batch-distinct ones in all): most hosts are new to the batch that meets them,
so the per-host work (public-suffix split, host features, the decision policy's evidence) is most of a run.
``--cold`` gives every copy its own host (``<copy>.<host>``, which also changes the scores) to measure the
worst case where no host ever repeats.

Peak memory is sampled every 50 ms over the scoring process and its workers: the sum of their proportional set
sizes (PSS: pages a forked worker shares with its parent count once in all), and the sum of their resident set
sizes (RSS: shared pages counted in every process, an overstatement). The machine's load average is printed
beside the figures: other work on the 2 cores slows every figure here.

`fraudurl` (PyPI) runs on the first ``--peer-rows`` rows of the same file, in its own virtualenv created under
``--venv-dir`` with pip (it takes ~0.4 ms a URL, so the full input would take minutes).

    python benchmarks/predict_throughput.py                  # 1,000,000 URLs, ours and fraudurl
    python benchmarks/predict_throughput.py --rows 200000 --no-peer
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

REPO = Path(__file__).resolve().parents[1]
FRAUDURL = "fraudurl==1.0.1"


def real_urls() -> list[str]:
    validated = REPO / "data" / "validated.parquet"
    if validated.is_file():
        return pd.read_parquet(validated, columns=["url"])["url"].tolist()
    mirror = REPO.parent / "shared" / "data" / "upstream"
    urls: list[str] = []
    for name in ("data_legitimate_36400.json", "data_phishing_37175.json"):
        urls.extend(json.loads((mirror / name).read_text()))
    return urls


def write_input(path: Path, rows: int, cold: bool, seed: int = 0) -> None:
    """``rows`` real URLs, the collections repeated and shuffled; with ``cold`` each copy gets its own hosts."""
    base = np.asarray(real_urls(), dtype=object)
    copies = -(-rows // len(base))
    rng = np.random.default_rng(seed)
    parts = []
    for copy in range(copies):
        urls = base[rng.permutation(len(base))]
        if cold:
            urls = pd.Series(urls).str.replace(r"^(\w+://)?", rf"\g<0>c{copy}.", regex=True).to_numpy()
        parts.append(urls)
    pd.DataFrame({"url": np.concatenate(parts)[:rows]}).to_csv(path, index=False)


def run_measured(cmd: list[str]) -> tuple[float, float, int, int]:
    """Wall seconds, CPU seconds (user + system), and peak summed PSS and RSS (bytes) of ``cmd`` and all its
    descendants."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL)
    peak_pss = peak_rss = 0
    while proc.poll() is None:
        pss = rss = 0
        for p in [proc, *proc.children(recursive=True)]:
            try:
                info = p.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            pss, rss = pss + info.pss, rss + info.rss
        peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed with exit code {proc.returncode}")
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for workers roll up into their parent
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return elapsed, cpu, peak_pss, peak_rss


def count_rows(path: Path) -> int:
    return len(pd.read_csv(path, usecols=[0], dtype=str, keep_default_na=False))


def fraudurl_venv(folder: Path) -> Path:
    exe = folder / "bin" / "fraudurl"
    if not exe.exists():
        venv.create(folder, with_pip=True)
        subprocess.run([folder / "bin" / "pip", "install", "--quiet", FRAUDURL], check=True)
    return exe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--peer-rows", type=int, default=50_000)
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "cybersentinel-bench")
    parser.add_argument("--venv-dir", type=Path, default=Path(tempfile.gettempdir()) / "cybersentinel-bench-fraudurl")
    parser.add_argument("--model-dir", type=Path, default=REPO / "models")
    parser.add_argument("--cold", action="store_true", help="a distinct host for every copy of the collections")
    parser.add_argument("--feeds-dir", type=Path, default=None, help="threat-intel folder (default: model alone)")
    parser.add_argument("--no-peer", action="store_true", help="skip fraudurl")
    args = parser.parse_args()

    args.work_dir.mkdir(parents=True, exist_ok=True)
    source, scored = args.work_dir / "urls.csv", args.work_dir / "scored.csv"
    write_input(source, args.rows, args.cold)
    feeds = ["--feeds-dir", str(args.feeds_dir)] if args.feeds_dir else ["--no-feeds"]
    cmd = [str(Path(sys.executable).with_name("cybersentinel")), "predict", "-i", str(source), "-o", str(scored),
           "--model-dir", str(args.model_dir), "--no-progress", *feeds]
    load_before = psutil.getloadavg()[0]
    seconds, cpu, pss, rss = run_measured(cmd)
    rows_out = count_rows(scored)
    print(f"input: {args.rows:,} real URLs ({'a distinct host per copy' if args.cold else 'collections repeated'}), "
          f"{source.stat().st_size / 1e6:.0f} MB CSV, {psutil.cpu_count()} cores, load average before/after "
          f"{load_before:.1f}/{psutil.getloadavg()[0]:.1f}")
    print(f"cybersentinel predict: {args.rows / seconds:,.0f} URLs/s ({seconds:.1f} s), peak memory "
          f"{pss / 2**20:,.0f} MiB PSS ({rss / 2**20:,.0f} MiB summed RSS), rows out {rows_out:,} (in {args.rows:,})")
    cores = psutil.cpu_count()
    print(f"  CPU time {cpu / args.rows * 1e6:.1f} us per URL over all processes: on {cores} otherwise idle cores that "
          f"is at most {cores * args.rows / cpu:,.0f} URLs/s (a bound, not a measurement)")
    if rows_out != args.rows:
        sys.exit("row count mismatch")
    if args.no_peer:
        return
    exe = fraudurl_venv(args.venv_dir)
    peer_source = args.work_dir / "urls_peer.csv"
    pd.read_csv(source, nrows=args.peer_rows, dtype=str, keep_default_na=False).to_csv(peer_source, index=False)
    peer_cmd = [str(exe), str(peer_source), "-o", str(args.work_dir / "peer.csv"), "--quiet", "--workers",
                str(psutil.cpu_count())]
    peer_seconds, peer_cpu, peer_pss, _ = run_measured(peer_cmd)
    print(f"fraudurl {FRAUDURL.split('==')[1]}:    {args.peer_rows / peer_seconds:,.0f} URLs/s "
          f"({peer_seconds:.1f} s for the first {args.peer_rows:,} rows), peak memory {peer_pss / 2**20:,.0f} MiB PSS, "
          f"CPU time {peer_cpu / args.peer_rows * 1e6:.1f} us per URL")
    print(f"ratio: {args.rows / seconds / (args.peer_rows / peer_seconds):.0f}x")


if __name__ == "__main__":
    main()
