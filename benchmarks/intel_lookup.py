"""Threat-intel lookup speed on the real feed snapshots: index build, single and batch lookups per second.

    .venv/bin/python benchmarks/intel_lookup.py [FEEDS_DIR]

FEEDS_DIR defaults to $CYBERSENTINEL_FEEDS_MIRROR, else ../shared/data/feeds beside the repository. Addresses are
random (seeded), so most are fresh: the per-address classification cache rarely helps, as with real traffic
from many clients. Timings are the best of three runs.
"""

from __future__ import annotations

import ipaddress
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cybersentinel.intel.feeds import IntelIndex, ip_category

ROOT = Path(__file__).resolve().parents[1]


def best_of(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        ip_category.cache_clear()  # every run meets the addresses fresh
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def rate(label: str, count: int, seconds: float) -> None:
    print(f"{label:58s} {count / seconds:>14,.0f} /s   ({seconds / count * 1e6:8.3f} µs each)")


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CYBERSENTINEL_FEEDS_MIRROR")
                  or ROOT.parent / "shared" / "data" / "feeds")
    start = time.perf_counter()
    index = IntelIndex.from_dir(folder)
    build = time.perf_counter() - start
    networks = sum(len(nets) for nets in index.networks.values())
    print(f"feeds {folder}: {', '.join(index.ip_feeds)}; {networks:,} collapsed networks, "
          f"{len(index.v4.starts):,} IPv4 intervals, {len(index.popularity):,} ranked domains")
    print(f"index build (parse + collapse + intervals): {build:.2f} s")

    rng = random.Random(42)
    v4_ints = [rng.getrandbits(32) for _ in range(200_000)]
    v4_text = [".".join(str(n >> s & 255) for s in (24, 16, 8, 0)) for n in v4_ints]
    listed = sum(1 for r in index.lookup_ips(v4_text[:20_000]) if r["ip_status"] == "listed")
    print(f"share of random IPv4 addresses listed: {listed / 20_000:.1%}")

    n = 50_000
    rate("single: Intervals.mask(int) (bisect only)", n, best_of(3, lambda: [index.v4.mask(x) for x in v4_ints[:n]]))
    rate("single: IntelIndex.lookup_ip(str) (parse + classify + bisect)", n,
         best_of(3, lambda: [index.lookup_ip(t) for t in v4_text[n : 2 * n]]))
    rate("single: IntelIndex.lookup_url('http://a.b.c.d/x')", n,
         best_of(3, lambda: [index.lookup_url(f"http://{t}/x") for t in v4_text[2 * n : 3 * n]]))

    keys = np.array([rng.getrandbits(32) for _ in range(1_000_000)], dtype=np.uint32)
    rate("batch: Intervals.batch_masks(1,000,000 uint32) (searchsorted)", len(keys),
         best_of(3, lambda: index.v4.batch_masks(keys)))
    rate("batch: IntelIndex.lookup_ips(200,000 strings)", len(v4_text), best_of(3, lambda: index.lookup_ips(v4_text)))

    v6_text = [str(ipaddress.IPv6Address((0x2000 + rng.getrandbits(12)) << 112 | rng.getrandbits(112)))
               for _ in range(50_000)]
    rate("single: IntelIndex.lookup_ip(IPv6 str)", len(v6_text), best_of(3, lambda: [index.lookup_ip(t)
                                                                                  for t in v6_text]))
    rate("batch: IntelIndex.lookup_ips(50,000 IPv6 strings)", len(v6_text),
         best_of(3, lambda: index.lookup_ips(v6_text)))

    domains = list(index.popularity)[:: max(1, len(index.popularity) // 50_000)][:50_000]
    urls = [f"https://login.{d}/account" for d in domains]
    rate("single: IntelIndex.lookup_url(domain URL) (split + lists + rank)", len(urls),
         best_of(3, lambda: [index.lookup_url(u) for u in urls]))


if __name__ == "__main__":
    main()
