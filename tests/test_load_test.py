"""benchmarks/load_test.py's CPU accounting: the server's processes (a supervisor and its workers) are found
below the pid it started, and each one's CPU time is counted."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time

import pytest
from fixtures_model import REPO

# Loaded from its file, not by putting benchmarks/ on sys.path: benchmarks/distributed.py would then shadow
# Dask's `distributed` for every test collected after this one.
_spec = importlib.util.spec_from_file_location("load_test", REPO / "benchmarks" / "load_test.py")
load_test = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(load_test)

BURNER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time\\nend = time.process_time() + 0.4\\n"
                          "while time.process_time() < end: pass\\nprint('done', flush=True)\\ntime.sleep(60)"],
                         stdout=subprocess.PIPE, text=True)
print(child.pid, flush=True)
child.stdout.readline()
print("burnt", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_tree_cpu_counts_the_processes_below_the_server() -> None:
    parent = subprocess.Popen([sys.executable, "-c", BURNER], stdout=subprocess.PIPE, text=True)
    grandchild = int(parent.stdout.readline())
    try:
        assert parent.stdout.readline().strip() == "burnt"
        time.sleep(0.05)
        found = load_test.tree_cpu(parent.pid)
    finally:
        os.kill(grandchild, signal.SIGKILL)
        parent.kill()
        parent.wait()
    assert set(found) == {parent.pid, grandchild}
    assert found[grandchild] >= 0.38  # the worker's 0.4 s of CPU (clock ticks of 10 ms), not the supervisor's
    assert load_test.tree_cpu(parent.pid) == {}  # gone: nothing counted
