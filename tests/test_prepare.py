import numpy as np
import pandas as pd
import pytest

from cybersentinel.data.prepare import (
    COUNTRY_HOMEPAGES,
    assign_groups,
    country_homepages,
    deduplicate,
    feature_columns,
    grouped_split,
)

URL_DATASET = {"name": "t", "kind": "url", "group_by": "registered_domain", "features": []}
TAB_DATASET = {"name": "t", "kind": "tabular", "group_by": "feature_vector", "features": "all"}


def url_table() -> pd.DataFrame:
    return pd.DataFrame({
        "url": ["http://www.a.com/", "a.com", "https://a.com/x", "b.org/login", "B.ORG/login/", "c.net"],
        "label": [0, 0, 0, 1, 1, 1],
        "source": ["s1", "s1", "s2", "s1", "s2", "s2"],
    })


def test_deduplicate_normalises_urls_and_counts_by_source():
    out, counts = deduplicate(url_table(), URL_DATASET)
    assert out["url"].tolist() == ["http://www.a.com/", "https://a.com/x", "b.org/login", "c.net"]
    assert counts == {"rows_in": 6, "duplicates_removed": 2, "duplicates_removed_s1": 1,
                      "duplicates_removed_s2": 1, "conflicting_labels_removed": 0, "rows_out": 4}


def test_a_url_listed_with_both_labels_is_dropped_not_kept_first():
    table = pd.DataFrame({"url": ["http://x.com/", "x.com", "y.com"], "label": [1, 0, 1], "source": ["a", "b", "b"]})
    out, counts = deduplicate(table, URL_DATASET)
    assert out["url"].tolist() == ["y.com"] and counts["conflicting_labels_removed"] == 2


def test_tabular_duplicates_need_same_features_and_label():
    table = pd.DataFrame({"f1": [1, 1, 1, -1], "f2": [0, 0, 0, 1], "label": [1, 1, 0, 0], "source": "s"})
    out, counts = deduplicate(table, TAB_DATASET)
    assert counts["duplicates_removed"] == 1
    groups = assign_groups(out, TAB_DATASET)
    assert groups.iloc[0] == groups.iloc[1] != groups.iloc[2]  # conflicting labels share a group


def test_feature_columns_excludes_provenance():
    table = pd.DataFrame({"url": ["x"], "f": [1.0], "label": [0], "source": ["s"], "snapshot": ["0" * 16]})
    assert feature_columns(table, TAB_DATASET) == ["f"]
    assert feature_columns(table, {"features": ["f"]}) == ["f"]


def test_grouped_split_keeps_domains_whole_stratified_and_reproducible():
    urls = [f"http://h{i % 7}.site{i % 40}.com/p{i}" for i in range(400)]
    table = pd.DataFrame({"url": urls, "label": [(i % 40) % 2 for i in range(400)]})
    groups = assign_groups(table, URL_DATASET)
    mask = grouped_split(table["label"], groups, 0.25, seed=7)
    assert not set(groups[mask]) & set(groups[~mask])
    assert 0.15 < mask.mean() < 0.35
    assert abs(table["label"][mask].mean() - 0.5) < 0.2
    assert (grouped_split(table["label"], groups, 0.25, seed=7) == mask).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compiled_stratified_group_folds_are_scikit_learns(seed):
    from sklearn.model_selection import StratifiedGroupKFold

    from cybersentinel.data.folds import CompiledStratifiedGroupKFold

    rng = np.random.default_rng(seed)
    rows = int(rng.integers(2_000, 8_000))
    groups = rng.integers(0, rows // 3, rows).astype(str)  # sites of one to a dozen URLs
    y = (rng.random(rows) < rng.uniform(0.2, 0.8)).astype(int)
    for n_splits in (3, 5):
        ours = CompiledStratifiedGroupKFold(n_splits, shuffle=True, random_state=seed).split(np.zeros(rows), y, groups)
        theirs = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed).split(np.zeros(rows), y, groups)
        for (_, a), (_, b) in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a, b)


def prepared_rows(rows: list[tuple[str, str, int, str]]) -> pd.DataFrame:
    """A prepared table of (url, registered domain, label, split) rows."""
    return pd.DataFrame({"url": [r[0] for r in rows], "group": [r[1] for r in rows], "label": [r[2] for r in rows],
                         "source": "s", "split": [r[3] for r in rows], "year": 2020.0, "synthetic": False})


def test_country_homepages_balance_an_ending_of_hacked_sites_and_leave_phishers_own_alone():
    rows = [(f"http://shop{i}.com.br/wp-content/kit/login.php", f"shop{i}.com.br", 1, "train") for i in range(3)]
    rows += [(f"http://x{i}.cn/", f"x{i}.cn", 1, "train") for i in range(3)]  # phishers' own names: root pages
    rows += [(f"http://site{i}.com/page", f"site{i}.com", 0, "train") for i in range(6)]
    rows += [("http://held.com.br/", "held.com.br", 0, "test")]
    table = prepared_rows(rows)
    popular = ["big.com.br", "held.com.br", "shop0.com.br", "other.com.br", "more.com.br", "baidu.cn", "news.com"]

    added = country_homepages(table, popular, seed=0)

    # 6 legitimate rows per 6 phishing: .com.br's 3 phishing rows need 3 legitimate ones; the list has 3 new sites
    assert sorted(added["group"]) == ["big.com.br", "more.com.br", "other.com.br"]
    assert added["url"].tolist() == [f"http://{site}/" for site in added["group"]]
    assert (added["label"] == 0).all() and added["synthetic"].all() and (added["split"] == "train").all()
    assert (added["source"] == COUNTRY_HOMEPAGES).all() and added["year"].isna().all()
    assert list(added.columns) == list(table.columns)
    assert pd.concat([table, added], ignore_index=True)["synthetic"].dtype == bool


def test_country_homepages_add_only_what_the_ending_needs_and_repeat_with_the_seed():
    rows = [(f"http://shop{i}.pl/a/b", f"shop{i}.pl", 1, "train") for i in range(2)]
    rows += [("http://firm.pl/", "firm.pl", 0, "train")]
    rows += [(f"http://site{i}.com/", f"site{i}.com", 0, "train") for i in range(3)]  # 4 legitimate per 2 phishing
    table = prepared_rows(rows)
    popular = [f"p{i}.pl" for i in range(10)]

    first = country_homepages(table, popular, seed=3)

    assert len(first) == 3  # 2 phishing rows x 2 legitimate per phishing, less the one .pl site already there
    assert first.equals(country_homepages(table, popular, seed=3))
    assert country_homepages(table, [], seed=3).empty
