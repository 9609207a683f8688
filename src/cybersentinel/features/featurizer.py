"""Featurizers as scikit-learn transformers, so training, evaluation and serving share one path. The
byte kernels behind the URL features live in `cybersentinel.features.lexical`."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.utils.validation import check_is_fitted

from cybersentinel.features.familiarity import FITTED_ARRAYS, NameFamiliarity
from cybersentinel.features.lexical import (
    FEATURIZER_VERSION,
    URL_FEATURES,
    FeatureDefinitionError,
    ParsedUrls,
    _ngram_indices,
    hash_shift,
    name_familiarity,
    ngram_counts,
    url_features,
)
from cybersentinel.features.logistic import fit_logistic
from cybersentinel.features.words import NameWords
from cybersentinel.url.parsing import host_registered_domain

FAMILIARITY_ATTRIBUTES = tuple(f"familiar_{name}_" for name in FITTED_ARRAYS)


class UrlFeaturizer(TransformerMixin, BaseEstimator):
    """Hand-made lexical features plus two learned character n-gram scores (host, path+query), the site name's
    familiarity (`NameFamiliarity`) when fitted with a popularity list (``popular_sites``), and the share of the
    registered name and of the subdomain made of words (`NameWords`) when fitted with a word list (``words``).

    The n-gram scores are logistic regressions over hashed character n-gram counts scaled by
    1/sqrt(number of n-grams). ``fit_transform`` cross-fits them (out-of-fold, folds grouped by registered
    domain, like scikit-learn's ``TargetEncoder``) so the downstream model sees training scores as noisy as
    unseen sites'. ``transform`` computes the same score as ``decision_function`` on the same sparse
    matrix, without building it: intercept + (sum of the n-grams' weights) / sqrt(count).
    """

    def __init__(self, ngram_range: tuple[int, int] = (3, 5), n_features: int = 2**20,
                 C: float = 1.0, cv: int = 5, use_ngrams: bool = True):
        self.ngram_range = ngram_range
        self.n_features = n_features
        self.C = C
        self.cv = cv
        self.use_ngrams = use_ngrams

    def ngram_matrix(self, parsed: ParsedUrls, starts: np.ndarray, ends: np.ndarray) -> sp.csr_matrix:
        lo, hi = self.ngram_range
        counts = ngram_counts(ends - starts, lo, hi)
        indptr = np.concatenate([[0], np.cumsum(counts)])
        indices = _ngram_indices(parsed.data, starts, ends, lo, hi, np.uint64(hash_shift(self.n_features)), indptr)
        values = np.repeat(1.0 / np.sqrt(np.maximum(counts, 1)), counts)
        matrix = sp.csr_matrix((values, indices, indptr), shape=(len(starts), self.n_features))
        matrix.sum_duplicates()
        return matrix

    def _fit_scorer(self, X, y) -> LogisticRegression:
        # liblinear's algorithm, run by `fit_logistic`: liblinear itself sums its dot products in the BLAS,
        # whose kernel (per CPU) and thread count changed the coefficients' last bits, then the features and
        # the model, from machine to machine. The result is held in the LogisticRegression it would have fitted.
        coef, intercept, n_iter = fit_logistic(X, y, C=self.C, max_iter=1000)
        scorer = LogisticRegression(C=self.C, solver="liblinear", max_iter=1000)
        scorer.classes_, scorer.n_features_in_ = np.array([0, 1]), X.shape[1]
        scorer.coef_, scorer.intercept_, scorer.n_iter_ = coef[None, :], np.array([intercept]), np.array([n_iter])
        return scorer

    def fit(self, X, y, popular_sites: Sequence[str] = (), judged_sites: Collection[str] = (),
            words: Sequence[str] = ()):
        self.fit_transform(X, y, popular_sites=popular_sites, judged_sites=judged_sites, words=words)
        return self

    def fit_transform(self, X, y=None, popular_sites: Sequence[str] = (), judged_sites: Collection[str] = (),
                      words: Sequence[str] = ()):
        """``popular_sites``: registered domains of a popularity list; with them (and the n-gram scores), the
        features go on with the site name's familiarity among them less ``judged_sites`` (the registered domains
        the fitted model will be evaluated on). ``words``: a word list; with it, they end with the share of the
        registered name and of the subdomain its words cover."""
        if y is None:
            raise ValueError("UrlFeaturizer needs labels to learn its n-gram scores")
        parsed = ParsedUrls(X)
        y = np.asarray(y)
        hand = parsed.hand_features()
        self.n_features_in_ = 1
        self.version_ = FEATURIZER_VERSION
        if not self.use_ngrams:
            self.scorers_ = []
            self.medians_ = np.median(hand, axis=0)
            return hand
        for name in (*FAMILIARITY_ATTRIBUTES, "word_keys_"):  # a refit without a list keeps nothing of the last's
            self.__dict__.pop(name, None)
        if words:
            self.word_keys_ = NameWords.fit(words).keys
        if popular_sites:
            fitted = NameFamiliarity.fit(popular_sites, judged_sites)
            self.familiar_grams_, self.familiar_counts_, self.familiar_sites_ = \
                fitted.grams, fitted.counts, fitted.sites
        matrices = [self.ngram_matrix(parsed, *parsed.host_spans()), self.ngram_matrix(parsed, *parsed.rest_spans())]
        hosts = parsed.hosts()
        groups = np.asarray(_registered_domains(hosts.dictionary.to_pylist()))[hosts.indices.to_numpy()]
        oof = np.zeros((len(parsed), len(matrices)), dtype=np.float32)
        for train_idx, held_idx in GroupKFold(n_splits=self.cv).split(hand, y, groups):
            for j, m in enumerate(matrices):
                oof[held_idx, j] = self._fit_scorer(m[train_idx], y[train_idx]).decision_function(m[held_idx])
        self.scorers_ = [self._fit_scorer(m, y) for m in matrices]
        out = np.hstack([hand, oof])
        if self.familiarity() is not None:
            out = np.hstack([out, name_familiarity(parsed, self.familiarity())[:, None]])
        name_words = self.name_words()
        if name_words is not None:
            names, rows = parsed.host_index()
            out = np.hstack([out, name_words.of_hosts(names)[rows]])
        self.medians_ = np.median(out, axis=0)
        return out

    def familiarity(self) -> NameFamiliarity | None:
        """The fitted name familiarity, or None when fitted without a popularity list."""
        if not hasattr(self, "familiar_grams_"):
            return None
        return NameFamiliarity(*(getattr(self, name) for name in FAMILIARITY_ATTRIBUTES))

    def name_words(self) -> NameWords | None:
        """The fitted word lists, or None when fitted without them."""
        return NameWords(self.word_keys_) if hasattr(self, "word_keys_") else None

    def ngram_weights(self) -> list[tuple[np.ndarray, float]]:
        """(coefficients, intercept) of the host and the path n-gram scorer."""
        return [(scorer.coef_[0], float(scorer.intercept_[0])) for scorer in self.scorers_]

    def transform(self, X):
        check_is_fitted(self, "scorers_")
        if getattr(self, "version_", None) != FEATURIZER_VERSION:
            fitted = getattr(self, "version_", "v0")
            raise FeatureDefinitionError(f"this featurizer was fitted with feature definitions {fitted!r}, the code "
                                         f"computes {FEATURIZER_VERSION!r}: retrain the model (dvc repro)")
        parsed = X if isinstance(X, ParsedUrls) else ParsedUrls(X)
        return url_features(parsed, self.ngram_range, self.n_features, self.ngram_weights(), self.familiarity(),
                            self.name_words())

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        names = list(URL_FEATURES)
        if self.use_ngrams:
            names += ["host_ngram_score", "path_ngram_score"]
        if self.familiarity() is not None:
            names.append("name_familiarity")
        if self.name_words() is not None:
            names += ["name_words", "subdomain_words"]
        return np.asarray(names, dtype=object)


def _registered_domains(hosts: list[bytes]) -> list[str]:
    return [host_registered_domain(raw.decode("utf-8", "replace")) for raw in hosts]


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


def build_featurizer(dataset: dict, featurizer: dict, columns: list[str]) -> TransformerMixin:
    """The featurizer a dataset config asks for: URL features, or the tabular feature columns."""
    if dataset["kind"] == "url":
        return UrlFeaturizer(ngram_range=tuple(featurizer["ngram_range"]), n_features=featurizer["n_features"],
                             C=featurizer["C"], cv=featurizer["cv"])
    return ColumnSelector(columns)
