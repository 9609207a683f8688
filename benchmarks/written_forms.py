"""How the served decision reads links as people write them: the sanity sets' URLs written between delimiters,
followed by prose's punctuation, without their scheme between delimiters, defanged as threat reports write them
(``hxxps[:]//kit[.]example/``), as markdown links (``[link](https://example.com/)``), with a mailing's campaign
tags (``?utm_source=newsletter…``), as mail gateways rewrite links (Outlook Safe Links, Proofpoint, Sophos,
Barracuda, Cisco, Symantec, Trellix), through Google Translate's website proxy, as kits' links put Google's
name first, and as an ad's click (Google Ads); and how many URLs of the collections have a browser form of their own
(`url.parsing.browser_forms`: what serving reads instead of the text as written).

For each written form of each URL of tests/data/sanity_legitimate.txt and sanity_phishing.txt, the served verdict
(the model in models/, no feeds, `Detector.score_values`, the batch path `predict` takes): how many legitimate URLs
are `malicious`, how many phishing URLs are not, and how many of either are errors, by form. Prints figures; asserts
nothing (`tests/test_browser_forms.py` asserts that the sanity URLs' forms get their own verdict and score). Reads
data/validated.parquet and models/ (`dvc pull` or `dvc repro`).

    python benchmarks/written_forms.py
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa

from cybersentinel.scoring.detector import Detector
from cybersentinel.url.parsing import browser_forms

REPO = Path(__file__).resolve().parents[1]
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def _bare(url: str) -> str:
    return _SCHEME.sub("", url)


def _defanged(url: str) -> str:
    """``url`` as threat reports write it: ``hxxp`` and ``[:]`` in its scheme, ``[.]`` for its host's last dot."""
    scheme = _SCHEME.match(url)
    prefix = scheme.group(0).replace("http", "hxxp", 1).replace("://", "[:]//") if scheme else ""
    rest = url[len(scheme.group(0)) if scheme else 0:]
    host_end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    dot = rest.rfind(".", 0, host_end)
    return prefix + (rest if dot < 0 or rest.startswith("[") else f"{rest[:dot]}[.]{rest[dot + 1:]}")


# how prose writes a link: a sentence's marks, quotes and brackets after it, delimiters around it, with or without
# its scheme; defanged; and as markdown's link, its text a word or the URL itself
FORMS: dict[str, Callable[[str], str]] = {
    **{f"url{mark}": (lambda url, mark=mark: url + mark) for mark in (".", ",", ":", ";", "!", '"', "'", ")", ">")},
    **{f"{a}url{b}": (lambda url, a=a, b=b: f"{a}{url}{b}") for a, b in ("<>", "()", '""', "''", "[]")},
    "(url).": lambda url: f"({url}).",
    **{f"{a}bare{b}": (lambda url, a=a, b=b: f"{a}{_bare(url)}{b}") for a, b in ("<>", "()", '""', "[]")},
    "defanged": _defanged,
    "[text](url)": lambda url: f"[link]({url})",
    "[url](url)": lambda url: f"[{url}]({url})",
}
def _tagged(url: str) -> str:
    """``url`` with a mailing's campaign tags and click id added to its query (before any fragment)."""
    page, hash_mark, fragment = url.partition("#")
    tags = "utm_source=newsletter&utm_medium=email&utm_campaign=december&mc_eid=5f1a2b3c4d"
    return f"{page}{'&' if '?' in page else '?'}{tags}{hash_mark}{fragment}"


def _href(url: str) -> str:
    """``url`` as a link's target in a mail: with a scheme (a host written alone is linked as ``http://``)."""
    return url if _SCHEME.match(url) else f"http://{url}"


def _escaped(url: str) -> str:
    """`_href` escaped as a query value or a path segment."""
    return quote(_href(url), safe="")


# as a mailing tags a link, as a mail gateway rewrites a link in a mail it lets through, and as a kit links
# through a translation proxy (each one's own format; the tokens made up)
FORMS |= {
    "url?utm_": _tagged,
    "SafeLinks": lambda url: f"https://eur02.safelinks.protection.outlook.com/?url={_escaped(url)}&data=05%7C02",
    "Proofpoint": lambda url: f"https://urldefense.com/v3/__{_href(url)}__;!!Ab1cD2!eF3g$",
    "Sophos": lambda url: (f"https://eu-west-1.protection.sophos.com?d={_bare(_href(url)).split('/')[0]}"
                           f"&u={quote(base64.b64encode(_href(url).encode()))}&i=NjA&t=ZXF&h=a1&s=AV"),
    "Barracuda": lambda url: f"https://linkprotect.cudasvc.com/url?a={_escaped(url)}&c=E,1,x1Y2&typo=1",
    "Cisco": lambda url: f"https://secure-web.cisco.com/1vbkhrbOYdyg8pdI2OZ_x-Y/{_escaped(url)}",
    "Symantec": lambda url: f"https://clicktime.symantec.com/15sM7PdWhmVr?h=6gce=&u={_escaped(url)}",
    "Trellix": lambda url: f"https://protect2.fireeye.com/v1/url?k=f157ae43-adc5&q=1&e=f0b7&u={_escaped(url)}",
    "Translate": lambda url: f"https://translate.google.com/translate?sl=auto&tl=en&hl=en&u={_escaped(url)}",
    "Ads click": lambda url: f"https://www.googleadservices.com/pagead/aclk?sa=L&ai=DChcSEwi&sig=AOD64_3&adurl="
                             f"{_escaped(url)}",
}


def main() -> None:
    def lines(name: str) -> list[str]:
        return [line.strip() for line in (REPO / "tests" / "data" / name).read_text(encoding="utf-8").splitlines()
                if line.strip()]

    legitimate, phishing = lines("sanity_legitimate.txt"), lines("sanity_phishing.txt")
    detector = Detector.from_dir(REPO / "models")
    print(f"{len(legitimate)} legitimate and {len(phishing)} phishing sanity URLs, each written {len(FORMS)} ways "
          "(served decision, no feeds):")
    for name, form in FORMS.items():
        found = []
        for urls in (legitimate, phishing):
            scored = detector.score_values([form(url) for url in urls]).to_pandas()
            found.append(((scored["verdict"].astype(str) == "malicious").to_numpy(),
                          (scored["error"].astype(str) != "").to_numpy()))
        (false_alarms, legitimate_errors), (caught, phishing_errors) = found
        print(f"  {name:11s} legitimate malicious {int(false_alarms.sum()):3d} errors {int(legitimate_errors.sum()):3d}"
              f"  phishing not malicious {int((~caught).sum()):3d} errors {int(phishing_errors.sum()):3d}")
    table = pd.read_parquet(REPO / "data" / "validated.parquet", columns=["url"])
    written = pa.array(table["url"].str.encode("utf-8"), type=pa.large_binary())
    read, _ = browser_forms(written)
    changed = int(np.sum(np.asarray(written.to_pylist(), dtype=object) != np.asarray(read.to_pylist(), dtype=object)))
    print(f"data/validated.parquet: {changed:,} of {len(table):,} URLs have a browser form of their own")


if __name__ == "__main__":
    main()
