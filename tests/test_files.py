"""Outputs are written atomically with the mode the umask allows (0644 by default), not mkstemp's 0600: the
resolver, web server or container user that reads a model, feed or rule file runs as another user."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

WRITE = """
import os, sys
os.umask(int(sys.argv[1], 8))
import pandas as pd
from cybersentinel.core.files import atomic_path, write_json, write_parquet
out = sys.argv[2]
write_json(out + "/a.json", {"a": 1})
write_parquet(out + "/b.parquet", pd.DataFrame({"url": ["x"]}))
with atomic_path(out + "/sub/c.txt") as tmp:
    tmp.write_text("c")
"""


@pytest.mark.parametrize(("umask", "mode"), [("022", 0o644), ("027", 0o640), ("077", 0o600)])
def test_outputs_get_the_mode_the_umask_allows(tmp_path: Path, umask: str, mode: int) -> None:
    subprocess.run([sys.executable, "-c", WRITE, umask, str(tmp_path)], check=True)
    for name in ("a.json", "b.parquet", "sub/c.txt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name
    assert not list(tmp_path.rglob(".*.tmp"))  # no temporary file left behind


@pytest.mark.slow
def test_pipeline_outputs_are_readable_by_other_users(sample_repo: Path) -> None:
    """The model and feature files the pipeline wrote (under the tests' umask) are as readable as it allows."""
    from cybersentinel.core.files import UMASK

    files = [p for folder in ("models", "data/features") for p in (sample_repo / folder).rglob("*") if p.is_file()]
    assert any(p.name == "model.skops" for p in files)
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o666 & ~UMASK, path


def test_an_output_is_what_its_path_names(tmp_path: Path) -> None:
    """A device (or FIFO) is written to, not replaced by a file; a directory is refused before anything is
    written; a link to a file is replaced by the new file and its target (say, a DVC cache file) left alone."""
    import stat

    from cybersentinel.core.files import atomic_path

    with atomic_path(os.devnull) as target:  # renamed onto, /dev/null would become a regular file
        assert str(target) == os.devnull
        target.write_text("discarded")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"), atomic_path(folder):
        pytest.fail("the block must not run")
    assert list(folder.iterdir()) == []
    cached = tmp_path / "cache-file"
    cached.write_text("cached")
    (tmp_path / "link.csv").symlink_to(cached)
    with atomic_path(tmp_path / "link.csv") as tmp:
        tmp.write_text("new")
    assert not (tmp_path / "link.csv").is_symlink() and (tmp_path / "link.csv").read_text() == "new"
    assert cached.read_text() == "cached"


def test_rewriting_a_file_keeps_its_mode_and_a_new_file_gets_the_umasks(tmp_path: Path) -> None:
    """`predict -o keep.csv` made a 0640 output 0644: every rewrite applied the umask. A file that is there keeps
    its mode (narrower or wider); a new one, or one replacing a link (its read-only target is not the file
    written), gets the umask's."""
    from cybersentinel.core.files import UMASK, atomic_path

    for mode in (0o640, 0o600, 0o664):
        kept = tmp_path / f"keep-{mode:o}.csv"
        kept.write_text("old")
        kept.chmod(mode)
        with atomic_path(kept) as tmp:
            tmp.write_text("new")
        assert kept.read_text() == "new" and kept.stat().st_mode & 0o777 == mode
    cached = tmp_path / "cache-file"
    cached.write_text("cached")
    cached.chmod(0o444)
    (tmp_path / "link.csv").symlink_to(cached)
    for name in ("new.csv", "link.csv"):
        with atomic_path(tmp_path / name) as tmp:
            tmp.write_text("new")
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~UMASK, name
    assert cached.stat().st_mode & 0o777 == 0o444


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder where no file can be made: one without write permission, or /sys for root (who may write in
    the first anyway); a skip if there is none."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    for candidate in (folder, Path("/sys")):
        try:
            (candidate / ".probe").touch()
        except OSError:
            return candidate
        (candidate / ".probe").unlink()
    pytest.skip("no folder here refuses new files")


def test_a_file_that_cannot_be_made_is_named_not_its_temporary_file(tmp_path: Path) -> None:
    """The error named the temporary file (``/sys/.x.csv.5pjkuh4s.tmp: permission denied``), not the file."""
    from cybersentinel.core.files import atomic_path

    target = unwritable_folder(tmp_path) / "out.csv"
    with pytest.raises(OSError) as raised, atomic_path(target) as tmp:
        tmp.write_text("written")
    assert raised.value.filename == str(target) and ".tmp" not in str(raised.value), raised.value
