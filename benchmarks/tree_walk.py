"""The compiled trees' walk alone (`model.compiled._walk8`), in process: microseconds a row for a batch (every row's
leaves kept, as `predict` walks them) and for one row with its path contributions (a service request's), on the
features of real URLs (data/validated.parquet) and the pipeline's model (models/). With ``--against SRC`` the
`compiled.py` of another checkout's ``src`` walks the same rows with the same arrays, alternated, and both
versions' outputs are compared bit for bit. Prints figures; asserts only that the outputs agree.

    python benchmarks/tree_walk.py
    mkdir -p /tmp/old && git archive 0cbb289 src | tar -x -C /tmp/old
    python benchmarks/tree_walk.py --against /tmp/old/src
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]


def compiled_module(src: Path) -> ModuleType:
    """``src``'s `cybersentinel.model.compiled`, loaded under a name of its own (its imports are this package's)."""
    spec = importlib.util.spec_from_file_location("compiled_against", src / "cybersentinel" / "model" / "compiled.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def timings(module: ModuleType, X: np.ndarray, compact: tuple, singles: int) -> tuple[float, float, tuple]:
    """(µs a row in a batch, µs for one row with contributions, the outputs to compare)."""
    leaves = np.empty((len(X), len(compact[0])), dtype=np.int32)
    started = time.perf_counter()
    raw, _ = module._walk8(X, *compact, False, leaves)
    batch = (time.perf_counter() - started) / len(X) * 1e6
    started = time.perf_counter()
    for i in range(singles):
        one = module._walk8(X[i:i + 1], *compact, True, module._NO_LEAVES)
    single = (time.perf_counter() - started) / singles * 1e6
    return batch, single, (raw, leaves, *one)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--singles", type=int, default=20_000, help="one-row walks timed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model-dir", type=Path, default=REPO / "models")
    parser.add_argument("--against", type=Path, help="the src folder of another version, alternated with this one")
    args = parser.parse_args()

    from cybersentinel.features.lexical import ParsedUrls
    from cybersentinel.model import compiled
    from cybersentinel.scoring.detector import Detector

    detector = Detector.from_dir(args.model_dir)
    if detector.scorer is None:
        raise SystemExit(f"{args.model_dir}: the model has no compiled form to walk")
    trees = detector.scorer.folds[0][0]
    if trees.compact is None:
        raise SystemExit(f"{args.model_dir}: the trees route missing values, so they are walked by `_walk`")
    urls = pd.read_parquet(REPO / "data" / "validated.parquet", columns=["url"])["url"].to_numpy()[:args.rows]
    X = np.ascontiguousarray(detector._features(ParsedUrls(pa.array(urls))), dtype=np.float32)
    versions = {"this": compiled}
    if args.against:
        versions["against"] = compiled_module(args.against.resolve())
    singles = min(args.singles, len(X))
    for module in versions.values():  # compile (or load from numba's cache) before timing
        timings(module, X[:64], trees.compact, 8)
    found: dict[str, list[tuple[float, float]]] = {name: [] for name in versions}
    outputs = {}
    for _ in range(args.repeats):
        for name, module in versions.items():
            batch, single, outputs[name] = timings(module, X, trees.compact, singles)
            found[name].append((batch, single))
    print(f"{len(X):,} rows of {X.shape[1]} features, {len(trees.compact[0])} trees; {singles:,} one-row walks")
    for name, runs in found.items():
        print(f"{name}: batch {' / '.join(f'{b:.2f}' for b, _ in runs)} us a row; one row with contributions "
              f"{' / '.join(f'{s:.2f}' for _, s in runs)} us")
    if args.against:
        same = all(np.array_equal(a, b) for a, b in zip(outputs["this"], outputs["against"], strict=True))
        print(f"outputs (raw scores, leaves, a row's contributions) {'identical' if same else 'DIFFER'}")
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
