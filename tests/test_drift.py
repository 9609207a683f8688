"""`cybersentinel drift` on real shift: the small test model is trained on Ebbu2017 (2017). Traffic from the
2024-2026 collections (Phishing.Database's phishing, the 2026 account pages) must be reported as drift (exit 1);
a held-out sample of Ebbu2017 itself, rows the model never saw, must not (exit 0). Also through the decision log:
the service logs what it scored, and `drift` reads a time window of it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from fixtures_model import REPO, ROWS_PER_CLASS, mirror_dir, model_dir  # noqa: F401
from typer.testing import CliRunner

from cybersentinel.cli.app import app
from cybersentinel.core.config import dataset_sources
from cybersentinel.data.prepare import deduplicate
from cybersentinel.ingest.files import COLLECTIONS_ENV, read_source
from cybersentinel.ops.service import Settings, create_app

ROWS = 1000


COLLECTIONS = Path(os.environ.get(COLLECTIONS_ENV) or REPO.parent / "shared" / "data" / "collections")


@pytest.fixture(autouse=True)
def collections_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COLLECTIONS_ENV, str(COLLECTIONS))


def collection(name: str) -> pd.DataFrame:
    source = yaml.safe_load((REPO / "conf" / "collection" / f"{name}.yaml").read_text())
    if source["files"][0].get("collection") and not (COLLECTIONS / source["files"][0]["name"]).is_file():
        pytest.skip(f"no collection {name} in {COLLECTIONS} (set {COLLECTIONS_ENV})")
    return read_source(dataset_sources({"sources": [source]})[0], str(mirror_dir()))


def held_out_ebbu2017() -> pd.DataFrame:
    """Ebbu2017 rows the fixture's model was not trained on (it samples ROWS_PER_CLASS per class, seed 0, from the
    de-duplicated table), in the same class mix."""
    dataset = {"name": "ebbu2017", "kind": "url", "group_by": "registered_domain"}
    table, _ = deduplicate(collection("ebbu2017"), dataset)
    trained = table.groupby("label").sample(n=ROWS_PER_CLASS, random_state=0).index
    return table.drop(trained).groupby("label").sample(n=ROWS // 2, random_state=1)


def newer_traffic() -> pd.DataFrame:
    phishing = collection("phishing_database_2024_2026").sample(n=ROWS // 2, random_state=1)
    legitimate = collection("account_pages_2026")
    legitimate = legitimate[legitimate["label"] == 0].sample(n=ROWS // 2, random_state=1)
    return pd.concat([phishing, legitimate], ignore_index=True)


def run_drift(*args: str) -> tuple[int, str]:
    """Exit code and output (rich's error box and line wrapping removed)."""
    result = CliRunner().invoke(app, ["drift", *args], terminal_width=400)
    return result.exit_code, " ".join(re.sub(r"[\u2500-\u257f]", " ", result.output).split())


def test_newer_collections_drift_and_held_out_rows_do_not(tmp_path: Path, model_dir: Path) -> None:  # noqa: F811
    held_out = tmp_path / "held_out.csv"
    held_out_ebbu2017()[["url"]].to_csv(held_out, index=False)
    newer = tmp_path / "newer.parquet"
    newer_traffic()[["url"]].to_parquet(newer)

    code, output = run_drift("--current", str(held_out), "--model-dir", str(model_dir), "--out", str(tmp_path / "a"))
    figures = json.loads((tmp_path / "a" / "drift.json").read_text())
    assert code == 0, output
    assert not figures["drift"] and figures["rows"] == ROWS and figures["share_no_model_score"] == 0
    assert figures["score"]["psi"] < 0.1

    code, output = run_drift("--current", str(newer), "--model-dir", str(model_dir), "--out", str(tmp_path / "b"))
    figures = json.loads((tmp_path / "b" / "drift.json").read_text())
    assert code == 1, output
    assert figures["drift"] and figures["drifted_features"] and figures["alarms"]
    page = (tmp_path / "b" / "drift.html").read_text()
    assert "DRIFT" in page and page.count("<svg ") == 2 + 6  # score, PSI per feature, the six most drifted
    assert "<script" not in page and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "DRIFT" in output


def test_drift_reads_a_window_of_the_services_decision_log(tmp_path: Path, model_dir: Path) -> None:  # noqa: F811
    folder = tmp_path / "decisions"
    app = create_app(Settings(model_dir=model_dir, feeds_dir=None, decision_log=folder))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        urls = newer_traffic()["url"].tolist()
        for start in range(0, len(urls), 250):
            assert client.post("/v1/score", json={"urls": urls[start:start + 250]}).status_code == 200
    code, output = run_drift("--current", str(folder), "--last", "1h", "--model-dir", str(model_dir),
                             "--out", str(tmp_path / "out"))
    figures = json.loads((tmp_path / "out" / "drift.json").read_text())
    assert code == 1, output
    assert figures["rows"] == ROWS and figures["scores_recorded"] and figures["other_model_rows"] == 0
    code, output = run_drift("--current", str(folder), "--since", "2000-01-01", "--until", "2000-01-02",
                             "--model-dir", str(model_dir), "--out", str(tmp_path / "empty"))
    assert code == 2 and "no rows" in output


def test_bad_input_is_a_clear_usage_error(tmp_path: Path, model_dir: Path) -> None:  # noqa: F811
    no_url = tmp_path / "x.csv"
    no_url.write_text("host\nexample.com\n")
    code, output = run_drift("--current", str(no_url), "--model-dir", str(model_dir), "--out", str(tmp_path / "o"))
    assert code == 2 and "no `url` column" in output
    assert not (tmp_path / "o").exists()
    code, output = run_drift("--current", str(no_url), "--last", "1h", "--model-dir", str(model_dir))
    assert code == 2 and "decision log folder" in output
    corrupt = tmp_path / "cut.parquet"
    corrupt.write_bytes(b"PAR1 not really parquet")
    code, output = run_drift("--current", str(corrupt), "--model-dir", str(model_dir), "--out", str(tmp_path / "o"))
    assert code == 2 and "Traceback" not in output
    code, output = run_drift("--current", str(no_url), "--model-dir", str(tmp_path), "--out", str(tmp_path / "o"))
    assert code == 2 and "manifest" in output


LAX = ("--feature-psi", "1000", "--drifted-share", "1", "--score-psi", "1000", "--flagged-delta", "1",
       "--no-score-share", "1", "--min-rows", "1")  # nothing drifts: the exit status says only whether it worked


def test_markup_in_a_path_is_printed_as_text(tmp_path: Path, model_dir: Path) -> None:  # noqa: F811
    """Rich markup in the output folder (or the traffic's path) is printed as it is: no MarkupError after the report
    is written, whose status 1 a scheduler would read as "drift found"."""
    traffic = tmp_path / "[bold]traffic.csv"
    traffic.write_text("url\nhttp://example.com/\n")
    out = tmp_path / "d[/x]"
    code, output = run_drift("--current", str(traffic), "--model-dir", str(model_dir), "--out", str(out), *LAX)
    assert code == 0, output
    assert f"{out}/drift.html" in output and "[bold]traffic.csv" in output
    assert (out / "drift.json").is_file()


def test_the_window_options_are_checked(tmp_path: Path, model_dir: Path) -> None:  # noqa: F811
    folder = tmp_path / "decisions"
    folder.mkdir()
    for span in ("99999999999d", "800000d"):
        code, output = run_drift("--current", str(folder), "--model-dir", str(model_dir), "--last", span)
        assert code == 2 and "--last" in output and "36500d" in output and "Traceback" not in output, output
    code, output = run_drift("--current", str(folder), "--model-dir", str(model_dir), "--last", "0h")
    assert code == 2 and "longer than 0" in output, output
    code, output = run_drift("--current", str(folder), "--model-dir", str(model_dir), "--since", "2001-01-01",
                             "--until", "2000-01-01")
    assert code == 2 and "--since" in output and "is not before --until" in output, output


def test_scored_files_are_read_as_predict_reads_them(tmp_path: Path, model_dir: Path) -> None:  # noqa: F811
    """An empty file is named; a byte that is not UTF-8 becomes U+FFFD (CSV, and Parquet text or bytes), as in
    `predict`, instead of rejecting the whole file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    code, output = run_drift("--current", str(empty), "--model-dir", str(model_dir))
    assert code == 2 and f"{empty}: the file is empty" in output, output
    raw = [b"http://ex\xffample.com/", b"http://example.org/a"]
    (tmp_path / "latin.csv").write_bytes(b"url,model_score\n" + raw[0] + b",\n" + raw[1] + b",0.2\n")
    pq.write_table(pa.table({"url": pa.array(raw, pa.binary())}), tmp_path / "bytes.parquet")
    pq.write_table(pa.table({"url": pa.array(raw, pa.binary()).view(pa.string())}), tmp_path / "text.parquet")
    for name in ("latin.csv", "bytes.parquet", "text.parquet"):
        code, output = run_drift("--current", str(tmp_path / name), "--model-dir", str(model_dir),
                                 "--out", str(tmp_path / name.replace(".", "_")), *LAX)
        assert code == 0, output
        assert json.loads((tmp_path / name.replace(".", "_") / "drift.json").read_text())["rows"] == 2


def test_columns_drift_cannot_use_are_clear_errors(tmp_path: Path, model_dir: Path) -> None:  # noqa: F811
    """A list-typed `url` column (refused by `predict` too), and a `model_score` that is not a number or not in
    [0, 1]: each an error naming the column (status 2), not a false alarm (status 1)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"url": pa.array([["http://example.com/"]] * 3)}), tmp_path / "list.parquet")
    pd.DataFrame({"url": ["http://example.com/", "http://example.org/"], "model_score": ["high", "0.1"]}
                 ).to_csv(tmp_path / "text.csv", index=False)
    pd.DataFrame({"url": ["http://example.com/", "http://example.org/"], "model_score": [0.1, 5.0]}
                 ).to_parquet(tmp_path / "five.parquet")
    expected = {"list.parquet": "the `url` column holds list", "text.csv": "`model_score` 'high' in data row 1 is "
                "not a number", "five.parquet": "`model_score` 5 in data row 2 is outside 0-1"}
    for name, message in expected.items():
        code, output = run_drift("--current", str(tmp_path / name), "--model-dir", str(model_dir),
                                 "--out", str(tmp_path / "o"))
        assert code == 2 and message in output, output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("rows", [5, 50])
def test_too_few_rows_are_not_judged(tmp_path: Path, model_dir: Path, rows: int) -> None:  # noqa: F811
    """5 and 50 rows of newer traffic gave DRIFT (score PSI 4.4 and 0.57): too few to judge, a status of their
    own (3), no report; --min-rows lowers the bar."""
    traffic = tmp_path / "small.csv"
    newer_traffic()[["url"]].head(rows).to_csv(traffic, index=False)
    code, output = run_drift("--current", str(traffic), "--model-dir", str(model_dir), "--out", str(tmp_path / "o"))
    assert code == 3, output
    assert f"too few rows to judge drift: {rows} rows from {traffic}, fewer than --min-rows 200" in output
    assert not (tmp_path / "o").exists()
    code, output = run_drift("--current", str(traffic), "--model-dir", str(model_dir), "--out", str(tmp_path / "o"),
                             "--min-rows", str(rows))
    assert code in (0, 1) and (tmp_path / "o" / "drift.json").is_file(), output


def test_rows_of_another_model_are_named_and_drift_has_no_column_option(
        tmp_path: Path, model_dir: Path) -> None:  # noqa: F811
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "decisions"
    folder.mkdir()
    app = create_app(Settings(model_dir=model_dir, feeds_dir=None, decision_log=folder))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.post("/v1/score", json={"urls": ["http://example.com/"]}).status_code == 200
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.json").write_text(json.dumps({**json.loads((model_dir / "model.json").read_text()),
                                                  "sha256": "f" * 64}))
    code, output = run_drift("--current", str(folder), "--last", "1h", "--model-dir", str(other))
    sha = json.loads((model_dir / "model.json").read_text())["sha256"]
    assert code == 2 and "belong to another model" in output and sha[:12] in output, output
    pq.write_table(pa.table({"url": pa.array([1, 2, 3])}), tmp_path / "int.parquet")
    code, output = run_drift("--current", str(tmp_path / "int.parquet"), "--model-dir", str(model_dir))
    assert code == 2 and "the `url` column holds int64 values, not text" in output and "--column" not in output


def test_a_csv_cell_escaped_for_spreadsheets_is_read_as_the_url_predict_scored(tmp_path: Path) -> None:
    """`predict` writes ``-x.example`` as ``'-x.example`` in CSV (formula injection); drift read the quote as part of
    the URL, and its features drifted where the same rows from Parquet did not."""
    from cybersentinel.ops.drift import read_scored_file

    scored = tmp_path / "scored.csv"
    scored.write_text("url,model_score\n\"'-x.example/a\",0.1\n\"'\tb.example\",0.2\nc.example,0.3\n")
    assert read_scored_file(scored).urls == ["-x.example/a", "\tb.example", "c.example"]
