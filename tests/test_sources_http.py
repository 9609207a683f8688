"""The `files` source over HTTP, against a local server on 127.0.0.1: 429/5xx, slow, cut-short and
wrong-checksum replies are retried a bounded number of times and never leave a partial file behind."""

from __future__ import annotations

import hashlib
import json

import pytest
from fixtures_http import Reply

from cybersentinel.ingest.base import SourceError
from cybersentinel.ingest.files import MIRROR_ENV, download, http_session, read_source

pytest_plugins = ["fixtures_http"]

BODY = json.dumps([f"http://site{i}.example/path" for i in range(2000)]).encode()
SHA = hashlib.sha256(BODY).hexdigest()


def quick_session():
    return http_session(retries=2, backoff=0.0)


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("fault", [
    Reply(429, b"slow down", {"Retry-After": "0"}),
    Reply(503, b"try later"),
    Reply(200, BODY, delay=2.0),
    Reply(200, BODY, truncate=True),
    Reply(200, BODY[:-10] + b"corrupted!"),
], ids=["429", "503", "slow", "truncated", "wrong-checksum"])
def test_a_fault_once_is_retried_and_the_file_arrives_whole(http_server, tmp_path, fault):
    url = http_server.script("/data.json", fault, Reply(200, BODY))
    path = download(url, tmp_path / "data.json", SHA, session=quick_session(), timeout=1.0)
    assert path.read_bytes() == BODY and leftovers(tmp_path) == ["data.json"]
    assert http_server.hits("/data.json") == 2


def test_a_servers_retry_after_buys_at_most_the_capped_wait(http_server, tmp_path, monkeypatch):
    import time

    from cybersentinel.core import retry

    monkeypatch.setattr(retry, "MAX_RETRY_AFTER_S", 0.2)  # 30 s in use; a day asked is what the cap is for
    url = http_server.script("/data.json", Reply(503, b"later", {"Retry-After": "86400"}), Reply(200, BODY))
    started = time.monotonic()
    assert download(url, tmp_path / "data.json", SHA, session=quick_session()).read_bytes() == BODY
    assert time.monotonic() - started < 5


def test_a_wrong_checksum_that_persists_is_an_error_and_leaves_nothing(http_server, tmp_path):
    url = http_server.script("/data.json", Reply(200, b"[]"))
    with pytest.raises(SourceError, match=r"checksum mismatch .* \(gave up after 3 attempts\)"):
        download(url, tmp_path / "data.json", SHA, session=quick_session())
    assert leftovers(tmp_path) == [] and http_server.hits("/data.json") == 3


def test_a_truncated_body_that_persists_is_an_error_and_leaves_nothing(http_server, tmp_path):
    url = http_server.script("/data.json", Reply(200, BODY, truncate=True))
    with pytest.raises(SourceError, match=r"cut short.*\(gave up after 3 attempts\)"):
        download(url, tmp_path / "data.json", SHA, session=quick_session())
    assert leftovers(tmp_path) == []


def test_a_body_past_the_files_byte_cap_fails_at_once_and_leaves_nothing(http_server, tmp_path):
    """A server that never stops sending had filled the disk: the checksum is only known at the end."""
    url = http_server.script("/data.json", Reply(200, BODY))
    with pytest.raises(SourceError, match=r"data\.json: download from .* is larger than its cap of 1,000 bytes"):
        download(url, tmp_path / "data.json", SHA, session=quick_session(), max_bytes=1_000)
    assert leftovers(tmp_path) == [] and http_server.hits("/data.json") == 1  # not retried


def test_a_trickled_body_fails_at_the_files_deadline_and_leaves_nothing(http_server, tmp_path):
    """Each read within `timeout`, the whole never done: the file's deadline ends it."""
    import time

    url = http_server.script("/data.json", Reply(200, BODY, trickle=0.05))
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"data\.json: download from .* still arriving at its deadline"):
        download(url, tmp_path / "data.json", SHA, session=quick_session(), timeout=1.0, deadline_s=1.0)
    assert time.monotonic() - started < 3 and leftovers(tmp_path) == []


def test_server_errors_that_persist_are_an_error_after_the_session_retries(http_server, tmp_path):
    url = http_server.script("/data.json", Reply(500, b"boom"))
    with pytest.raises(SourceError, match="HTTP 500 from "):
        download(url, tmp_path / "data.json", SHA, session=quick_session())
    assert leftovers(tmp_path) == [] and http_server.hits("/data.json") == 3  # 1 + 2 retries


def test_a_missing_file_is_not_retried(http_server, tmp_path):
    url = http_server.script("/data.json", Reply(404, b"no such file"))
    with pytest.raises(SourceError, match="HTTP 404"):
        download(url, tmp_path / "data.json", SHA, session=quick_session())
    assert http_server.hits("/data.json") == 1


def test_read_source_downloads_when_no_mirror_is_set(http_server, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    url = http_server.script("/phish.json", Reply(200, BODY))
    source = {"name": "toy", "reader": "json_list",
              "files": [{"name": "phish.json", "url": url, "sha256": SHA, "label": 1}]}
    table = read_source(source)
    assert len(table) == 2000 and set(table["label"]) == {1} and set(table["snapshot"]) == {SHA[:16]}
