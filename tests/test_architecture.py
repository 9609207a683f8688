"""The package's shape is checked, not just described: imports point one way (import-linter's contracts in
pyproject.toml), and every pipeline stage declares as DVC dependencies exactly the package code it imports,
so editing a module reruns the stages that use it and no others."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "cybersentinel"


def imported_modules(script: Path, graph: grimp.ImportGraph) -> set[str]:
    """Package modules a stage script imports, directly or through other package modules (function-level
    imports included: they run when the stage runs)."""
    direct = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cybersentinel"):
            direct.add(node.module)
        elif isinstance(node, ast.Import):
            direct.update(a.name for a in node.names if a.name.startswith("cybersentinel"))
    seen: set[str] = set()
    for module in direct:
        seen |= {module} | graph.find_upstream_modules(module)
    # a module's import also runs its parent packages' __init__
    for module in list(seen):
        parts = module.split(".")
        seen.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return {m for m in seen if m.startswith("cybersentinel")}


def has_code(path: Path) -> bool:
    """False for a package marker that holds only a docstring and constants (it cannot change an output)."""
    return any(isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.ClassDef)
               for node in ast.parse(path.read_text()).body)


def module_file(module: str) -> Path:
    path = ROOT / "src" / Path(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def test_import_contracts_hold():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is not installed"
    result = subprocess.run([lint, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_exactly_the_code_it_imports(stage):
    graph = grimp.build_graph("cybersentinel")
    spec = STAGES[stage]
    script = ROOT / "stages" / f"{stage}.py"
    assert f"stages/{stage}.py" in spec["deps"], f"{stage}: its own script is not a dependency"
    code_deps = [ROOT / d for d in spec["deps"] if d.startswith("src/")]
    needed = {module_file(m) for m in imported_modules(script, graph)}
    trivial = {f for f in needed if f.name == "__init__.py" and not has_code(f)}

    def covered(f: Path) -> bool:
        return any(f == d or d in f.parents for d in code_deps)

    missing = sorted(str(f.relative_to(ROOT)) for f in needed - trivial if not covered(f))
    assert not missing, f"{stage} imports code its dvc.yaml deps do not list: {missing}"
    unused = [str(d.relative_to(ROOT)) for d in code_deps if not any(f == d or d in f.parents for f in needed)]
    assert not unused, f"{stage} lists deps it never imports (editing them would rerun it for nothing): {unused}"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_stage_runs_the_code_its_deps_hash(stage):
    """A queued experiment runs in its own copy of the workspace: without `PYTHONPATH=src` its stages imported the
    editable install's `src` (the workspace's code at run time, edited since), not the copy DVC hashed."""
    assert " ".join(STAGES[stage]["cmd"].split()).startswith(f"PYTHONPATH=src python stages/{stage}.py ")
