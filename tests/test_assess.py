"""`cybersentinel assess`: the figures of a labelled file `predict` scored, on tiny hand-made files and once end to
end with the test model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_model import model_dir  # noqa: F401 (a pytest fixture)
from sklearn.metrics import roc_auc_score
from test_mlops_bad_input import flat
from typer.testing import CliRunner

from cybersentinel.cli.app import app
from cybersentinel.core.files import sha256_file
from cybersentinel.model.metrics import tpr_at_fpr
from cybersentinel.ops.assessment import LEGITIMATE_LABELS, PHISHING_LABELS, assess, labels_of, read_labelled
from cybersentinel.ops.blocklist import InputError


def scored_frame() -> pd.DataFrame:
    """Eight scored rows as `predict` writes them: two collections, one row `predict` could not score."""
    return pd.DataFrame({
        "url": ["https://a.example.com/login", "https://b.example.org/", "https://c.example.net/x",
                "https://d.example.com/", "http://paypal.evil.top/", "http://203.0.113.9/wp/login.php",
                "http://kit.example.xyz/a", "http://"],
        "label": ["0", "legitimate", "0", "benign", "1", "phishing", "Malicious", "1"],
        "source": ["crawl", "crawl", "proxy", "proxy", "crawl", "proxy", "proxy", "proxy"],
        "score": ["0.99", "0.10", "0.40", "0.05", "0.999", "0.97", "0.30", ""],
        "verdict": ["malicious", "benign", "benign", "benign", "malicious", "suspicious", "benign", ""],
        "reasons": ["r1", "", "", "", "r5", "r6", "", ""],
        "model_score": ["0.99", "0.20", "0.40", "0.05", "0.999", "0.97", "0.30", ""],
        "feeds": [""] * 8,
        "error": ["", "", "", "", "", "", "", "no host"]})


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("value", "label"), [("1", 1), ("1.0", 1), (" Phishing ", 1), ("TRUE", 1), ("malware", 1),
                                              ("0", 0), ("0.0", 0), ("benign", 0), ("False", 0), ("good", 0)])
def test_labels_are_read_in_their_usual_spellings(value: str, label: int) -> None:
    assert labels_of([value], "label").tolist() == [label]
    assert labels_of(pd.Series([label], dtype=int), "label").tolist() == [label]  # Parquet: numbers, booleans
    assert labels_of([bool(label)], "label").tolist() == [label]


def test_an_unknown_or_empty_label_is_an_error_counting_each_value_not_a_dropped_row() -> None:
    with pytest.raises(InputError) as raised:
        labels_of(["1", "spam", "", "spam", None, "0"], "verdict_by_analyst")
    message = str(raised.value)
    assert "'verdict_by_analyst'" in message and "'spam' (2 rows)" in message and "'' (2 rows)" in message


def test_figures_are_the_served_and_model_rankings_and_the_shares_flagged(tmp_path: Path) -> None:
    rows = read_labelled(write(scored_frame(), tmp_path / "scored.csv"), "label", by="source")
    report = assess(rows, resamples=50, top=2)
    overall = report["overall"]
    assert overall["rows"] == 8
    assert overall["phishing"] == {"rows": 4, "unscored": 1, "malicious": 1, "suspicious": 1, "benign": 1}
    assert overall["legitimate"] == {"rows": 4, "unscored": 0, "malicious": 1, "suspicious": 0, "benign": 3}
    y = np.array([0, 0, 0, 0, 1, 1, 1])  # the unscored row is left out of every figure
    served, model = [0.99, 0.10, 0.40, 0.05, 0.999, 0.97, 0.30], [0.99, 0.20, 0.40, 0.05, 0.999, 0.97, 0.30]
    assert overall["served_roc_auc"] == round(roc_auc_score(y, served), 5)
    assert overall["model_roc_auc"] == round(roc_auc_score(y, model), 5)
    assert overall["served_tpr_at_1pct_fpr"] == round(tpr_at_fpr(y, np.array(served)), 5)
    assert overall["served_recall"] == round(1 / 3, 5) and overall["served_fpr"] == 0.25
    low, high = overall["served_roc_auc_ci"]
    assert 0 <= low <= high <= 1
    assert set(report["by"]) == {"crawl", "proxy"}
    assert report["by"]["crawl"]["served_roc_auc"] == round(roc_auc_score([0, 0, 1], [0.99, 0.10, 0.999]), 5)
    assert [row["url"] for row in report["highest_legitimate"]] == ["https://a.example.com/login",
                                                                    "https://c.example.net/x"]
    assert [row["url"] for row in report["lowest_phishing"]] == ["http://kit.example.xyz/a",
                                                                 "http://203.0.113.9/wp/login.php"]


@pytest.mark.parametrize(("label_column", "by"), [("verdict", None), ("label", "score")])
def test_a_column_predict_writes_is_refused_as_the_label_or_the_grouping(tmp_path: Path, label_column: str,
                                                                        by: str | None) -> None:
    # an input's own `verdict` column comes out as `input_verdict`; predict's verdicts taken as labels would make
    # every figure perfect
    with pytest.raises(InputError, match="is a column `predict` writes"):
        read_labelled(write(scored_frame(), tmp_path / "scored.csv"), label_column, by)


def test_one_class_gives_shares_without_a_ranking(tmp_path: Path) -> None:
    legitimate = scored_frame().iloc[:4]
    report = assess(read_labelled(write(legitimate, tmp_path / "scored.csv"), "label"), resamples=0)
    assert report["overall"]["served_fpr"] == 0.25 and "served_roc_auc" not in report["overall"]
    assert "served_fpr_ci" not in report["overall"] and report["lowest_phishing"] == []


@pytest.mark.parametrize(("change", "expected"), [
    (lambda f: f.drop(columns=["score", "verdict"]), "missing column(s) score, verdict (score the labelled file "
                                                      "with `cybersentinel predict` first"),
    (lambda f: f.drop(columns=["label"]), "missing column(s) label;"),
    (lambda f: f.assign(score=["0.99", "high", *f["score"][2:]]), "1 rows without an error have no score"),
    (lambda f: f.assign(model_score=["1.5", *f["model_score"][1:]]), "(the first: row 1 of the data"),
    (lambda f: f.iloc[:0], "no rows to assess"),
])
def test_a_file_that_is_not_a_scored_labelled_file_is_a_clear_error(tmp_path: Path, change, expected: str) -> None:
    with pytest.raises(InputError) as raised:
        read_labelled(write(change(scored_frame()), tmp_path / "scored.csv"), "label")
    assert expected in str(raised.value)


def test_assess_scores_nothing_itself_and_reads_what_predict_wrote(tmp_path: Path, model_dir: Path) -> None:  # noqa: F811
    labelled = tmp_path / "labelled.csv"
    pd.DataFrame({"url": ["https://www.wikipedia.org/", "https://github.com/", "http://paypal.com.login-verify.top/",
                          "http://198.51.100.7/secure/bank/login.php", "=HYPERLINK(\"x\")"],
                  "label": [0, 0, 1, 1, 0], "team": ["a", "b", "a", "b", "b"]}).to_csv(labelled, index=False)
    runner = CliRunner()
    for name in ("scored.csv", "scored.parquet"):
        scored = tmp_path / name
        result = runner.invoke(app, ["predict", "-i", str(labelled), "-o", str(scored), "--no-feeds",
                                     "--model-dir", str(model_dir)])
        assert result.exit_code == 0, result.output
        out = tmp_path / f"{name}.json"
        result = runner.invoke(app, ["assess", str(scored), "--by", "team", "--out", str(out), "--resamples", "20",
                                     "--model-dir", str(model_dir)], terminal_width=400)
        assert result.exit_code == 0, result.output
        assert result.output.startswith("all rows: 5 rows; phishing 2 (")
        report = json.loads(out.read_text())
        assert_names_the_model(report, model_dir)
        assert f"model {report['model_sha256'][:12]} (model.json {report['manifest_sha256'][:12]})" in result.output
        assert report["overall"]["rows"] == 5 and set(report["by"]) == {"a", "b"}
        assert report["overall"]["legitimate"]["rows"] == 3 and "served_roc_auc" in report["overall"]
        assert report["overall"]["legitimate"]["unscored"] == 1  # the formula is no URL: counted, not ranked
        assert {row["url"] for row in report["highest_legitimate"]} == {"https://www.wikipedia.org/",
                                                                        "https://github.com/"}
    bad = tmp_path / "bad.csv"
    bad.write_text((tmp_path / "scored.csv").read_text().replace(',"1",', ',"maybe",', 1))
    result = runner.invoke(app, ["assess", str(bad)], terminal_width=400)
    assert result.exit_code == 2 and "'maybe' (1 rows)" in result.output


def assert_names_the_model(report: dict, folder: Path) -> None:
    manifest = json.loads((folder / "model.json").read_text())
    assert report["model_sha256"] == manifest["sha256"] == sha256_file(folder / manifest["file"])
    assert report["manifest_sha256"] == sha256_file(folder / "model.json")  # the decision policy's too
    assert report["model_dir"] == str(folder)


def test_the_report_names_only_a_model_that_passes_its_checks(tmp_path: Path, model_dir: Path) -> None:  # noqa: F811
    """The report named no model: figures of whatever model scored the file, with nothing to tell which. Now it
    records the model folder's hashes, verified as predict verifies them, and a folder failing them is refused."""
    labelled, scored, out = tmp_path / "labelled.csv", tmp_path / "scored.csv", tmp_path / "report.json"
    scored_frame()[["url", "label"]].to_csv(labelled, index=False)
    runner = CliRunner()
    result = runner.invoke(app, ["predict", "-i", str(labelled), "-o", str(scored), "--no-feeds", "--model-dir",
                                 str(model_dir)])
    assert result.exit_code == 0, result.output
    pinned = sha256_file(model_dir / "model.json")
    result = runner.invoke(app, ["assess", str(scored), "--out", str(out), "--resamples", "0", "--model-dir",
                                 str(model_dir), "--model-sha256", pinned], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert_names_the_model(json.loads(out.read_text()), model_dir)
    out.unlink()
    refused = runner.invoke(app, ["assess", str(scored), "--out", str(out), "--model-dir", str(model_dir),
                                  "--model-sha256", "0" * 64], terminal_width=400)
    assert refused.exit_code == 2 and "is not the pinned 000000000000" in flat(refused.output), refused.output
    missing = runner.invoke(app, ["assess", str(scored), "--out", str(out), "--model-dir", str(tmp_path / "none")],
                            terminal_width=400)
    assert missing.exit_code == 2 and "cannot load the model" in flat(missing.output), missing.output
    # scores another model gave (or edited ones): the model named is refused, as it did not score the file
    other = write(scored_frame(), tmp_path / "other.csv")
    refused = runner.invoke(app, ["assess", str(other), "--out", str(out), "--model-dir", str(model_dir)],
                            terminal_width=400)
    assert refused.exit_code == 2 and "did not score this file: 7 of 7 rows" in flat(refused.output), refused.output
    assert not out.exists()


def test_a_file_predict_scored_by_another_column_is_assessed_on_that_column(tmp_path: Path, model_dir: Path) -> None:  # noqa: F811
    """``predict -c link`` of a file whose ``url`` column is something else: rescoring ``url`` had refused it as
    scored by another model; ``--column link`` reads the column scored."""
    labelled, scored = tmp_path / "labelled.csv", tmp_path / "scored.csv"
    pd.DataFrame({"url": ["https://paypal.com/", "https://www.wikipedia.org/"],
                  "link": ["http://paypal.com.login-verify.top/signin", "https://github.com/"],
                  "label": [1, 0]}).to_csv(labelled, index=False)
    runner = CliRunner()
    result = runner.invoke(app, ["predict", "-i", str(labelled), "-c", "link", "-o", str(scored), "--no-feeds",
                                 "--model-dir", str(model_dir)])
    assert result.exit_code == 0, result.output
    wrong = runner.invoke(app, ["assess", str(scored), "--resamples", "0", "--model-dir", str(model_dir)],
                          terminal_width=400)
    assert wrong.exit_code == 2 and "with --column (predict's -c)" in flat(wrong.output), wrong.output
    right = runner.invoke(app, ["assess", str(scored), "--resamples", "0", "--model-dir", str(model_dir), "-c", "link"],
                          terminal_width=400)
    assert right.exit_code == 0 and right.output.startswith("all rows: 2 rows; phishing 1 ("), right.output


def test_a_row_predict_could_not_read_is_counted_even_when_its_label_went_with_it(tmp_path: Path) -> None:
    frame = scored_frame()
    unreadable = {column: "" for column in frame.columns} | {"url": "", "error": "malformed CSV record"}
    rows = read_labelled(write(pd.concat([frame, pd.DataFrame([unreadable])]), tmp_path / "scored.csv"), "label")
    report = assess(rows, resamples=0)
    assert report["overall"]["rows"] == 9 and report["overall"]["unreadable_unlabelled"] == 1
    assert report["overall"]["phishing"]["rows"] + report["overall"]["legitimate"]["rows"] == 8
    with pytest.raises(InputError, match="'' \\(1 rows\\)"):  # without an error, an empty label is still refused
        read_labelled(write(pd.concat([frame, pd.DataFrame([unreadable | {"error": ""}])]), tmp_path / "b.csv"),
                      "label")


def test_labels_that_are_no_values_are_refused_in_one_line() -> None:
    with pytest.raises(InputError, match="neither phishing nor legitimate: '\\[1, 2\\]'"):
        labels_of([[1, 2], "1"], "label")  # a Parquet list column
    with pytest.raises(InputError, match="'' \\(1 rows\\)"):
        labels_of(pd.Series(["1", pd.NA], dtype="string"), "label")


def test_intervals_no_resample_can_measure_are_left_out_and_the_report_is_strict_json(tmp_path: Path) -> None:
    # two sites, one of each class: a draw of the same site twice holds one class and measures no ranking
    frame = scored_frame().iloc[[0, 1, 4, 5]].assign(url=["https://a.example.com/", "https://a.example.com/x",
                                                           "http://b.example.org/", "http://b.example.org/y"])
    rows = read_labelled(write(frame, tmp_path / "scored.csv"), "label")
    reports = [assess(rows, resamples=1, seed=seed)["overall"] for seed in range(10)]
    assert all("served_roc_auc" in report for report in reports)
    assert any("served_roc_auc_ci" not in report for report in reports)
    for report in reports:
        json.dumps(report, allow_nan=False)


def test_by_values_read_as_written_and_a_column_of_too_many_values_is_refused(tmp_path: Path) -> None:
    frame = scored_frame().assign(month=[1, 1, 2, 2, 1, None, 2, 1])
    frame.to_parquet(tmp_path / "scored.parquet")
    rows = read_labelled(tmp_path / "scored.parquet", "label", by="month")
    assert sorted(assess(rows, resamples=0)["by"]) == ["(empty)", "1", "2"]
    many = pd.concat([scored_frame()] * 13).assign(url=lambda f: [f"https://s{i}.example/" for i in range(len(f))])
    with pytest.raises(InputError, match="104 distinct values"):
        read_labelled(write(many, tmp_path / "many.csv"), "label", by="url")


def test_a_json_line_that_is_no_object_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "scored.jsonl"
    path.write_text('{"url": "a.com", "label": 1}\n[1, 2]\n')
    with pytest.raises(InputError, match="cannot read as jsonl"):
        read_labelled(path, "label")


def test_the_command_refuses_intervals_of_a_few_draws_and_a_report_over_its_input(tmp_path: Path) -> None:
    scored = write(scored_frame(), tmp_path / "scored.csv")
    runner = CliRunner()
    few = runner.invoke(app, ["assess", str(scored), "--resamples", "5"], terminal_width=400)
    assert few.exit_code == 2 and "at least 20" in flat(few.output)
    over = runner.invoke(app, ["assess", str(scored), "--out", str(scored)], terminal_width=400)
    assert over.exit_code == 2 and "replace the scored file" in flat(over.output)
    assert scored.read_text().startswith("url,label,source")
    listed = runner.invoke(app, ["assess", "--help"], terminal_width=400).output
    assert all(spelling in listed for spelling in PHISHING_LABELS | LEGITIMATE_LABELS)


def test_the_report_masks_the_credentials_of_the_urls_it_lists(tmp_path: Path, model_dir: Path) -> None:  # noqa: F811
    # a report is for people to read; `predict`'s output, the user's own rows, keeps URLs as given
    frame = scored_frame()
    frame.loc[0, "url"] = "https://alice:hunter2@a.example.com/login?access_token=tok123&lang=en"  # legitimate, 0.99
    frame.loc[6, "url"] = "bob:hunter3@kit.example.xyz/a?code=c0de"  # phishing, no scheme
    labelled, scored, out = tmp_path / "labelled.csv", tmp_path / "scored.csv", tmp_path / "report.json"
    frame[["url", "label"]].to_csv(labelled, index=False)
    runner = CliRunner()
    result = runner.invoke(app, ["predict", "-i", str(labelled), "-o", str(scored), "--no-feeds", "--model-dir",
                                 str(model_dir)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["assess", str(scored), "--out", str(out), "--resamples", "0", "--model-dir",
                                 str(model_dir)], terminal_width=400)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())  # every scored row of each class is listed (fewer than --top)
    assert "https://alice:***@a.example.com/login?access_token=***&lang=en" in \
        {row["url"] for row in report["highest_legitimate"]}
    assert "bob:***@kit.example.xyz/a?code=***" in {row["url"] for row in report["lowest_phishing"]}
    assert not any(secret in out.read_text() + result.output for secret in ("hunter", "tok123", "c0de"))
    assert "hunter2" in scored.read_text()  # the scored file itself is left as it was
