"""Scoring with the model the pipeline produced: one code path for the CLI, the service and the
monitor, and the streaming batch files of `cybersentinel predict`. Rows that cannot be scored get an
``error`` instead of being dropped.

The default URL detector (calibrated LightGBM) is scored from its compiled form (`cybersentinel.model.compiled`:
the same model as plain arrays, checked against the pipeline when it was trained and evaluated), which
loads without scikit-learn. Other models go through the pipeline's ``predict_proba``, with XGBoost's
approximate contributions or, for anything else, the log-odds drop when a feature is set to its training
median, to pick the plain-words ``reasons``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from cybersentinel.core.files import ModelIntegrityError, load_manifest, sha256_file
from cybersentinel.features.lexical import (
    FEATURE_DESCRIPTIONS,
    FEW_TEXTS,
    FLAG_FEATURES,
    LOW_VALUE_DESCRIPTIONS,
    MAX_URL_CHARS,
    UNREAD_VALUES,
    URL_ERRORS,
    ParsedUrls,
    url_array,
)
from cybersentinel.model.compiled import UrlScorer
from cybersentinel.scoring.decider import (
    COPIED_INBOX_PATTERN,
    DISGUISED_PATTERN,
    OVERRIDE_PATTERN,
    PAGE_ASSET_EXTENSIONS,
    VENDOR_PAGE_PATTERN,
    VICTIM_ADDRESS_PATTERN,
    Decider,
    address_program,
    address_sign_in,
    copied_inbox_link,
    disguised_program,
    known_software_file,
    page_asset,
    planted_page,
    reversed_text,
    software_url_pattern,
    userinfo_deception,
    vendor_page,
    victim_address,
)
from cybersentinel.scoring.policy import IN_PAGE, Policy, SiteList
from cybersentinel.url.parsing import (
    browser_forms,
    browser_url_and_note,
    canonical_host,
    parse_ip,
    to_text,
)

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


MAX_REASONS = 3


FEW_ROWS = 16  # `score_records` of up to this many values takes the row-by-row path (`Detector._few_records`)


# The rows `page_asset` is asked about: an asset's extension at the end of the path (a prefilter; it decides).
_ASSET_PATTERN = r"(?i)\.(?:" + "|".join(e[1:] for e in PAGE_ASSET_EXTENSIONS) + r")(?:$|[?#])"
MIN_CONTRIBUTION = 0.1  # log-odds; smaller pushes are not worth a reason


# Features that describe a host *name*: never a reason for a URL whose host is an IP address.
HOST_NAME_FEATURES = frozenset({"host_length", "host_dots", "host_hyphens", "host_digit_ratio", "subdomain_depth",
                                "domain_label_length", "domain_entropy", "domain_consonant_run", "no_public_suffix",
                                "host_ngram_score", "name_familiarity", "name_words", "subdomain_words"})
# Features that measure a host name's characters as written: of an internationalised name they measure its punycode
# (`xn--d1abbgf6aiiy` for `президент`), not the name a reader sees, so "random-looking domain name" would misread it.
# Never a reason for a URL whose host is internationalised (`punycode_or_idn`).
SPELLING_FEATURES = frozenset({"host_length", "host_hyphens", "host_digit_ratio", "domain_label_length",
                               "domain_entropy", "domain_consonant_run"})


def reason_texts(contrib: np.ndarray, X: np.ndarray, names: list[str], medians: np.ndarray | None,
                 k: int = MAX_REASONS, min_contribution: float = MIN_CONTRIBUTION) -> np.ndarray:
    """Per row, the ``k`` features that pushed its score up most, in plain words ("; "-joined).

    A feature counts only if its value reads as what it describes: a binary flag must be set, and a
    numeric feature above its training median (or below it, where a low-value wording exists), and not the value
    that says nothing was read (`UNREAD_VALUES`)."""
    n, m = X.shape
    words, low_words, binary, name_features = _reason_words(tuple(names))
    has_low, ip_column, unread, spelling, idn_column = _reason_flags(tuple(names))
    k = min(k, m)
    # one kernel call (a request of one URL paid ~20 NumPy calls here); rows share few distinct reason lists,
    # so each string is built once per key (a key encodes the row's codes, one per (feature, wording))
    reference = medians if medians is not None else np.zeros(m, X.dtype)
    keys = _reason_keys(contrib.astype(np.float32, copy=False), X, reference, medians is not None, binary,
                        has_low[:m], name_features if name_features is not None else binary, ip_column, unread,
                        spelling, idn_column, k, np.float32(min_contribution)).tolist()
    texts = {}
    for u in set(keys):
        parts, rest = [], u
        for _ in range(k):
            rest, code = divmod(rest, 2 * m + 1)
            if code < 2 * m:
                parts.append(low_words[code // 2] if code % 2 else words[code // 2])
        texts[u] = "; ".join(reversed(parts))
    out = np.empty(n, dtype=object)
    out[:] = [texts[u] for u in keys]
    return out


@njit(cache=True)
def _reason_keys(contrib, X, medians, has_medians, binary, has_low, name_features, ip_column, unread, spelling,
                 idn_column, k, min_contribution):
    """Per row, its top ``k`` readable features by contribution (at least ``min_contribution``; ties: the lower
    column first, as a stable sort), each coded ``2 * column + (low wording)``, ``2 * m`` for none, as one
    base-(2m+1) number, first pick most significant. ``unread``: per column, the value that says nothing was read
    (NaN for none: no value equals it); ``spelling``: the columns no reason of an internationalised host."""
    n, m = X.shape
    keys = np.zeros(n, dtype=np.int64)
    best = np.empty(k, dtype=np.float32)
    at = np.empty(k, dtype=np.int64)
    for i in range(n):
        is_ip = ip_column >= 0 and X[i, ip_column] > 0.5
        is_idn = idn_column >= 0 and X[i, idn_column] > 0.5
        count = 0
        for j in range(m):
            c = contrib[i, j]
            if not c >= min_contribution:  # NaN too
                continue
            # a flag must be set; a number above the median, or have a low-value wording
            readable = X[i, j] > 0.5 if binary[j] else (not has_medians or X[i, j] > medians[j]) or has_low[j]
            if not readable or (is_ip and name_features[j]) or (is_idn and spelling[j]) or X[i, j] == unread[j]:
                continue
            pos = count
            while pos > 0 and c > best[pos - 1]:  # strictly greater: an equal value stays behind the earlier column
                pos -= 1
            if pos >= k:
                continue
            for q in range(min(count, k - 1), pos, -1):
                best[q], at[q] = best[q - 1], at[q - 1]
            best[pos], at[pos] = c, j
            count = min(count + 1, k)
        key = 0
        for q in range(k):
            code = 2 * m
            if q < count:
                j = at[q]
                low = not binary[j] and has_medians and not X[i, j] > medians[j]
                code = 2 * j + (1 if low else 0)
            key = key * (2 * m + 1) + code
        keys[i] = key
    return keys


@lru_cache(maxsize=8)
def _reason_words(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Per feature of a model (built once, not per batch): its wording for a high and a low value (one more
    empty entry each, for "no reason"), whether it is a flag, and whether it describes a host name (None when
    the model has no ``host_is_ip``)."""
    words = np.array([FEATURE_DESCRIPTIONS.get(n, n) for n in names] + [""], dtype=object)
    low_words = np.array([LOW_VALUE_DESCRIPTIONS.get(n, "") for n in names] + [""], dtype=object)
    binary = np.array([n in FLAG_FEATURES for n in names])
    name_features = np.array([n in HOST_NAME_FEATURES for n in names]) if "host_is_ip" in names else None
    return words, low_words, binary, name_features


@lru_cache(maxsize=8)
def _reason_flags(names: tuple[str, ...]) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, int]:
    """Per feature (and the "no reason" entry), whether it has a low-value wording; the column of ``host_is_ip``
    (-1 when the model has none: `_reason_words` gives no host-name features then); per feature the value that
    says nothing was read (`UNREAD_VALUES`, NaN for none); which features are `SPELLING_FEATURES`, and the column of
    ``punycode_or_idn`` (-1 when the model has none). Built once per model, not per request."""
    _, low_words, _, name_features = _reason_words(names)
    unread = np.array([UNREAD_VALUES.get(n, np.nan) for n in names], dtype=np.float32)
    spelling = np.array([n in SPELLING_FEATURES for n in names])
    return (low_words != "", names.index("host_is_ip") if name_features is not None else -1, unread, spelling,
            names.index("punycode_or_idn") if "punycode_or_idn" in names else -1)


def occlusion_contributions(predict_proba, X: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Model-agnostic fallback: how much each feature's value raises the log-odds over the reference value."""
    eps = 1e-6
    base = np.clip(predict_proba(X), eps, 1 - eps)
    out = np.zeros((len(X), X.shape[1] + 1), dtype=np.float32)
    for j in range(X.shape[1]):
        moved = X.copy()
        moved[:, j] = reference[j]
        p = np.clip(predict_proba(moved), eps, 1 - eps)
        out[:, j] = np.log(base / (1 - base)) - np.log(p / (1 - p))
    return out


@dataclass(frozen=True)
class Results:
    """The result columns of a batch, as NumPy arrays (scores rounded to 6 decimals, NaN where not scored)."""

    score: np.ndarray
    verdict: np.ndarray
    reasons: np.ndarray
    model_score: np.ndarray
    feeds: np.ndarray
    error: np.ndarray


@dataclass
class Detector:
    """A model and its manifest. ``model`` is the fitted pipeline (None when only the compiled form was
    loaded); ``scorer`` the compiled URL scorer, when the model has one."""

    model: Pipeline | None
    manifest: dict[str, Any]
    scorer: UrlScorer | None = field(default=None, repr=False)
    popularity: dict[str, int] = field(default_factory=dict, repr=False)  # the policy's pinned popular sites
    known_paths: frozenset[str] = field(default_factory=frozenset, repr=False)  # stock files of web software
    resolvers: dict[str, str] = field(default_factory=dict, repr=False)  # public DNS resolvers: `read_resolvers`
    policy: Policy = field(init=False)

    def __post_init__(self) -> None:
        if self.scorer is None and self.model is not None and self.manifest.get("kind") == "url":
            self.scorer = UrlScorer.from_pipeline(self.model)
        self.policy = Policy.from_manifest(self.manifest)
        self.default_decider = self.decider()  # no feeds or lists: the policy's own rules still apply

    def decider(self, index: Any = None, allow: SiteList | None = None, block: SiteList | None = None) -> Decider:
        """The decision policy with the feeds and lists to consult (each optional) and the popular sites and
        public resolvers pinned with the model, which apply whether or not feeds are loaded."""
        return Decider(self.policy, index, allow, block, self.popularity, self.resolvers)

    @classmethod
    def from_dir(cls, model_dir: str | Path = "models", pinned_sha256: str | None = None,
                 evaluated: str | Path | None = None) -> Detector:
        """The model `dvc repro`/`dvc pull` put in ``model_dir``, hash-verified: its compiled form if the
        manifest names one, else the pipeline. The manifest itself is checked against ``pinned_sha256`` and
        against what `evaluate` recorded in ``evaluated`` (`load_manifest`)."""
        manifest = load_manifest(model_dir, pinned_sha256, evaluated)
        lists = pinned_lists(model_dir, manifest)
        compiled = manifest.get("compiled")
        if compiled:
            _check_model_file(Path(model_dir), manifest, required=evaluated is not None)
            return cls(None, manifest, UrlScorer.load(Path(model_dir) / compiled["file"], compiled["sha256"]), **lists)
        from cybersentinel.model.estimators import load_detector

        model, manifest = load_detector(model_dir, manifest)  # the manifest checked above, not a second read
        return cls(model, manifest, None, **lists)

    @property
    def threshold(self) -> float:
        return self.policy.threshold

    @property
    def suspicious_from(self) -> float:
        return self.policy.suspicious_from

    def with_band(self, band: float) -> Detector:
        """The same model, with the lists pinned with it, and another ``suspicious`` band shown (a display choice:
        the threshold and every `malicious` verdict stay, `Policy.shown_band`)."""
        return replace(self, manifest={**self.manifest, "policy": {**self.policy.as_dict(), "shown_band": band}})

    def _features(self, parsed: ParsedUrls) -> np.ndarray:
        if self.scorer is not None:
            return self.scorer.features(parsed)
        return self.model.named_steps["features"].transform(parsed)

    def _score_features(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities and per-feature log-odds contributions of a feature matrix."""
        if self.scorer is not None:
            return self.scorer.predict(X)
        classifier = self.model.named_steps["classifier"]
        scores = classifier.predict_proba(X)[:, 1]
        inner = _inner_estimator(classifier)
        if type(inner).__name__ == "XGBClassifier":
            from xgboost import DMatrix

            contrib = inner.get_booster().predict(DMatrix(X), pred_contribs=True, approx_contribs=True)
        else:
            reference = getattr(self.model.named_steps["features"], "medians_", np.median(X, axis=0))
            contrib = occlusion_contributions(lambda x: classifier.predict_proba(x)[:, 1], X, reference)
        return scores, contrib

    def feature_rows(self, values: Any) -> tuple[np.ndarray, np.ndarray]:
        """The model's features of the values it can score, and a mask of which those are (the others get an
        ``error`` from `score_values`)."""
        parsed = ParsedUrls(_requested(values)[0])
        ok = url_errors(parsed) == ""
        return self._features(parsed)[ok], ok

    def model_scores(self, X: np.ndarray) -> np.ndarray:
        """The model's calibrated probabilities of a feature matrix (no policy, no reasons)."""
        if self.scorer is not None:
            return self.scorer.predict(X, contributions=False)[0]
        return self.model.named_steps["classifier"].predict_proba(X)[:, 1]

    def score_values(self, values: Any, reasons: bool = True, decider: Decider | None = None) -> pa.Table:
        """Result columns for a column of URLs (any values): ``score`` and ``verdict`` (the policy's decision),
        ``model_score``, ``reasons``, ``feeds`` and ``error``, one row per input, in order. ``decider`` brings
        the feeds and lists to consult (default: none). Text columns are dictionary-encoded (rows share few
        distinct values)."""
        found = self._results(values, reasons, decider)
        return pa.table({"score": pa.array(found.score, from_pandas=True),
                         "verdict": _verdict_column(found.verdict),
                         "reasons": pa.array(found.reasons, type=pa.string()).dictionary_encode(),
                         "model_score": pa.array(found.model_score, from_pandas=True),
                         "feeds": _text_column(found.feeds),
                         "error": _text_column(found.error)})

    def score_records(self, values: Any, reasons: bool = True, decider: Decider | None = None
                      ) -> list[dict[str, Any]]:
        """`score_values` as one dict per input (``url`` first, then its columns; a missing score is None),
        without building Arrow columns: what the service answers, at a fraction of a small request's cost."""
        if isinstance(values, list | tuple) and len(values) <= FEW_ROWS:
            return self._few_records(values, reasons, decider or self.default_decider)
        found = self._results(values, reasons, decider)
        column = values if isinstance(values, list | tuple) else list(values)
        return [{"url": url, "score": None if score != score else score, "verdict": verdict, "reasons": why,
                 "model_score": None if model != model else model, "feeds": feeds, "error": error}
                for url, score, verdict, why, model, feeds, error in zip(
                    column, found.score.tolist(), found.verdict.tolist(), found.reasons.tolist(),
                    found.model_score.tolist(), found.feeds.tolist(), found.error.tolist(), strict=True)]

    def _results(self, values: Any, reasons: bool, decider: Decider | None) -> Results:
        """The one scoring path behind `score_values` and `score_records`."""
        decider = decider or self.default_decider
        values, notes = _requested(values)
        parsed = ParsedUrls(values)
        n = len(parsed)
        errors = url_errors(parsed)
        ok = errors == ""
        model_scores = np.full(n, np.nan)
        contributions = X = None
        if ok.any():
            X = self._features(parsed)
            if not ok.all():
                X = X[ok]
            if self.scorer is not None:  # contributions of the explained rows only, once they are known
                model_scores[ok], contributions = self.scorer.predict_deferred(X)
            else:
                model_scores[ok], contrib = self._score_features(X)
                contributions = contrib.__getitem__
        host_names, host_of_row = _host_index(parsed)
        scores, verdicts, rules, feeds = decider.apply(
            model_scores, ok, host_names, host_of_row, parsed.host_standing(),
            *self._row_facts(parsed, values, decider, host_names, host_of_row))
        texts = rules
        if reasons and X is not None:
            explain = self._explained(model_scores[ok], verdicts[ok])
            if explain.any():
                texts = rules.copy()
                rows = np.flatnonzero(ok)[explain]
                texts[rows] = self._with_model_reasons(rules[rows], contributions(np.flatnonzero(explain)),
                                                       X[explain])
        if notes:
            texts = _noted(texts.copy(), notes)
        return Results(_rounded(scores), verdicts, texts, _rounded(model_scores), feeds, errors)

    def _few_records(self, values: list | tuple, reasons: bool, decider: Decider) -> list[dict[str, Any]]:
        """`score_records` of a few values: the same parse, features, model and rules as `_results`, with the
        decision policy applied row by row (`Decider.decide_rows`) and the results assembled as plain Python
        values, since for a request of one URL NumPy's per-call cost was most of the scoring's time.
        `tests/test_small_requests.py` checks it gives exactly what the batch path gives."""
        requested, notes = _requested(values)
        parsed = ParsedUrls(requested)
        errors = [URL_ERRORS[code] for code in parsed.error_codes.tolist()]  # `url_errors` as plain strings
        usable = [i for i, error in enumerate(errors) if not error]
        model: list[float | None] = [None] * len(values)
        X = contrib = None
        if usable:
            X = self._features(parsed)
            if len(usable) < len(values):
                X = X[usable]
            found, contrib = self._score_features(X)
            for i, score in zip(usable, found.tolist(), strict=True):
                model[i] = score
        host_names, host_of_row = _host_index(parsed)
        decided = decider.decide_rows(model, host_names, host_of_row.tolist(), parsed.host_standing().tolist(),
                                      *self._row_facts(parsed, requested, decider, host_names, host_of_row))
        texts = [rules for _, _, rules, _ in decided]
        if reasons and X is not None:  # `_explained`, row by row (plain floats and strings: the same tests)
            explain = [model[i] >= self.suspicious_from and decided[i][1] != "benign" for i in usable]
            if any(explain):
                rows = [i for i, flagged in zip(usable, explain, strict=True) if flagged]
                if len(rows) < len(explain):  # a request of one flagged URL: its rows as they are, no masking
                    mask = np.asarray(explain, dtype=bool)
                    contrib, X = contrib[mask], X[mask]
                for i, text in zip(rows, self._with_model_reasons([texts[i] for i in rows], contrib, X), strict=True):
                    texts[i] = text
        texts = _noted(texts, notes)
        n = len(values)  # scores and model scores rounded in one call
        rounded = _rounded(np.asarray([d[0] for d in decided] + [np.nan if m is None else m for m in model],
                                      dtype=np.float64)).tolist()
        scores, models = rounded[:n], rounded[n:]
        return [{"url": url, "score": None if score != score else score, "verdict": verdict, "reasons": text,
                 "model_score": None if m != m else m, "feeds": feeds, "error": error}
                for url, score, (_, verdict, _, feeds), text, m, error in zip(
                    values, scores, decided, texts, models, errors, strict=True)]

    def _row_facts(self, parsed: ParsedUrls, values: Any, decider: Decider, hosts: list[str],
                   host_of_row: np.ndarray) -> tuple[dict[int, str], ...]:
        """What is known of single rows, for the decision policy: a host name hidden before '@', a page planted
        in the folders of known web software, a program named as a document or a name written with a
        bidirectional override (deception), a stock file of it,
        the URL itself on the allowlist, on the local block list, a page asset, a sign-in page or a program for
        download on a public address, or a victim's address after '#' or as the query or a kit's copy of Hotmail's
        old inbox link on an unlisted site (corroboration), the site's own Outlook on the web or another vendor's
        page."""
        n = len(parsed)
        column = values if isinstance(values, list | tuple) else None

        def by_row(rows: Any, fact: Any) -> dict[int, str]:
            nonlocal column
            if not len(rows):  # most rows of most requests: nothing to ask
                return {}
            if column is None and not isinstance(values, pa.Array | pa.ChunkedArray):
                column = list(values)
            # an Arrow array's values as Python's (str, or bytes from a text file): its scalars' str() is not the
            # URL for a binary array ("b'http://...'"), which hid every row rule from `predict`; only the rows asked
            picked = [column[i] for i in rows] if column is not None else \
                values.take(pa.array(np.asarray(rows, dtype=np.int64))).to_pylist()
            found = {int(i): fact(to_text(url)) for i, url in zip(rows, picked, strict=True)}
            return {i: text for i, text in found.items() if text}

        software = self.manifest["software"]["name"] if self.known_paths else ""
        patterns = {name: pattern for name, pattern, wanted in (
            ("planted", "/wp-admin/|/wp-includes/", bool(self.known_paths)),
            ("software", software_url_pattern(self.known_paths) if self.known_paths else "", bool(self.known_paths)),
            ("asset", _ASSET_PATTERN, decider.policy.cap_page_assets),
            ("vendor", VENDOR_PAGE_PATTERN, decider.policy.cap_vendor_pages),
            ("victim", VICTIM_ADDRESS_PATTERN, True),
            ("inbox", COPIED_INBOX_PATTERN, True),
            ("disguised", DISGUISED_PATTERN, True)) if wanted}
        rows = dict(zip(patterns, _rows_containing(parsed, list(patterns.values())), strict=True))
        deception = by_row(parsed.with_userinfo(), userinfo_deception)
        planted = by_row(rows.get("planted", []), lambda url: planted_page(url, self.known_paths, software))

        def unlisted(found: Any) -> list[int]:
            """The rows of a site the pinned list does not vouch for: not on it, or a host where anyone can publish
            on a site of it (rule 6: the platform's rank is not the page's)."""
            evidence = [decider.evidence(hosts[host_of_row[i]]) if host_of_row[i] >= 0 else None for i in found]
            return [i for i, facts in zip(found, evidence, strict=True)
                    if facts is not None and (facts.tranco_rank is None or facts.user_content)]

        disguised = by_row(unlisted(rows["disguised"]), disguised_program)
        # searched in the URLs as given: the features' text lacks a kit's copy of its own address (`ParsedUrls`)
        reversed_names = by_row(_values_containing(values, OVERRIDE_PATTERN), reversed_text)
        # deceptive by construction, as a host before '@' is
        for row, why in [*planted.items(), *disguised.items(), *reversed_names.items()]:
            deception[row] = "; ".join(filter(None, [deception.get(row), why]))
        on_global = decider.global_addresses(hosts)
        on_address = []
        if any(on_global):  # a row without a host (host_of_row -1) reads the appended False
            on_address = np.flatnonzero(np.asarray(on_global + [False])[host_of_row]
                                        & (parsed.host_standing() == IN_PAGE))
        corroborating = by_row(on_address, lambda url: address_sign_in(url) or address_program(url))
        # a victim's address after '#' or as the whole query, or a kit's copy of Hotmail's old inbox link,
        # corroborates as a brand named in an unlisted site's subdomain does: where the pinned list vouches for nothing
        for row, why in [*by_row(unlisted(rows["victim"]), victim_address).items(),
                         *by_row(unlisted(rows["inbox"]), copied_inbox_link).items()]:
            corroborating[row] = "; ".join(filter(None, [corroborating.get(row), why]))
        return (deception,
                by_row(rows.get("software", []), lambda url: known_software_file(url, self.known_paths, software)),
                by_row(range(n) if decider.allow.urls else [], decider.allow.match_url),
                by_row(range(n) if decider.block.urls else [], decider.block.match_url),
                by_row(rows.get("asset", []), page_asset),
                corroborating,
                by_row(rows.get("vendor", []), vendor_page))

    def flaggable_on_score(self, values: Any) -> np.ndarray:
        """Which values the policy can call `malicious` on the model's score alone: False where it lowers or caps
        whatever score the model gives (a popular site, a stock file of known web software, a page asset, an
        address alone or at its root, a private address, an allowlisted site) and where a value cannot be scored.
        What the false-positive budget counts (`budget_threshold`), judged with a model score of 1 at a threshold
        of 1 and no feeds."""
        values = _requested(values)[0]
        parsed = ParsedUrls(values)
        ok = url_errors(parsed) == ""
        decider = Decider(replace(self.policy, threshold=1.0), popularity=self.popularity, resolvers=self.resolvers)
        hosts, host_of_row = _host_index(parsed)
        scores, *_ = decider.apply(np.ones(len(parsed)), ok, hosts, host_of_row, parsed.host_standing(),
                                   *self._row_facts(parsed, values, decider, hosts, host_of_row))
        return ok & (np.nan_to_num(scores) >= 1.0)

    def _explained(self, model_scores: np.ndarray, verdicts: np.ndarray) -> np.ndarray:
        """Which scored rows the model's reasons explain: those it flagged, unless a rule cleared them."""
        return (model_scores >= self.suspicious_from) & (verdicts != "benign")

    def _with_model_reasons(self, rules: Any, contrib: np.ndarray, X: np.ndarray) -> list[str]:
        """Each row's rule reasons followed by the model's (`reason_texts`), "; "-joined."""
        medians = self.scorer.medians if self.scorer is not None else \
            getattr(self.model.named_steps["features"], "medians_", None)
        model_texts = reason_texts(contrib, X, list(self.manifest["features"]), medians)
        return [f"{r}; {m}" if r and m else r or m for r, m in zip(rules, model_texts, strict=True)]

    def score_frame(self, frame: pd.DataFrame, reasons: bool = True) -> pd.DataFrame:
        """``frame`` with ``score``, ``verdict``, ``reasons`` and ``error`` appended; same rows, same order."""
        inputs = self.manifest["inputs"]
        missing = [c for c in inputs if c not in frame.columns]
        if missing:
            raise ValueError(f"input has no column(s) {missing}; this model needs {inputs[:5]}")
        out = frame.copy()
        if self.manifest["kind"] == "url":
            results = self.score_values(frame["url"], reasons=reasons)
            for name in results.column_names:
                column = results[name].combine_chunks()
                out[name] = column.to_numpy(zero_copy_only=False) if name in ("score", "model_score") else \
                    np.asarray(column.dictionary_decode().to_pylist(), dtype=object)
            return out
        errors = row_errors(frame, inputs, self.manifest["kind"])
        ok = errors.isna().to_numpy()
        scores = np.full(len(frame), np.nan)
        texts = np.full(len(frame), "", dtype=object)
        if ok.any():
            X = self.model.named_steps["features"].transform(frame.loc[ok, inputs])
            scores[ok], contrib = self._score_features(X)
            if reasons:
                flagged = scores[ok] >= self.suspicious_from
                texts[np.flatnonzero(ok)[flagged]] = reason_texts(contrib[flagged], X[flagged],
                                                                  list(self.manifest["features"]), None)
        out["score"] = np.round(scores, 6)
        out["verdict"] = np.where(ok, self.policy.verdicts(np.nan_to_num(scores)), "")
        out["reasons"] = texts
        out["error"] = errors.fillna("")
        return out

    def score_urls(self, urls: list[Any]) -> pd.DataFrame:
        return self.score_frame(pd.DataFrame({"url": urls}))


@njit(cache=True)
def _rounded(values):
    """Scores as served: ``np.round(values, 6)``, numba's (NumPy's algorithm: equal bit for bit on 9 million values,
    negatives, NaN, +-inf and +-1e300 among them) in one call, where NumPy's costs a one-URL request three
    ufuncs' worth of cold code."""
    return np.round(values, 6)


_VERDICTS = ("", "benign", "suspicious", "malicious")


def _verdict_column(verdicts: np.ndarray) -> pa.DictionaryArray:
    """The verdicts dictionary-encoded from their codes: four values, where converting each NumPy string to Arrow
    and hashing it back took a batch's longest column to build."""
    codes = np.zeros(len(verdicts), dtype=np.int32)
    for code, verdict in enumerate(_VERDICTS[1:], 1):
        codes[verdicts == verdict] = code
    if (verdicts[codes == 0] != "").any():  # never: `Policy.verdicts` gives only these
        return pa.array(verdicts).dictionary_encode()
    return pa.DictionaryArray.from_arrays(codes, pa.array(_VERDICTS, type=pa.string()))


def _text_column(texts: np.ndarray) -> pa.DictionaryArray:
    """A text column dictionary-encoded; one that is empty throughout (the feeds and errors of most batches) without
    converting each value."""
    if not texts.any():
        return pa.DictionaryArray.from_arrays(np.zeros(len(texts), dtype=np.int32), pa.array([""], type=pa.string()))
    return pa.array(texts, type=pa.string()).dictionary_encode()


def _inner_estimator(classifier: Any) -> Any:
    """The fitted booster inside ``CalibratedClassifierCV(FrozenEstimator(...))``."""
    calibrated = getattr(classifier, "calibrated_classifiers_", None)
    if not calibrated:
        return classifier
    estimator = calibrated[0].estimator
    return getattr(estimator, "estimator", estimator)


def policy_lists(tranco: Path, top: int, software: Path, resolvers: Path, resolvers_source: str) -> dict[str, Any]:
    """The policy's lists from the pipeline's files, as `Detector` takes them and `train` pins them with the model:
    the top ``top`` registered domains of the Tranco list, the stock files of known web software, the public DNS
    resolvers."""
    from cybersentinel.intel.popular import read_popular_sites  # the stages' need: scoring reads the pinned copies

    return {"popularity": read_popular_sites(tranco, top),
            "known_paths": frozenset(software.read_text(encoding="utf-8").split()),
            "resolvers": resolver_reasons(resolvers.read_text(encoding="utf-8"), resolvers_source)}


def rules_only(policy: Policy, software: str, lists: Mapping[str, Any]) -> Detector:
    """A detector without a model, for what the policy alone says of URLs (`Detector.flaggable_on_score`), with
    the lists `policy_lists` reads; ``software`` names the stock files' source in reasons."""
    manifest = {"kind": "url", "inputs": ["url"], "policy": policy.as_dict(), "software": {"name": software}}
    return Detector(None, manifest, None, **lists)


def pinned_lists(model_dir: str | Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The policy's lists pinned with the model, hash-checked, as `Detector` takes them."""
    return {"popularity": read_popularity(model_dir, manifest), "known_paths": read_known_paths(model_dir, manifest),
            "resolvers": read_resolvers(model_dir, manifest)}


def _check_model_file(model_dir: Path, manifest: dict[str, Any], required: bool) -> None:
    """The model file the manifest names hashes to its ``sha256``, though the compiled form is what is served: that
    field is the model's identity (the registry's version, `evaluate`'s record, the decision log), so a manifest
    naming another model's hash must not pass for that model. Without the file it cannot be checked: refused when
    ``required`` (an `evaluate` record is asked to vouch for the folder), else served from the compiled file alone,
    as a Dask worker is, to which the client ships only that file once its own folder passed this check."""
    path = model_dir / manifest["file"]
    if not path.is_file():
        if not required:
            return
        raise ModelIntegrityError(f"{path}: missing (the manifest's model file, whose hash names the model)")
    actual = sha256_file(path)
    if actual != manifest["sha256"]:
        raise ModelIntegrityError(f"{path}: SHA-256 {actual[:12]}… is not the manifest's "
                                  f"{str(manifest['sha256'])[:12]}…; refusing to load")


def _pinned_text(model_dir: str | Path, manifest: dict[str, Any], key: str) -> str | None:
    """The text of a list pinned with the model under ``key``, checked against the manifest's SHA-256; None for
    a model without it."""
    pinned = manifest.get(key)
    if not pinned:
        return None
    path = Path(model_dir) / pinned["file"]
    data = path.read_bytes()  # the bytes checked are the bytes read
    digest = hashlib.sha256(data).hexdigest()
    if digest != pinned["sha256"]:
        raise ModelIntegrityError(f"{path}: SHA-256 {digest} does not match the manifest's {pinned['sha256']}")
    return data.decode("utf-8")


def read_popularity(model_dir: str | Path, manifest: dict[str, Any]) -> dict[str, int]:
    """The popular registered domains pinned with the model (``popular.txt``, one per line in rank order),
    hash-checked; empty for a model without them."""
    text = _pinned_text(model_dir, manifest, "popularity") or ""
    return {name: rank for rank, name in enumerate(text.split(), 1)}


def read_known_paths(model_dir: str | Path, manifest: dict[str, Any]) -> frozenset[str]:
    """The stock files of known web software pinned with the model (``software.txt``), hash-checked."""
    return frozenset((_pinned_text(model_dir, manifest, "software") or "").split())


def read_resolvers(model_dir: str | Path, manifest: dict[str, Any]) -> dict[str, str]:
    """The public DNS resolvers pinned with the model (``resolvers.txt``), hash-checked, as `resolver_reasons`."""
    text = _pinned_text(model_dir, manifest, "resolvers")
    return resolver_reasons(text, manifest["resolvers"]["name"]) if text is not None else {}


def resolver_reasons(text: str, source: str) -> dict[str, str]:
    """Canonical host (``8.8.8.8``, ``[2001:4860:4860::8888]``) -> why it is allowlisted, from ``address name``
    lines (stage software)."""
    reasons = {}
    for line in text.splitlines():
        address, name = line.split()
        host = canonical_host(address)
        if host is None or parse_ip(host) is None:
            raise ValueError(f"{address!r} in the pinned resolvers is not an IP address")
        reasons[host] = f"public DNS resolver {name} in {source}"
    return reasons


def _host_index(parsed: ParsedUrls) -> tuple[list[str], np.ndarray]:
    """A batch's distinct hosts as text, and each row's index into them."""
    names, rows = parsed.host_index()
    return [h.decode("utf-8", "replace") for h in names], rows


def _requested(values: Any) -> tuple[Any, dict[int, str]]:
    """The values as a browser requests them (`browser_url`): what the model and the rules read, so that writing
    a browser undoes (a tab in the host, a backslash, a full-width or escaped letter, ``https:host``) neither
    hides a page from them nor changes its score, and a redirector's link is the page it leads to; and, by row,
    the note saying so for each such link (`browser_url_and_note`). The training rows are featurized as their lists
    wrote them: few would change (4,227 of 1.45 million), and a retrain on them (1,327 then) moved the threshold
    as a seed does (docs/experiments.md, "Session 35")."""
    if isinstance(values, list | tuple) and len(values) <= FEW_TEXTS and all(type(v) is str for v in values):
        found = [browser_url_and_note(v) for v in values]
        return [url for url, _ in found], {i: note for i, (_, note) in enumerate(found) if note}
    return browser_forms(url_array(values))


def _noted(texts: Any, notes: dict[int, str]) -> Any:
    """Reasons with each redirector link's note (`browser_url_and_note`) first."""
    for i, note in notes.items():
        texts[i] = f"{note}; {texts[i]}" if texts[i] else note
    return texts


def _rows_containing(parsed: ParsedUrls, patterns: list[str]) -> list[Any]:
    """`ParsedUrls.containing` of each pattern. A batch is searched once for any of them (case-insensitively: a
    superset), then only the rows found (a tenth of a batch) for each: one pass over the batch instead of one per
    pattern."""
    if len(parsed) <= FEW_TEXTS or len(patterns) < 2:
        return [parsed.containing(pattern) for pattern in patterns]
    candidates = parsed.containing("(?i)" + "|".join(f"(?:{p.removeprefix('(?i)')})" for p in patterns))
    if not len(candidates):
        return [candidates] * len(patterns)
    subset = parsed.array.take(pa.array(candidates))
    found = []
    for pattern in patterns:
        match = pc.match_substring_regex(subset, pattern)
        found.append(candidates[(match.fill_null(False) if match.null_count else match).to_numpy(zero_copy_only=False)])
    return found


def _values_containing(values: Any, pattern: str) -> list[int]:
    """The rows of ``values`` (`_requested`'s: a list of str, or an Arrow binary array) whose UTF-8 bytes match
    ``pattern`` (RE2 through Arrow; ``re`` over a list's few values: a pattern both read alike)."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        found = pc.match_substring_regex(values, pattern)
        return np.flatnonzero((found.fill_null(False) if found.null_count else found).to_numpy(
            zero_copy_only=False)).tolist()
    search = re.compile(pattern.encode()).search
    return [i for i, value in enumerate(values) if search(to_text(value).encode("utf-8", "replace"))]


def url_errors(parsed: ParsedUrls) -> np.ndarray:
    """A reason per URL that cannot be scored ("" where it can): empty, too long, or no host name (`URL_ERRORS`,
    each URL's code found by the parse kernel)."""
    return _URL_ERRORS[parsed.error_codes]


_URL_ERRORS = np.array(URL_ERRORS, dtype=object)


def row_errors(frame: pd.DataFrame, inputs: list[str], kind: str) -> pd.Series:
    """A reason per row that cannot be scored (None where the row is fine)."""
    errors = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    if kind == "url":
        text = frame["url"].map(to_text)
        errors[text.str.strip() == ""] = "empty URL"
        errors[text.str.len() > MAX_URL_CHARS] = f"URL longer than {MAX_URL_CHARS} characters"
        return errors
    values = frame[inputs].apply(pd.to_numeric, errors="coerce")
    bad = values.isna().any(axis=1)
    errors[bad] = "missing or non-numeric feature values"
    return errors


