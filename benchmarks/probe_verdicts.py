"""The served decision's verdicts (no feeds) on every hand-written probe list stage `evaluate` judges (the lists of
its command in dvc.yaml, read from reports/details.json): for each list, how many of its URLs are `malicious`,
`suspicious` and `benign`, and how many are errors (no web address), as `evaluate` counts them. With
``--against SRC``, another checkout's code (its ``src`` folder, run by PYTHONPATH) and ``--against-model-dir``
score the same lists beside this one, and the URLs whose verdict changed are listed. Each side is one
`cybersentinel predict` run over all the lists, as the README's per-list commands score them. Prints figures;
asserts nothing but that every URL came back.

    python benchmarks/probe_verdicts.py
    python benchmarks/probe_verdicts.py --against /tmp/base/src --against-model-dir /tmp/base/models
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
VERDICTS = ("malicious", "suspicious", "benign", "error")


def probe_lists(details: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The URLs (as `evaluate` reads them: blank lines skipped) and the kind of every list stage `evaluate` judged,
    by the list's name."""
    probes = json.loads(details.read_text())["probes"]
    urls = {name: [line for line in (REPO / probe["path"]).read_text(encoding="utf-8").splitlines() if line.strip()]
            for name, probe in probes.items()}
    return urls, {name: probe["kind"] for name, probe in probes.items()}


def verdicts(urls: list[str], model_dir: Path, src: Path | None, work: Path) -> pd.Series:
    """The served verdict of each URL (``error`` where there is none), in order, from one `cybersentinel predict`."""
    source, scored = work / "probes.txt", work / "scored.csv"
    source.write_text("\n".join(urls) + "\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(src)} if src else {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([str(Path(sys.executable).with_name("cybersentinel")), "predict", "--no-feeds",
                          "--no-progress", "-i", str(source), "--input-format", "text", "-o", str(scored),
                          "--model-dir", str(model_dir)], env=env, capture_output=True, text=True)
    if run.returncode:
        sys.exit(run.stderr)
    table = pd.read_csv(scored, dtype={"verdict": str, "error": str}, keep_default_na=False)
    if len(table) != len(urls):
        sys.exit(f"{len(urls):,} URLs in, {len(table):,} rows out")
    return table["verdict"].where(table["error"] == "", "error").replace("", "error").reset_index(drop=True)


def counts(lists: dict[str, list[str]], kinds: dict[str, str], found: pd.Series) -> pd.DataFrame:
    names = [name for name, urls in lists.items() for _ in urls]
    table = pd.crosstab(pd.Series(names, name="list"), found.rename("verdict")).reindex(columns=VERDICTS, fill_value=0)
    table.insert(0, "kind", [kinds[name] for name in table.index])
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=REPO / "models")
    parser.add_argument("--against", type=Path, default=None, help="another checkout's src folder")
    parser.add_argument("--against-model-dir", type=Path, default=None, help="default: --model-dir")
    parser.add_argument("--details", type=Path, default=REPO / "reports" / "details.json",
                        help="stage evaluate's details, which name the lists")
    args = parser.parse_args()
    lists, kinds = probe_lists(args.details)
    urls = [url for listed in lists.values() for url in listed]
    with tempfile.TemporaryDirectory() as work:
        found = verdicts(urls, args.model_dir, None, Path(work))
        before = verdicts(urls, args.against_model_dir or args.model_dir, args.against, Path(work)) \
            if args.against else None
    pd.set_option("display.width", 200)
    print(f"{len(urls):,} URLs in {len(lists)} lists; served verdicts without feeds ({args.model_dir})")
    if before is None:
        print(counts(lists, kinds, found).to_string())
        return
    print(pd.concat([counts(lists, kinds, before).add_suffix(" before").rename(columns={"kind before": "kind"}),
                     counts(lists, kinds, found).drop(columns="kind").add_suffix(" after")], axis=1).to_string())
    names = pd.Series([name for name, listed in lists.items() for _ in listed])
    changed = (found != before).to_numpy()
    print(f"\n{int(changed.sum())} URLs changed verdict:")
    for name, old, new, url in zip(names[changed], before[changed], found[changed], pd.Series(urls)[changed]):
        print(f"  {name}: {old} -> {new}  {url[:150]}")


if __name__ == "__main__":
    main()
