"""Featurizers as scikit-learn transformers, so training, evaluation and serving share one path.

URL features are computed from the string alone (no DNS, no fetch). They are taken after the scheme
and a leading ``www.`` are removed: in the training collections both say more about how a list was
assembled than about the site (see ../shared/data/README.md), and the detector must hold elsewhere.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.utils.validation import check_is_fitted

from cybersentinel.urls import UrlParts, split_url, to_text

BRANDS = (
    "paypal apple icloud itunes google gmail microsoft office365 outlook hotmail live amazon netflix "
    "facebook instagram whatsapp ebay yahoo linkedin dropbox docusign adobe chase wellsfargo "
    "bankofamerica citibank hsbc santander barclays dhl fedex ups usps irs steam coinbase binance "
    "blockchain metamask wallet"
).split()
SUSPICIOUS_WORDS = (
    "login signin sign-in logon verify verification account update secure security confirm "
    "password banking webscr ebayisapi billing invoice suspend unlock recover support wp-admin "
    "wp-content wp-includes admin cmd dispatch token auth session"
).split()
SHORTENERS = frozenset(
    "bit.ly goo.gl tinyurl.com t.co ow.ly is.gd buff.ly adf.ly bit.do cutt.ly rebrand.ly "
    "shorte.st tiny.cc lnkd.in db.tt qr.ae cur.lv ity.im v.gd rb.gy shorturl.at".split()
)
# TLDs that abuse reports (Spamhaus, Interisle) rank among the most abused; free or near-free names.
ABUSED_TLDS = frozenset("tk ml ga cf gq xyz top work click link zip mov country kim science party gdn loan win".split())
RISKY_EXTENSIONS = (".exe", ".scr", ".apk", ".zip", ".rar", ".js", ".jar", ".bat", ".msi", ".vbs")
_TOKEN_SPLIT = re.compile(r"[/\-._?=&~+%:;,@!]+")
_DIGIT_RUN = re.compile(r"\d+")
_VOWELS = frozenset("aeiou")

# Name and plain-words description of every hand-made feature, in output order.
URL_FEATURES: dict[str, str] = {
    "url_length": "long URL",
    "host_length": "long host name",
    "path_length": "long path",
    "query_length": "long query string",
    "host_dots": "many dots in the host name",
    "host_hyphens": "hyphens in the host name",
    "host_digit_ratio": "digits in the host name",
    "subdomain_depth": "deeply nested subdomains",
    "domain_label_length": "long registered name",
    "domain_entropy": "random-looking domain name",
    "domain_consonant_run": "unpronounceable domain name",
    "host_is_ip": "host is an IP address",
    "has_port": "explicit port number",
    "has_userinfo": "user name or '@' before the host",
    "punycode_or_idn": "internationalised (punycode) host name",
    "non_ascii": "non-ASCII characters in the URL",
    "abused_tld": "top-level domain often abused",
    "no_public_suffix": "host has no public suffix",
    "shortener": "URL shortener",
    "path_depth": "deep path",
    "path_tokens": "many words in the path",
    "longest_token": "very long word in the URL",
    "query_params": "many query parameters",
    "has_fragment": "fragment in the URL",
    "percent_escapes": "percent-encoded characters",
    "digit_ratio": "many digits in the URL",
    "longest_digit_run": "long run of digits",
    "special_chars": "many special characters",
    "double_slash_in_path": "'//' redirect inside the path",
    "url_in_path": "another URL embedded in the path or query",
    "tld_in_subdomain": "a TLD such as '.com' inside the subdomain",
    "tld_in_path": "a TLD such as '.com' inside the path",
    "php_or_html_page": "script or HTML page in the path",
    "risky_extension": "executable or archive download",
    "suspicious_words": "words such as 'login' or 'verify'",
    "brand_outside_domain": "brand name outside the registered domain",
    "brand_in_domain_with_extra": "brand name mixed into another domain name",
}


def _entropy(text: str) -> float:
    if not text:
        return 0.0
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _longest_consonant_run(text: str) -> int:
    best = run = 0
    for ch in text:
        run = run + 1 if ch.isalpha() and ch not in _VOWELS else 0
        best = max(best, run)
    return best


def _strip_www(host: str) -> str:
    return host[4:] if host.startswith("www.") else host


def url_feature_row(parts: UrlParts) -> list[float]:
    """The hand-made features of one parsed URL, in ``URL_FEATURES`` order."""
    host = _strip_www(parts.host)
    subdomain = parts.subdomain[4:] if parts.subdomain.startswith("www.") else parts.subdomain
    if subdomain == "www":
        subdomain = ""
    path, query = parts.path, parts.query
    rest = (path + ("?" + query if query else "")).lower()
    full = host + rest
    tokens = [t for t in _TOKEN_SPLIT.split(full) if t]
    digit_runs = _DIGIT_RUN.findall(full)
    label = parts.domain
    registered = parts.registered_domain
    outside = subdomain + " " + rest
    brand_outside = any(b in outside for b in BRANDS) and not any(b in registered for b in BRANDS)
    brand_mixed = any(b in label and b != label for b in BRANDS)
    return [
        len(full),
        len(host),
        len(path),
        len(query),
        host.count("."),
        host.count("-"),
        sum(c.isdigit() for c in host) / max(len(host), 1),
        subdomain.count(".") + 1 if subdomain else 0,
        len(label),
        _entropy(label),
        _longest_consonant_run(label),
        parts.is_ip,
        bool(parts.port) and parts.port not in ("80", "443"),
        bool(parts.userinfo),
        "xn--" in host or not host.isascii(),
        not full.isascii(),
        parts.suffix.rsplit(".", 1)[-1] in ABUSED_TLDS,
        not parts.suffix and not parts.is_ip,
        host in SHORTENERS,
        path.count("/"),
        sum(1 for t in _TOKEN_SPLIT.split(rest) if t),
        max((len(t) for t in tokens), default=0),
        query.count("&") + 1 if query else 0,
        bool(parts.fragment),
        full.count("%"),
        sum(c.isdigit() for c in full) / max(len(full), 1),
        max((len(r) for r in digit_runs), default=0),
        sum(full.count(c) for c in "~_=&;!*$"),
        "//" in path,
        "http" in rest or "www." in rest,
        any(t in subdomain for t in (".com", ".net", ".org", "com-", "-com")),
        any(t in path.lower() for t in (".com", ".net", ".org")),
        any(path.lower().endswith(e) for e in (".php", ".html", ".htm", ".asp", ".aspx", ".jsp")),
        path.lower().endswith(RISKY_EXTENSIONS),
        sum(w in full for w in SUSPICIOUS_WORDS),
        brand_outside,
        brand_mixed,
    ]


def url_features(urls: pd.Series | list) -> np.ndarray:
    """Hand-made features of many URLs as a float32 matrix (one row per input, never raises)."""
    rows = [url_feature_row(split_url(u)) for u in urls]
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(URL_FEATURES))


def _host_and_rest(urls) -> tuple[list[str], list[str]]:
    hosts, rests = [], []
    for u in urls:
        p = split_url(u)
        hosts.append(_strip_www(p.host))
        rests.append((p.path + ("?" + p.query if p.query else "")).lower())
    return hosts, rests


def _as_url_list(X) -> list:
    if isinstance(X, pd.DataFrame):
        return X["url"].tolist()
    if isinstance(X, pd.Series):
        return X.tolist()
    return [to_text(x) for x in np.asarray(X, dtype=object).ravel()]


class UrlFeaturizer(TransformerMixin, BaseEstimator):
    """Hand-made lexical features plus two learned character n-gram scores (host, path+query).

    The n-gram scores are logistic regressions over hashed character n-grams. ``fit_transform``
    cross-fits them (out-of-fold, folds grouped by registered domain, like scikit-learn's
    ``TargetEncoder``) so the downstream model sees training scores as noisy as unseen sites'.
    """

    def __init__(self, ngram_range: tuple[int, int] = (3, 5), n_features: int = 2**20,
                 C: float = 1.0, cv: int = 5, use_ngrams: bool = True):
        self.ngram_range = ngram_range
        self.n_features = n_features
        self.C = C
        self.cv = cv
        self.use_ngrams = use_ngrams

    def _vectorizer(self) -> HashingVectorizer:
        return HashingVectorizer(analyzer="char", ngram_range=tuple(self.ngram_range), n_features=self.n_features,
                                 alternate_sign=False, binary=True, lowercase=True, dtype=np.float32)

    def _fit_scorer(self, X, y) -> LogisticRegression:
        return LogisticRegression(C=self.C, solver="liblinear", max_iter=1000).fit(X, y)

    def fit(self, X, y):
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X, y=None, **fit_params):
        if y is None:
            raise ValueError("UrlFeaturizer needs labels to learn its n-gram scores")
        urls = _as_url_list(X)
        y = np.asarray(y)
        hand = url_features(urls)
        self.n_features_in_ = 1
        if not self.use_ngrams:
            self.scorers_ = []
            return hand
        vec = self._vectorizer()
        texts = _host_and_rest(urls)
        matrices = [vec.transform(t) for t in texts]
        groups = [split_url(u).registered_domain for u in urls]
        oof = np.zeros((len(urls), len(matrices)), dtype=np.float32)
        for train_idx, held_idx in GroupKFold(n_splits=self.cv).split(urls, y, groups):
            for j, m in enumerate(matrices):
                oof[held_idx, j] = self._fit_scorer(m[train_idx], y[train_idx]).decision_function(m[held_idx])
        self.scorers_ = [self._fit_scorer(m, y) for m in matrices]
        return np.hstack([hand, oof])

    def transform(self, X):
        check_is_fitted(self, "scorers_")
        urls = _as_url_list(X)
        hand = url_features(urls)
        if not self.scorers_:
            return hand
        vec = self._vectorizer()
        scores = [s.decision_function(vec.transform(t)) for s, t in zip(self.scorers_, _host_and_rest(urls))]
        return np.hstack([hand, np.column_stack(scores).astype(np.float32)])

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        names = list(URL_FEATURES)
        if self.use_ngrams:
            names += ["host_ngram_score", "path_ngram_score"]
        return np.asarray(names, dtype=object)


class ColumnSelector(TransformerMixin, BaseEstimator):
    """Pass the named numeric columns of a DataFrame through as a float32 matrix (tabular datasets)."""

    def __init__(self, columns: list[str]):
        self.columns = columns

    def fit(self, X: pd.DataFrame, y=None):
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise ValueError(f"input lacks feature columns: {missing[:5]}")
        self.n_features_in_ = len(self.columns)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "n_features_in_")
        return X[list(self.columns)].to_numpy(dtype=np.float32)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray(self.columns, dtype=object)


FEATURE_DESCRIPTIONS = {**URL_FEATURES, "host_ngram_score": "host name resembles phishing hosts",
                        "path_ngram_score": "path resembles phishing paths"}


def build_featurizer(dataset: dict, featurizer: dict, columns: list[str]) -> TransformerMixin:
    """The featurizer a dataset config asks for: URL features, or the tabular feature columns."""
    if dataset["kind"] == "url":
        return UrlFeaturizer(ngram_range=tuple(featurizer["ngram_range"]), n_features=featurizer["n_features"],
                             C=featurizer["C"], cv=featurizer["cv"])
    return ColumnSelector(columns)
