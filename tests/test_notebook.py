"""The EDA notebook runs headless, top to bottom, on the real data (via the mirror)."""

from pathlib import Path

import nbformat
import pytest
from fixtures_pipeline import REPO, mirror_dir
from nbclient import NotebookClient


@pytest.mark.slow
def test_eda_notebook_executes(monkeypatch):
    monkeypatch.setenv("CYBERSENTINEL_DATA_MIRROR", str(mirror_dir()))
    notebook = nbformat.read(REPO / "notebooks" / "eda.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(Path(REPO, "notebooks"))}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "normalised URLs appear in both collections" in text
