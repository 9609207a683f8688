"""Ingest's file path: the offline mirror and the checksum, which nothing may bypass."""

import hashlib
import json

import pytest

from cybersentinel.ingest.base import SourceError, map_labels
from cybersentinel.ingest.files import read_source, upstream_file


def spec_for(path, **extra) -> dict:
    return {"name": path.name, "url": "https://example.invalid/" + path.name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), **extra}


def test_mirror_file_with_matching_checksum_is_read(tmp_path):
    (tmp_path / "phish.json").write_text(json.dumps(["a.com/login", "b.org", None]))
    source = {"name": "toy", "reader": "json_list", "files": [spec_for(tmp_path / "phish.json", label=1)]}
    table = read_source(source, mirror=str(tmp_path))
    assert table["url"].tolist() == ["a.com/login", "b.org", ""]  # no row dropped, not even a null
    assert set(table["label"]) == {1} and set(table["source"]) == {"toy"}
    assert table["snapshot"].str.len().eq(16).all()


def test_checksum_mismatch_names_the_file(tmp_path):
    (tmp_path / "data.csv").write_text("url,status\na.com,phishing\n")
    spec = spec_for(tmp_path / "data.csv")
    (tmp_path / "data.csv").write_text("url,status\na.com,legitimate\n")
    with pytest.raises(SourceError, match=r"data\.csv: checksum mismatch"), upstream_file(spec, str(tmp_path)):
        pass


def test_missing_mirror_file_is_an_error_not_a_download(tmp_path):
    spec = {"name": "absent.json", "url": "https://example.invalid/absent.json", "sha256": "0" * 64}
    with pytest.raises(SourceError, match=r"absent\.json: not found in mirror"), upstream_file(spec, str(tmp_path)):
        pass


def test_unknown_label_values_are_an_error():
    import pandas as pd

    with pytest.raises(SourceError, match="maybe"):
        map_labels(pd.Series(["phishing", "maybe"]), {"phishing": 1, "legitimate": 0}, "f.csv")


def test_unreadable_files_name_themselves(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    source = {"name": "toy", "reader": "json_list", "files": [spec_for(tmp_path / "bad.json", label=1)]}
    with pytest.raises(SourceError, match=r"bad\.json: not valid JSON"):
        read_source(source, mirror=str(tmp_path))


@pytest.mark.parametrize(("items", "message"), [
    (["http://ok.test/", 7, 1.10, True], r"3 items are not strings, the first at index 1: 7"),
    (["http://ok.test/", {"url": "http://x.test/"}], r"1 items are not strings, the first at index 1: \{"),
    (["http://ok.test/", "http://bad.test/\ud800x"], r"a lone surrogate escape \(\\ud800\)")])
def test_a_json_list_item_that_is_no_url_text_is_an_error(tmp_path, items, message):
    """A number, a boolean or an object had become text that passed validation as a URL (``1.10`` as "1.1"), and
    a lone surrogate failed the table's write after the read."""
    (tmp_path / "list.json").write_text(json.dumps(items))
    source = {"name": "toy", "reader": "json_list", "files": [spec_for(tmp_path / "list.json", label=1)]}
    with pytest.raises(SourceError, match=r"list\.json: .*" + message):
        read_source(source, mirror=str(tmp_path))
