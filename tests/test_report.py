"""The local pull-request report on a temporary git + DVC repository with two commits whose metrics differ."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cybersentinel.mlops.report import build_report, headline, markdown, named_plots

CLI = str(Path(sys.executable).parent / "cybersentinel")
GIT = ["git", "-c", "user.email=test@cybersentinel.invalid", "-c", "user.name=test"]
DVC_YAML = {
    "metrics": ["reports/metrics.json"],
    "plots": [{"ROC": {"template": "simple", "x": "fpr", "y": {"reports/plots/roc.json": "tpr"}}},
              {"Confusion-Matrix": {"template": "confusion", "x": "actual",
                                    "y": {"reports/plots/confusion.json": "predicted"}}}],
}


def write_revision(repo: Path, roc_auc: float, accuracy: float, model: str, roc: list[tuple[float, float]]) -> None:
    (repo / "reports" / "plots").mkdir(parents=True, exist_ok=True)
    metrics = {"test": {"roc_auc": roc_auc, "accuracy": accuracy, "rows": 200}, "threshold": 0.5,
               "slices": {"one_class": {"roc_auc": float("nan")}}}  # undefined in both revisions
    (repo / "reports" / "metrics.json").write_text(json.dumps(metrics))
    (repo / "reports" / "plots" / "roc.json").write_text(json.dumps([{"fpr": f, "tpr": t} for f, t in roc]))
    confusion = [{"actual": a, "predicted": p} for a, p in
                 [("phishing", "phishing")] * 3 + [("legitimate", "phishing")] + [("legitimate", "legitimate")] * 4]
    (repo / "reports" / "plots" / "confusion.json").write_text(json.dumps(confusion))
    (repo / "params.yaml").write_text(yaml.safe_dump({"model": {"name": model}, "seed": 42}))


def git(repo: Path, *args: str) -> None:
    subprocess.run([*GIT, *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture(scope="module")
def two_revisions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """main: logreg with ROC-AUC 0.91; branch `candidate` (checked out): lightgbm with ROC-AUC 0.97."""
    repo = tmp_path_factory.mktemp("report") / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    (repo / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    write_revision(repo, 0.91, 0.85, "logreg", [(0.0, 0.0), (0.2, 0.7), (1.0, 1.0)])
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline")
    git(repo, "checkout", "-q", "-b", "candidate")
    write_revision(repo, 0.97, 0.9, "lightgbm", [(0.0, 0.0), (0.1, 0.8), (1.0, 1.0)])
    git(repo, "commit", "-qam", "candidate")
    return repo


def table_row(markdown: str, first_cell: str) -> list[str]:
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row starting with {first_cell!r} in:\n{markdown}")


@pytest.fixture(scope="module")
def png_report(two_revisions: Path) -> Path:
    return build_report(two_revisions, "main", two_revisions / "out")


def test_report_tables_carry_both_revisions_numbers(png_report: Path) -> None:
    text = png_report.read_text()
    assert text.startswith("# CyberSentinel: workspace vs main (")
    assert table_row(text, "roc_auc") == ["roc_auc", "0.91000", "0.97000", "+0.06000"]
    assert table_row(text, "accuracy") == ["accuracy", "0.85000", "0.90000", "+0.05000"]
    assert re.search(r"\|\s*reports/metrics.json\s*\|\s*test.roc_auc\s*\|\s*0.91\s*\|\s*0.97\s*\|\s*0.06\s*\|", text)
    assert "| rows" not in text and "test.rows" not in text  # unchanged metrics are left out
    assert re.search(r"\|\s*params.yaml\s*\|\s*model.name\s*\|\s*logreg\s*\|\s*lightgbm\s*\|", text)
    assert "seed" not in text  # unchanged parameters are left out
    assert "nan" not in text  # DVC lists NaN -> NaN as a change; it is not one


def test_report_plots_are_local_png_images(png_report: Path) -> None:
    report = png_report
    text = report.read_text()
    images = re.findall(r"!\[[^\]]*\]\(\./([^)]+)\)", text)
    assert images == ["roc.png", "confusion-matrix.png"]  # the named plots, not per-file duplicates
    for image in images:
        assert (report.parent / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http" not in text


def test_report_svg_and_committed_target(two_revisions: Path) -> None:
    report = build_report(two_revisions, "main", two_revisions / "svg", target="candidate", fmt="svg")
    text = report.read_text()
    assert text.startswith("# CyberSentinel: candidate vs main")
    assert table_row(text, "roc_auc") == ["roc_auc", "0.91000", "0.97000", "+0.06000"]
    svg = (report.parent / "roc.svg").read_text()
    assert svg.lstrip().startswith("<svg")
    assert ">main<" in svg and ">candidate<" in svg  # the legend names both revisions: both curves are drawn


def test_report_without_changes_says_so() -> None:
    empty = "| Path   | Metric   | main   | workspace   | Change   |\n|--------|----------|--------|---------|-----|\n"
    text = markdown("main", "abc1234", "workspace", "", empty, empty.replace("Metric", "Param"), {})
    assert "No metric differs from main." in text and "No parameter differs from main." in text


def test_unknown_base_is_a_clear_error(two_revisions: Path) -> None:
    result = subprocess.run([CLI, "report", "--base", "no-such-branch"], cwd=two_revisions, capture_output=True,
                            text=True)
    assert result.returncode == 2  # a usage error, as in every command (1 is `drift`'s "drift found")
    assert "revision 'no-such-branch' not found" in result.stderr and "fetch-depth" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_target_and_a_folder_outside_git_are_clear_errors(two_revisions: Path, tmp_path: Path) -> None:
    result = subprocess.run([CLI, "report", "--target", "no-such-branch"], cwd=two_revisions, capture_output=True,
                            text=True)
    assert result.returncode == 2 and "revision 'no-such-branch' not found" in result.stderr, result.stderr
    result = subprocess.run([CLI, "report", "--repo", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert f"{tmp_path} is not a git repository" in result.stderr and "fetch" not in result.stderr
    assert "Traceback" not in result.stderr


def test_only_named_plots_are_drawn_when_dvc_yaml_names_them(tmp_path: Path) -> None:
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML))
    vega = [{"type": "vega", "revisions": ["main"], "content": {"mark": "line"}}]
    specs = {"ROC": vega, "reports/plots/roc.json": vega, "Confusion-Matrix": vega}
    assert list(named_plots(specs, tmp_path / "dvc.yaml")) == ["ROC", "Confusion-Matrix"]
    assert list(named_plots({"a.json": vega}, tmp_path / "missing.yaml")) == ["a.json"]


def test_headline_orders_and_signs_test_metrics() -> None:
    diff = {"reports/metrics.json": {"test.roc_auc": {"old": 0.9, "new": 0.85, "diff": -0.05},
                                     "by_source.a.roc_auc": {"old": 0.1, "new": 0.2, "diff": 0.1},
                                     "test.brier": {"old": 0.1, "new": 0.08, "diff": -0.02}}}
    lines = headline(diff, "main", "pr").splitlines()
    assert lines[0] == "| Test metric | main | pr | Change |"
    assert lines[2:] == ["| brier | 0.10000 | 0.08000 | -0.02000 |", "| roc_auc | 0.90000 | 0.85000 | -0.05000 |"]
