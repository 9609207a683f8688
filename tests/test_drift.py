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
