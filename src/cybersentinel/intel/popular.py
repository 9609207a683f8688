"""The popular sites the decision policy discounts, pinned with each model: the registered domains ranked within
the top N of a Tranco list."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cybersentinel.intel.feeds import parse_ranked_domains, read_feed_file


def popular_sites(ranked: Iterable[tuple[str, int]], top: int) -> dict[str, int]:
    """Registered domain -> rank for the names ranked within ``top`` (a name listed twice keeps its better rank)."""
    popular: dict[str, int] = {}
    for name, rank in ranked:
        if rank <= top and rank < popular.get(name, top + 1):
            popular[name] = rank
    return popular


def read_popular_sites(tranco: Path, top: int) -> dict[str, int]:
    """`popular_sites` of a Tranco file (``rank,domain`` or one domain per line in rank order)."""
    return popular_sites(read_feed_file(tranco, parse_ranked_domains).entries, top)
