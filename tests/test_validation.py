import pandas as pd
import pytest

from cybersentinel.data.validation import DataValidationError, quality_report, url_slices, validate_table

URLS = {"name": "urls", "kind": "url", "group_by": "registered_domain", "features": []}
UCI = {"name": "uci", "kind": "tabular", "group_by": "feature_vector", "features": "all", "feature_values": [-1, 0, 1]}
SNAP = "0123456789abcdef"


def urls_table(**overrides) -> pd.DataFrame:
    table = pd.DataFrame({"url": ["http://a.com/x", "https://www.b.org/", "c.net/login", "http://a.com/x"],
                          "label": [0, 0, 1, 0], "source": ["s1", "s1", "s2", "s2"], "snapshot": SNAP})
    return table.assign(**overrides)


def test_valid_table_passes_unchanged():
    table = urls_table()
    assert validate_table(table, URLS)["url"].tolist() == table["url"].tolist()


@pytest.mark.parametrize(("column", "value", "message"), [
    ("label", [0, 2, 1, 0], "label"),
    ("url", ["http://a.com", "   ", "c.net", "d.org"], "blank URL"),
    ("url", ["http://a.com", "http://a\x00b.example/", "\x00", "d.org"], "NUL byte in URL"),
    ("snapshot", "not-a-hash", "snapshot"),
    ("label", [0, 0.5, 1, -0.9], r"'label' is not 0 or 1: 2 rows, e.g. 0.5, -0.9"),  # not truncated to 0
    ("url", ["http://a.com", None, 7, "d.org"], r"'url' is missing or not text: 2 rows, e.g. None, 7"),
])
def test_schema_violations_fail_with_a_readable_message(column, value, message):
    with pytest.raises(DataValidationError, match=message) as info:
        validate_table(urls_table(**{column: value}), URLS)
    assert "schema violations" in str(info.value)


def test_tabular_values_must_be_in_the_declared_set():
    table = pd.DataFrame({"f1": [1, 0, 5], "f2": [-1, 1, 1], "label": [0, 1, 0], "source": "uci", "snapshot": SNAP})
    with pytest.raises(DataValidationError, match="f1"):
        validate_table(table, UCI)


def test_quality_report_counts_duplicates_conflicts_and_overlap():
    table = urls_table(url=["http://a.com/x", "https://www.b.org/", "c.net/login", "A.com/x/"], label=[0, 0, 1, 1])
    report = quality_report(table, URLS)
    assert report["rows"] == 4
    assert report["exact_duplicates"] == 0
    assert report["normalised_duplicates"] == 1
    assert report["conflicting_label_keys"] == 1  # a.com/x is legitimate in s1 and phishing in s2
    assert report["keys_in_several_sources"] == 1
    sanity = report["by_source"]["s1"]["urls"]["legitimate"]
    assert sanity["https"] == 1 and sanity["leading_www"] == 1 and sanity["bare_homepage"] == 1


def test_url_slices_partition_the_rows():
    slices = url_slices(pd.Series(["http://a.com/", "https://www.b.org/x?y", "c.net"]))
    assert slices["bare_homepage"].tolist() == [True, False, True]
    assert (slices["bare_homepage"] ^ slices["with_path"]).all()
    assert slices["https"].tolist() == [False, True, False]
    assert slices["no_scheme"].tolist() == [False, False, True]
