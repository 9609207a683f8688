"""Time a full `dvc repro --force` of the current configuration and a no-op `dvc repro`, and check
that the full run reproduced the committed dvc.lock. Prints figures; asserts nothing.

    make bench            # or: python benchmarks/pipeline.py [--skip-full]
"""

import argparse
import statistics
import subprocess
import time


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-full", action="store_true", help="only time the no-op repro")
    args = parser.parse_args()
    if not args.skip_full:
        full = timed(["dvc", "repro", "--force"])
        print(f"full dvc repro --force: {full:.1f} s = {full / 60:.1f} min "
              "(target <= 15 min, the leave-one-collection-out stage included)")
        same = subprocess.run(["git", "diff", "--quiet", "dvc.lock"], check=False).returncode == 0
        print(f"dvc.lock reproduced byte for byte: {'yes' if same else 'NO (see git diff dvc.lock)'}")
    noop = [timed(["dvc", "repro"]) for _ in range(3)]
    print(f"no-op dvc repro: median {statistics.median(noop):.2f} s over 3 runs (target < 3 s)")


if __name__ == "__main__":
    main()
