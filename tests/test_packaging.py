"""Packaging: pyproject.toml declares the dependencies, requirements.lock pins everything they pull in with
hashes (what `make setup` installs), requirements-serve.lock is the service's share at the same versions
(what the image installs). A pin edited in pyproject.toml without `make lock` fails here, offline; a lock
that re-resolving would change fails the last test, which needs the package index (skipped without it)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOCK_FILES = ("requirements.lock", "requirements-serve.lock")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;]+)\s*(?:;\s*(.+))?$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """{package: (version, hashes)} from a hash-pinned requirements file (continuation lines joined)."""
    entries = {}
    for entry in re.sub(r"\\\n", " ", text).splitlines():
        if not entry.strip() or entry.lstrip().startswith("#"):
            continue
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", entry)
        assert match, f"not an exact pin: {entry[:80]}"
        hashes = frozenset(re.findall(r"--hash=sha256:([0-9a-f]{64})", entry))
        assert hashes, f"no hash for {match.group(1)}"
        entries[canonical(match.group(1))] = (match.group(2), hashes)
    return entries


def declared(pyproject: dict) -> list[str]:
    project = pyproject["project"]
    return [*project["dependencies"], *(r for extra in project.get("optional-dependencies", {}).values()
                                          for r in extra)]


def test_locked_requirements_parse_with_hashes() -> None:
    entry = "a==1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n    # via b\n"
    assert locked(entry) == {"a": ("1.0", frozenset(["0" * 64]))}
    with pytest.raises(AssertionError, match="no hash"):
        locked("a==1.0\n")
    with pytest.raises(AssertionError, match="exact pin"):
        locked("a>=1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")


def test_every_declared_dependency_is_pinned_and_locked_at_that_version() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    lock = locked((REPO / "requirements.lock").read_text())
    for requirement in declared(pyproject):
        match = PIN.match(requirement)
        assert match, f"pyproject.toml: {requirement!r} is not pinned exactly (name==version)"
        name, version = canonical(match.group(1)), match.group(3)
        assert name in lock, f"{name} is declared in pyproject.toml but not in requirements.lock: run `make lock`"
        assert lock[name][0] == version, (f"{name}: pyproject.toml pins {version}, requirements.lock "
                                          f"{lock[name][0]}: run `make lock`")


def test_nothing_unused_or_duplicated_is_declared() -> None:
    names = [canonical(PIN.match(r).group(1)) for r in declared(tomllib.loads((REPO / "pyproject.toml").read_text()))]
    assert len(names) == len(set(names)), "a package is declared twice"
    # matplotlib: nothing imports it; dvc-s3 comes with dvc[s3]; llvmlite with numba (never pin what a
    # dependency already pins)
    assert not {"matplotlib", "dvc-s3", "llvmlite"} & set(names)
    assert not (REPO / "requirements.txt").exists(), "requirements.lock replaced requirements.txt"


def test_the_service_lock_is_a_subset_of_the_main_lock() -> None:
    main = locked((REPO / "requirements.lock").read_text())
    serve = locked((REPO / "requirements-serve.lock").read_text())
    assert {"fastapi", "uvicorn", "scikit-learn", "lightgbm", "skops", "ada-url"} <= set(serve)
    assert not {"mlflow", "dvc", "pytest", "hydra-core"} & set(serve)  # the image carries no pipeline or tests
    for name, (version, hashes) in serve.items():
        assert name in main and main[name] == (version, hashes), f"{name} differs from requirements.lock"


def test_the_lock_is_what_resolving_pyproject_gives(tmp_path) -> None:
    """`make lock` into a scratch folder reproduces both lock files byte for byte."""
    uv = Path(sys.executable).parent / "uv"
    if not uv.exists():
        pytest.skip("uv is not installed (extra `dev`)")
    for name in ("pyproject.toml", "requirements-serve.in", *LOCK_FILES):
        shutil.copy2(REPO / name, tmp_path / name)
    result = subprocess.run(["make", "-s", "-C", str(tmp_path), "-f", str(REPO / "Makefile"), "lock", f"UV={uv}"],
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0 and re.search(r"Failed to fetch|dns error|Could not connect|connection", result.stderr,
                                            re.I):
        pytest.skip(f"the package index is unreachable: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr
    for name in LOCK_FILES:
        assert (tmp_path / name).read_text() == (REPO / name).read_text(), f"{name} is stale: run `make lock`"
