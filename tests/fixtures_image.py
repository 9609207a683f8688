"""The service image for tests/test_container.py, built by `scripts/image.sh build` in the background from the end
of collection (conftest.py), while the rest of the suite runs; the container tests run last and wait for it. Cold,
the build takes minutes (debootstrap and pip), mostly waiting on downloads and unpacking, so overlapping it with
the other tests takes it off the suite's wall time. A failed or timed-out build still fails the tests that need it.
CI (`.ci/run`) builds the image before the suite, since a cold build's CPU slows the tests beside it; the build here
then finds every layer in podman's cache.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
IMAGE = "localhost/cybersentinel:test"
MODEL_FILES = ["model.json", "model.skops", "scorer.npz", "popular.txt", "software.txt", "resolvers.txt"]
BUILD_TIMEOUT = 1500.0  # seconds from the start of the build


@dataclass
class Build:
    process: subprocess.Popen
    log: IO[str]
    started: float


_build: Build | None = None  # one build per test session


def skip_reason() -> str | None:
    """Why the image cannot be built here, or None when it can."""
    missing = [tool for tool in ("podman", "debootstrap") if shutil.which(tool) is None]
    if missing or not Path("/usr/sbin/runc").exists():
        return f"{', '.join(missing) or 'runc'} not installed (apt-get install podman runc debootstrap)"
    if os.geteuid() != 0:
        return "the image is built with rootful podman and debootstrap: run as root"
    if not all((REPO / "models" / name).is_file() for name in MODEL_FILES):
        return "no model in models/: `dvc pull train` or `dvc repro` first"
    return None


def start_build() -> None:
    """Start `scripts/image.sh build` (in its own process group, so that stopping it stops podman too)."""
    global _build
    if _build is None:
        log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (open until the build is waited for)
        process = subprocess.Popen([str(REPO / "scripts" / "image.sh"), "build"], cwd=REPO, stdout=log,
                                   stderr=subprocess.STDOUT, env={**os.environ, "IMAGE": IMAGE},
                                   start_new_session=True)
        _build = Build(process, log, time.monotonic())


def stop_build() -> None:
    """Stop a build still running (the session ended before the container tests, e.g. `-x` after a failure)."""
    if _build is not None and _build.process.poll() is None:
        os.killpg(_build.process.pid, signal.SIGTERM)
        try:
            _build.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(_build.process.pid, signal.SIGKILL)
            _build.process.wait()


def built_image() -> str:
    """The image's name once the build (started now unless already running) has succeeded; fails otherwise."""
    start_build()
    assert _build is not None
    remaining = BUILD_TIMEOUT - (time.monotonic() - _build.started)
    try:
        code = _build.process.wait(timeout=max(remaining, 0.0))
    except subprocess.TimeoutExpired:
        stop_build()
        code = None
    _build.log.seek(0)
    output = _build.log.read()
    assert code is not None, f"the image build took over {BUILD_TIMEOUT:.0f} s:\n{output[-8000:]}"
    assert code == 0, output[-8000:]
    print(f"image built, {time.monotonic() - _build.started:.0f} s after its build started")
    return IMAGE
