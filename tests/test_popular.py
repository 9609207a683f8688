"""The popular sites the policy discounts: the registered domains in the Tranco top N."""

from __future__ import annotations

from cybersentinel.intel.popular import popular_sites, read_popular_sites


def test_popular_sites_keeps_the_top_with_the_better_rank():
    ranked = [("google.com", 1), ("weebly.com", 2), ("example.org", 3), ("google.com", 7), ("rare.example", 50)]
    assert popular_sites(ranked, 10) == {"google.com": 1, "weebly.com": 2, "example.org": 3}
    assert popular_sites(ranked, 100) == {"google.com": 1, "weebly.com": 2, "example.org": 3, "rare.example": 50}
    assert popular_sites([("late.example", 9), ("late.example", 2)], 5) == {"late.example": 2}
    assert popular_sites(ranked, 0) == {}


def test_read_popular_sites_reads_both_tranco_forms(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text("google.com\nweebly.com\nexample.org\n")
    ranked = tmp_path / "ranked.csv"
    ranked.write_text("1,google.com\n2,weebly.com\n3,example.org\n")
    for path in (plain, ranked):
        assert read_popular_sites(path, 2) == {"google.com": 1, "weebly.com": 2}
