"""Served verdicts of two slices of data/validated.parquet that session 36's policy changes were decided on,
with the served model (models/), no feeds:

- every URL that is a known redirector's link (`url.parsing.browser_url_and_note` gives it a note), by label
  and verdict: such a link is judged as the page it leads to;
- every URL on a subdomain of each ``--platform`` (a site where anyone can publish, or a candidate for
  `scoring.policy.USER_CONTENT_HOSTS`), by label: how many there are, and how many the model alone scores at
  least `suspicious` (what a user-content host keeps: its score, at most `suspicious`, instead of the popular
  site's halving);
- every URL on a site builder's customer site (`scoring.policy.OWN_SITES`, session 47), by label: how many, and how
  many the served decision judges "a site of its own" at or above the threshold (what rule 6's cap had held at
  `suspicious` before session 47).

    python benchmarks/link_verdicts.py
    python benchmarks/link_verdicts.py --platform tumblr.com --platform wordpress.com --platform b-cdn.net
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
HOST = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*://)?(?:[^@/?#]*@)?([^/:?#]+)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO / "data" / "validated.parquet")
    parser.add_argument("--model-dir", type=Path, default=REPO / "models")
    parser.add_argument("--platform", action="append", help="a registered domain (repeatable; default: "
                        "tumblr.com, wordpress.com)")
    args = parser.parse_args()

    from cybersentinel.scoring.detector import Detector
    from cybersentinel.url.parsing import REDIRECTOR_LINK, browser_url_and_note

    table = pd.read_parquet(args.data, columns=["url", "label"])
    detector = Detector.from_dir(args.model_dir)

    maybe = table[table["url"].str.contains(REDIRECTOR_LINK, regex=True)]  # a cheap filter before the exact test
    links = maybe[[bool(browser_url_and_note(url)[1]) for url in maybe["url"]]]
    verdicts = detector.score_values(links["url"].tolist())["verdict"].to_pylist()
    print(f"redirector links: {len(links):,} of {len(table):,} rows; served verdict by label (0: legitimate)")
    print(pd.crosstab(links["label"].to_numpy(), pd.Series(verdicts, name="verdict")).to_string())

    hosts = table["url"].str.extract(HOST, expand=False).str.lower().fillna("")
    for platform in args.platform or ["tumblr.com", "wordpress.com"]:
        rows = table[hosts.str.endswith("." + platform) & ~hosts.isin([platform, "www." + platform])]
        scored = detector.score_values(rows["url"].tolist()).to_pandas()
        high = scored["model_score"].to_numpy() >= detector.suspicious_from
        for label, name in ((0, "legitimate"), (1, "phishing")):
            mine = rows["label"].to_numpy() == label
            print(f"{platform}: {name} {int(mine.sum()):,}, of which {int((high & mine).sum()):,} the model alone "
                  f"scores at least suspicious ({detector.suspicious_from:.4f})")

    from cybersentinel.scoring.policy import OWN_SITES, user_content_host
    from cybersentinel.url.parsing import split_url

    maybe = table[table["url"].str.contains("|".join(re.escape(entry[1:]) for entry in OWN_SITES), case=False)]
    rows = maybe[[user_content_host(split_url(url).host) in OWN_SITES for url in maybe["url"]]]
    reasons = pd.Series(detector.score_values(rows["url"].tolist())["reasons"].to_pylist(), dtype=object).fillna("")
    own = reasons.str.startswith("a site of its own").to_numpy()
    for label, name in ((0, "legitimate"), (1, "phishing")):
        mine = rows["label"].to_numpy() == label
        print(f"customers' own sites ({len(OWN_SITES)} names of policy.OWN_SITES): {name} {int(mine.sum()):,}, of "
              f"which {int((own & mine).sum()):,} judged a site of its own at or above the threshold")


if __name__ == "__main__":
    main()
