"""Small file helpers: every output is written to a temporary file and renamed into place."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


def _read_umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it; restored at once (at import)
    os.umask(mask)
    return mask


UMASK = _read_umask()


class ModelIntegrityError(RuntimeError):
    """A model file does not match its recorded hash or contains types we do not trust."""


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A device, FIFO or socket (``/dev/null``, a pipe a reader waits on) is written to as it is: renaming a file
    onto it would replace the device rather than write to it. A directory is refused. A symbolic link to a file is
    replaced by the new file, its target left as it was (a link into DVC's cache must never be written through)."""
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file to write", str(path))
    if target.exists() and not target.is_file():  # a character or block device, a FIFO, a socket
        yield target
        return
    folder = next((f for f in target.parents if f.exists()), None)  # the nearest folder that is there already
    if folder is not None and not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "is a file, not a folder to write in", str(folder))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:  # name the file asked for, not the temporary one that could not be made beside it
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _mode_for(target))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _mode_for(target: Path) -> int:
    """The new file's mode: the file it replaces keeps its own (rewriting a 0640 output must not widen it), else
    (mkstemp makes 0600) what the umask allows, 0644 by default, so the resolver, web server or container user
    that loads it can read it. A link is replaced, not its target (say, a read-only DVC cache file): a new file."""
    try:
        info = target.lstat()
    except FileNotFoundError:
        return 0o666 & ~UMASK
    return stat.S_IMODE(info.st_mode) & 0o777 if stat.S_ISREG(info.st_mode) else 0o666 & ~UMASK


def exit_on_signal(signum: int, _frame: object) -> None:
    """A signal handler that raises SystemExit(128 + signum), the status a shell reports for that signal. Unlike
    the default action it unwinds the stack, so `atomic_path` removes its temporary file, and other with-blocks
    (worker pools, temporary folders) clean up too."""
    raise SystemExit(128 + signum)


@contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """SIGTERM (kill, timeout, systemd or docker stop) ends the block as Ctrl-C would, with status 143; the
    handler before is put back after. Outside the main thread (where Python runs handlers) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, exit_on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def write_parquet(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


# Where `evaluate` records the measured model's hashes (a DVC metric, kept in git); the doors read it from the
# working directory, as `serve` reads the metrics it shows.
EVALUATION_RECORD = Path("reports/metrics.json")


def load_manifest(model_dir: str | os.PathLike, pinned_sha256: str | None = None,
                  evaluated: str | os.PathLike | None = None) -> dict[str, Any]:
    """A model folder's ``model.json``: file names, hashes, threshold and policy, metrics of the model in it.

    The manifest vouches for every other file of the model, and its policy decides verdicts, so it is checked
    too: against ``pinned_sha256`` (the operator's pin) when given, and against the SHA-256 that `evaluate`
    recorded (``manifest_sha256`` in ``evaluated``, reports/metrics.json, kept in git) when that record is of this
    folder (its ``model_dir``, relative to the working directory as the record is) or names this model: a
    threshold edited after the model was measured is refused, not served, whatever else the edit changed. The
    bytes checked are the bytes parsed."""
    path = Path(model_dir) / "model.json"
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if pinned_sha256 and digest != pinned_sha256.strip().lower():
        raise ModelIntegrityError(f"{path}: SHA-256 {digest[:12]}… is not the pinned {pinned_sha256.strip()[:12]}…")
    manifest = json.loads(data)
    if not isinstance(manifest, dict):
        raise ModelIntegrityError(f"{path}: a JSON {type(manifest).__name__}, not a model's manifest")
    recorded = _evaluated_record(evaluated)
    measured = recorded.get("manifest_sha256")
    this_folder = isinstance(recorded.get("model_dir"), str) and \
        Path(recorded["model_dir"]).resolve() == Path(model_dir).resolve()
    this_model = str(recorded.get("model_sha256", "")).lower() == str(manifest.get("sha256", "")).lower() != ""
    if isinstance(measured, str) and (this_folder or this_model) and measured.lower() != digest:
        raise ModelIntegrityError(
            f"{path} changed after `evaluate` measured this model (SHA-256 {digest[:12]}…, {evaluated} records "
            f"{measured[:12]}…): its policy is not the one measured; restore it with "
            "`dvc checkout models` or rerun `dvc repro`")
    return manifest


def _evaluated_record(path: str | os.PathLike | None) -> dict[str, Any]:
    """The hashes `evaluate` wrote into ``path`` (reports/metrics.json); empty when there is none to read."""
    if path is None or not Path(path).is_file():
        return {}
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ModelIntegrityError(f"{path}: not the JSON `evaluate` writes ({err})") from None
    return record if isinstance(record, dict) else {}


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def read_params(path: str | os.PathLike = "params.yaml") -> dict[str, Any]:
    """The composed parameters DVC tracks (written from conf/ by Hydra on `dvc exp run`)."""
    import yaml

    with open(path) as handle:
        return yaml.safe_load(handle)
