"""`dvc plots show --html-template plots/offline.html` works without a network: the inline scripts are the
recorded npm builds, the page DVC writes references no external URL, and Chromium draws every plot of dvc.yaml
with every non-local request refused. Runs on a throwaway DVC repository with the project's plot definitions,
templates and a few rows of plot data."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_web_page import CHROMIUM, CHROMIUM_ARGS, MISSING

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "plots" / "offline.html"
EXTERNAL = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.I)

ROWS = {  # a few rows of each plot file, in the shapes stages/evaluate.py and stages/generalise.py write
    "reports/plots/roc.json": [{"fpr": f, "tpr": t} for f, t in ((0.0, 0.3), (0.0005, 0.5), (0.01, 0.8), (1.0, 1.0))],
    "reports/plots/pr.json": [{"recall": r, "precision": p} for r, p in ((0.0, 1.0), (0.6, 0.99), (1.0, 0.5))],
    "reports/plots/calibration.json": [{"predicted": p, "observed": p * 0.9} for p in (0.05, 0.3, 0.6, 0.95)],
    "reports/plots/confusion.json": [{"actual": a, "predicted": p} for a, p in
                                     (("phishing", "phishing"),) * 3 + (("legitimate", "legitimate"),) * 2
                                     + (("phishing", "legitimate"),)],
    # four bars each: a bar chart's height follows its rows, and two bars drew under 100 px in Chromium 150
    "reports/plots/importance.json": [{"feature": f, "importance": v} for f, v in (("a", 0.2), ("b", 0.05),
                                                                                    ("c", 0.03), ("d", 0.01))],
    "reports/generalisation_plot.json": [{"collection": c, "roc_auc": v, "tpr_at_1pct_fpr": v - 0.3}
                                         for c, v in (("w", 0.91), ("x", 0.93), ("y", 0.97), ("z", 0.98))],
}


def test_inline_scripts_are_the_recorded_npm_builds() -> None:
    table = re.findall(r"^\| (\S+) \| (\S+) \| `[^`]+` \| `([0-9a-f]{64})` \|$",
                       (REPO / "plots" / "README.md").read_text(), re.M)
    recorded = {f"{name}@{version}": digest for name, version, digest in table}
    inline = {m.group(1): hashlib.sha256(m.group(2).encode()).hexdigest() for m in
              re.finditer(r"<script>/\* (\S+) \S+ \*/\n(.*?)\n</script>", TEMPLATE.read_text(), re.S)}
    assert set(recorded) == set(inline) == {"vega@5.33.1", "vega-lite@5.23.0", "vega-embed@6.29.0"}
    assert inline == recorded
    assert not EXTERNAL.search(TEMPLATE.read_text()) and "{plot_divs}" in TEMPLATE.read_text()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dvc plots show with the offline template, in a throwaway repository; returns the page."""
    repo = tmp_path_factory.mktemp("plots-repo")
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=repo, check=True)
    shutil.copytree(REPO / ".dvc" / "plots", repo / ".dvc" / "plots")
    plots = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"plots": plots}))
    files = {file for entry in plots for spec in entry.values() for file in spec["y"]}
    assert files == set(ROWS), "dvc.yaml plots a file this test does not know: add rows for it"
    for name, rows in ROWS.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(json.dumps(rows))
    result = subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "--html-template", str(TEMPLATE),
                             "-o", "out"], cwd=repo, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return repo / "out" / "index.html"


def test_the_page_references_no_external_url(rendered: Path) -> None:
    html = rendered.read_text()
    assert "vegaEmbed(" in html and "cdn.jsdelivr" not in html
    assert not EXTERNAL.search(html)


def test_specs_draw_what_a_reviewer_needs(rendered: Path) -> None:
    specs = [json.loads(m) for m in re.findall(r"var spec = (\{.*?\});\n", rendered.read_text(), re.S)]
    by_title = {spec["title"]["text"] if isinstance(spec["title"], dict) else spec["title"]: spec for spec in specs}
    assert by_title["ROC"]["encoding"]["x"]["scale"]["type"] == "log"  # the 0.1%-1% false-positive region
    assert next(p for p in by_title["Confusion-Matrix"]["params"] if p["name"] == "showValues")["value"] is True
    assert by_title["Feature-Importance"]["encoding"]["y"]["sort"] == "-x"


@pytest.mark.slow
@pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
def test_chromium_draws_every_plot_offline(rendered: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            elsewhere: list[str] = []
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:"))
                       else (elsewhere.append(route.request.url), route.abort()))
            page.goto(rendered.as_uri())
            drawn = page.locator(".vega-embed canvas, .vega-embed svg.marks")
            drawn.nth(len(ROWS) - 1).wait_for(timeout=30_000)
            assert drawn.count() == len(ROWS)
            assert all(box["width"] > 100 and box["height"] > 100
                       for box in (drawn.nth(i).bounding_box() for i in range(drawn.count())))
            page.screenshot(path=str(rendered.parent / "plots.png"), full_page=True)
            assert elsewhere == [] and errors == [], (elsewhere, errors)
        finally:
            browser.close()
