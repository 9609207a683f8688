"""How the served decision reads links as text writes them: the sanity set's legitimate URLs written between
delimiters and followed by prose's punctuation, and how many URLs of the collections have a browser form of their
own (`url.parsing.browser_forms`: what serving reads instead of the text as written).

For each written form (``<url>``, ``(url)``, ``"url"``, ``url.``, ``url)`` ...) of each URL of
tests/data/sanity_legitimate.txt, the served verdict (the model in models/, no feeds, `Detector.score_values`,
the batch path `predict` takes): how many are `malicious` and how many are errors, by form. Prints figures; asserts
nothing (`tests/test_browser_forms.py` asserts that the sanity URLs' forms get their own verdict and score). Reads
data/validated.parquet and models/ (`dvc pull` or `dvc repro`).

    python benchmarks/written_forms.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from cybersentinel.scoring.detector import Detector
from cybersentinel.url.parsing import browser_forms

REPO = Path(__file__).resolve().parents[1]
# how prose writes a link: a sentence's marks, quotes and brackets after it, delimiters around it
FORMS = {**{f"url{mark}": f"{{}}{mark}" for mark in (".", ",", ":", ";", "!", '"', "'", ")", ">")},
         "<url>": "<{}>", "(url)": "({})", '"url"': '"{}"', "'url'": "'{}'", "[url]": "[{}]", "(url).": "({})."}


def main() -> None:
    urls = [line.strip() for line in (REPO / "tests" / "data" / "sanity_legitimate.txt").read_text(
        encoding="utf-8").splitlines() if line.strip()]
    detector = Detector.from_dir(REPO / "models")
    print(f"{len(urls)} legitimate sanity URLs, each written {len(FORMS)} ways (served decision, no feeds):")
    for name, form in FORMS.items():
        scored = detector.score_values([form.format(url) for url in urls]).to_pandas()
        malicious = scored["verdict"].astype(str) == "malicious"
        errors = scored["error"].astype(str) != ""
        print(f"  {name:8s} malicious {int(malicious.sum()):3d}  errors {int(errors.sum()):3d}")
    table = pd.read_parquet(REPO / "data" / "validated.parquet", columns=["url"])
    written = pa.array(table["url"].str.encode("utf-8"), type=pa.large_binary())
    read, _ = browser_forms(written)
    changed = int(np.sum(np.asarray(written.to_pylist(), dtype=object) != np.asarray(read.to_pylist(), dtype=object)))
    print(f"data/validated.parquet: {changed:,} of {len(table):,} URLs have a browser form of their own")


if __name__ == "__main__":
    main()
