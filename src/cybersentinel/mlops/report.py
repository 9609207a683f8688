"""The pull-request report, built locally and offline: `dvc metrics diff` and `dvc params diff` against a
base revision as markdown, and the pipeline's plots with both revisions drawn together as PNG or SVG.

DVC's own HTML plots page loads vega from a CDN; here `dvc plots diff --json` supplies the filled-in
vega-lite specs and vl-convert (a bundled renderer, no network) draws them. CI posts the same markdown
with `cml comment create`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path("reports/tmp/pr")  # git-ignored


class ReportError(RuntimeError):
    """A revision or DVC command the report needs failed; the message says which."""


def dvc(repo: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        raise ReportError(f"`dvc {' '.join(args)}` failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    except FileNotFoundError as err:  # no git on PATH
        raise ReportError(f"cannot run git: {err}") from err


def check_repo(repo: Path) -> None:
    """Checked first: otherwise every revision would be "not found", and the advice to fetch it would mislead."""
    if git(repo, "rev-parse", "--git-dir").returncode != 0:
        raise ReportError(f"{repo} is not a git repository: run the report in the project's checkout or name it "
                          "with --repo")


def resolve_rev(repo: Path, rev: str) -> str:
    result = git(repo, "rev-parse", "--short", f"{rev}^{{commit}}")
    if result.returncode != 0:
        raise ReportError(f"revision {rev!r} not found in {repo}: fetch it first (in CI, check out with "
                          "fetch-depth: 0 or `git fetch origin main:main`)")
    return result.stdout.strip()


def metrics_files(dvc_yaml: Path) -> list[str]:
    """The metrics files dvc.yaml declares: its top-level ``metrics`` and every stage's ``metrics`` outputs."""
    import yaml

    try:
        pipeline = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) if dvc_yaml.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ReportError(f"cannot read {dvc_yaml}: {' '.join(str(err).split())}") from None
    if not isinstance(pipeline, dict):
        return []
    entries = list(pipeline.get("metrics") or [])
    for stage in (pipeline.get("stages") or {}).values():
        if isinstance(stage, dict):
            entries += list(stage.get("metrics") or [])
    names = [name for entry in entries for name in (entry if isinstance(entry, dict) else [entry])]
    return list(dict.fromkeys(str(name) for name in names))


def check_workspace_metrics(repo: Path) -> None:
    """Each metrics file of the workspace exists and parses: DVC would show a missing or corrupt one as "-" for
    every metric, a report that looks like a run that measured nothing."""
    import yaml

    for name in metrics_files(repo / "dvc.yaml"):
        path = repo / name
        if not path.is_file():
            raise ReportError(f"{name} is missing from the workspace: run `dvc repro` (or `dvc pull`) first, or "
                              "report on a commit with --target")
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as err:
            raise ReportError(f"{name} in the workspace cannot be read as metrics "
                              f"({' '.join(str(err).split())[:200]}): run `dvc repro` to rewrite it") from None
        if not isinstance(data, dict):
            raise ReportError(f"{name} in the workspace holds a {type(data).__name__}, not an object of metrics: "
                              "run `dvc repro` to rewrite it")


def check_workspace_current(repo: Path) -> None:
    """No stage of dvc.yaml is out of date: metrics from before a change of code, parameters or data would be shown
    as the change's own (`dvc exp run ... train` leaves evaluate's metrics as they were). A stage that always runs
    (the snapshot) does not count, nor a `.dvc` file's output (data/feeds.dvc): no stage reads it, and `dvc repro`
    would not bring it back."""
    import yaml

    stages = set((yaml.safe_load((repo / "dvc.yaml").read_text()) or {}).get("stages") or {})
    status = json.loads(dvc(repo, "status", "--json") or "{}")
    stale = sorted(stage for stage, changes in status.items()
                   if stage in stages and any(change != "always changed" for change in changes))
    if stale:
        raise ReportError(f"the workspace's outputs are out of date ({', '.join(stale)} changed since they ran): run "
                          "`dvc repro` first, or report on a commit with --target")


def named_plots(specs: dict[str, list[dict[str, Any]]], dvc_yaml: Path) -> dict[str, dict[str, Any]]:
    """One vega-lite spec per plot. When dvc.yaml names plots, only those: the per-file plots DVC adds for
    a stage's plots folder repeat the same data with a default template."""
    names = set()
    if dvc_yaml.is_file():
        import yaml

        for entry in yaml.safe_load(dvc_yaml.read_text()).get("plots", []) or []:
            names |= set(entry) if isinstance(entry, dict) else {entry}
    chosen = [plot_id for plot_id in specs if plot_id in names] or list(specs)
    return {plot_id: specs[plot_id][0]["content"] for plot_id in chosen
            if specs[plot_id] and specs[plot_id][0].get("type") == "vega" and specs[plot_id][0].get("content")}


def slug(plot_id: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", plot_id.lower()).strip("-") or "plot"


def render(spec: dict[str, Any], fmt: str) -> bytes:
    import vl_convert as vlc

    if fmt == "svg":
        return vlc.vegalite_to_svg(spec).encode()
    return vlc.vegalite_to_png(spec, scale=1.5)


def headline(diff: dict[str, dict[str, dict[str, Any]]], base: str, target: str, prefix: str = "test.") -> str:
    """The held-out test metrics that changed, first; ``diff`` is `dvc metrics diff --json` output."""
    rows = [f"| {key.removeprefix(prefix)} | {_fmt(change.get('old'))} | {_fmt(change.get('new'))} | "
            f"{_fmt(change.get('diff'), signed=True)} |"
            for metrics in diff.values() for key, change in sorted(metrics.items())
            if key.startswith(prefix) and not (_is_nan(change.get("old")) and _is_nan(change.get("new")))]
    if not rows:
        return ""
    return "\n".join([f"| Test metric | {base} | {target} | Change |", "|---|---|---|---|", *rows])


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def _fmt(value: Any, signed: bool = False) -> str:
    if isinstance(value, float):
        return f"{value:+.5f}" if signed else f"{value:.5f}"
    return "-" if value is None else str(value)


def drop_unchanged_nan_rows(table_md: str) -> str:
    """DVC lists a metric that is NaN in both revisions as changed (NaN != NaN); it did not change."""
    def unchanged(line: str) -> bool:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        return len(cells) == 5 and cells[2] == cells[3] == "nan"

    return "\n".join(line for line in table_md.splitlines() if not unchanged(line))


def has_rows(table_md: str) -> bool:
    """DVC prints a bare header when nothing differs."""
    return sum(line.startswith("|") for line in table_md.splitlines()) > 2


def markdown(base: str, base_sha: str, target: str, headline_md: str, metrics_md: str, params_md: str,
             images: dict[str, str]) -> str:
    """The report body; image links are relative so CML uploads them with the comment."""
    lines = [f"# CyberSentinel: {target} vs {base} ({base_sha})", "", "## Metrics", ""]
    if has_rows(metrics_md):
        lines += [headline_md, ""] if headline_md else []
        lines += ["<details><summary>Every changed metric (dvc metrics diff)</summary>", "", metrics_md.strip(), "",
                  "</details>", ""]
    else:
        lines += [f"No metric differs from {base}.", ""]
    params_text = params_md.strip() if has_rows(params_md) else f"No parameter differs from {base}."
    lines += ["## Parameters", "", params_text, "", "## Plots", ""]
    for plot_id, file in images.items():
        lines += [f"### {plot_id}", "", f"![{plot_id}](./{file})", ""]
    if not images:
        lines += ["No plots found.", ""]
    return "\n".join(lines)


def build_report(repo: Path, base: str, out: Path, target: str | None = None, fmt: str = "png") -> Path:
    """Write ``out/report.md`` and one image per plot; return the markdown's path."""
    from cybersentinel.core.files import atomic_path

    check_repo(repo)
    base_sha = resolve_rev(repo, base)
    if target:
        resolve_rev(repo, target)  # a clear message before DVC's
    else:
        check_workspace_metrics(repo)
        check_workspace_current(repo)
    revs = [base, *([target] if target else [])]
    commands = {"metrics_md": ("metrics", "diff", "--md", *revs), "metrics": ("metrics", "diff", "--json", *revs),
                "params_md": ("params", "diff", "--md", *revs),
                "plots": ("plots", "diff", "--json", *([target] if target else []), base)}
    with ThreadPoolExecutor(len(commands)) as pool:  # four DVC start-ups at once
        running = {key: pool.submit(dvc, repo, *args) for key, args in commands.items()}
        out_of = {key: future.result() for key, future in running.items()}
    metrics_md, params_md = drop_unchanged_nan_rows(out_of["metrics_md"]), out_of["params_md"]
    metrics_json = json.loads(out_of["metrics"] or "{}")
    specs = json.loads(out_of["plots"] or "{}")
    images = {}
    for plot_id, spec in named_plots(specs.get("data", {}), repo / "dvc.yaml").items():
        file = f"{slug(plot_id)}.{fmt}"
        with atomic_path(out / file) as tmp:
            tmp.write_bytes(render(spec, fmt))
        images[plot_id] = file
    report = out / "report.md"
    with atomic_path(report) as tmp:
        tmp.write_text(markdown(base, base_sha, target or "workspace",
                               headline(metrics_json, base, target or "workspace"), metrics_md, params_md, images))
    return report
