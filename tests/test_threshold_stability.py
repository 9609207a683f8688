"""benchmarks/threshold_stability.py: the budget's threshold estimators and the split-half measurement (tiny arrays)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("threshold_stability", REPO / "benchmarks" / "threshold_stability.py")
threshold_stability = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(threshold_stability)


def one_site_with_five_high_pages() -> tuple[np.ndarray, ...]:
    """400 legitimate sites of one collection, one page each at a low score, but one site with 5 pages at 0.99."""
    scores = np.r_[np.linspace(0.0, 0.5, 399), np.full(5, 0.99)]
    groups = np.r_[[f"site{i}.example" for i in range(399)], ["busy.example"] * 5]
    return np.zeros(404, dtype=int), scores, np.full(404, "legit"), groups


def test_the_budget_in_sites_spends_one_site_once_where_the_rows_rule_spends_five():
    y, scores, sources, groups = one_site_with_five_high_pages()
    # 1% of 404 rows allows 4: the 5th page at 0.99 must be cleared; counted in sites the busy site is 1 of 400
    assert threshold_stability.order_statistic(y, scores, sources, groups, 0.01) > 0.99
    assert threshold_stability.by_site(y, scores, sources, groups, 0.01) < 0.99
    assert np.mean(scores >= threshold_stability.by_site(y, scores, sources, groups, 0.01)) > 0.01


def test_harrell_davis_reads_the_quantile_of_a_smooth_sample_and_every_collection_must_hold():
    rng = np.random.default_rng(0)
    scores = np.r_[rng.uniform(0, 1, 20000), rng.uniform(0, 0.5, 20000)]
    sources = np.repeat(["wide", "narrow"], 20000)
    cut = threshold_stability.harrell_davis(np.zeros(40000, dtype=int), scores, sources, np.arange(40000), 0.01)
    assert abs(cut - 0.99) < 0.002  # the wide collection's 99th percentile, not the pooled one (about 0.98)


def test_split_halves_judges_each_threshold_on_the_sites_it_did_not_see():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(300), 4).astype(str)
    y = np.r_[np.zeros(800, dtype=int), np.ones(400, dtype=int)]
    sources = np.r_[np.repeat(["a", "b"], 400), np.repeat(["phish"], 400)]
    scores = np.r_[rng.uniform(0, 0.9, 800), rng.uniform(0.5, 1, 400)]
    seen = []

    def recording(y_, scores_, sources_, groups_, max_fpr):
        seen.append(set(groups_))
        return 0.8

    table = threshold_stability.split_halves(y, scores, sources, groups, 0.01, halves=3, seed=2,
                                             rules={"fixed": recording})
    assert len(table) == 3 and list(table["threshold"]) == [0.8] * 3
    # each half's threshold saw some sites and was judged on the others' rows only
    for half, sites in enumerate(seen):
        other = ~np.isin(groups, list(sites))
        expected = np.mean(scores[other & (sources == "a")] >= 0.8)
        assert 0 < len(sites) < 300 and table.loc[half, "fpr:a"] == expected
        assert table.loc[half, "recall"] == np.mean(scores[other & (y == 1)] >= 0.8)
    assert (table["worst_fpr"] == table[["fpr:a", "fpr:b"]].max(axis=1)).all()
    again = threshold_stability.split_halves(y, scores, sources, groups, 0.01, halves=3, seed=2)
    assert again.equals(threshold_stability.split_halves(y, scores, sources, groups, 0.01, halves=3, seed=2))
    assert set(threshold_stability.summary(again).index) == set(threshold_stability.RULES)
