"""The served form of a calibrated LightGBM URL detector: the featurizer's n-gram weights, the boosters'
trees as flat node arrays, and the calibration maps, saved as plain NumPy arrays (``.npz``, read with
``allow_pickle=False``: nothing in the file can run code). Scoring from it needs numba and NumPy only,
so `cybersentinel predict` and the service start in ~1.5 s instead of the ~5 s that importing
scikit-learn, SciPy, LightGBM and skops and rebuilding the pipeline take.

It is the same model, not an approximation: train.py compiles the fitted pipeline only if the compiled
form reproduces ``predict_proba`` on probe URLs, and evaluate.py fails unless it reproduces it on every
test row (to 1e-9). The features come from the same byte kernels (`cybersentinel.features.lexical`) that fitted
the model, and the trees are walked by numba kernels whose raw scores are LightGBM's bit for bit (the
sums run in LightGBM's order). The walk also yields each feature's path contribution (Saabas), which
picks the plain-words reasons: LightGBM's exact SHAP values (``pred_contrib=True``) cost milliseconds a row.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from cybersentinel.core.files import ModelIntegrityError, atomic_path
from cybersentinel.features.familiarity import FITTED_ARRAYS, NameFamiliarity
from cybersentinel.features.lexical import FEATURIZER_VERSION, FeatureDefinitionError, ParsedUrls, url_features
from cybersentinel.features.words import NameWords

_MISSING = {"None": 0, "Zero": 1, "NaN": 2}


@dataclass(frozen=True)
class TreeEnsemble:
    """A LightGBM booster's trees as flat node arrays. Leaves have ``feature == -1``; ``value`` is the
    leaf output, or for a split node LightGBM's ``internal_value`` (what the model predicts there)."""

    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    default_left: np.ndarray
    missing: np.ndarray
    n_features: int

    @classmethod
    def from_booster(cls, booster) -> TreeEnsemble:
        dump = booster.dump_model()
        if dump.get("objective", "").split()[0] != "binary":
            raise ValueError(f"not a binary LightGBM model: {dump.get('objective')!r}")
        nodes: list[tuple] = []  # feature, threshold, left, right, value, default_left, missing
        roots = []

        def add(node: Mapping[str, Any]) -> int:
            index = len(nodes)
            if "leaf_value" in node or "split_feature" not in node:
                nodes.append((-1, 0.0, -1, -1, float(node.get("leaf_value", 0.0)), False, 0))
                return index
            if node["decision_type"] != "<=":
                raise ValueError(f"unsupported split {node['decision_type']!r} (categorical features?)")
            nodes.append(None)
            left, right = add(node["left_child"]), add(node["right_child"])
            nodes[index] = (node["split_feature"], float(node["threshold"]), left, right,
                            float(node["internal_value"]), bool(node["default_left"]),
                            _MISSING[node["missing_type"]])
            return index

        for tree in dump["tree_info"]:
            roots.append(add(tree["tree_structure"]))
        columns = list(zip(*nodes, strict=True))
        return cls(np.asarray(roots, np.int32), np.asarray(columns[0], np.int32), np.asarray(columns[1], np.float64),
                   np.asarray(columns[2], np.int32), np.asarray(columns[3], np.int32),
                   np.asarray(columns[4], np.float64), np.asarray(columns[5], np.bool_),
                   np.asarray(columns[6], np.int8), int(dump["max_feature_idx"]) + 1)

    @classmethod
    def from_xgboost(cls, booster) -> TreeEnsemble:
        """An XGBoost binary:logistic booster's trees. XGBoost goes left when ``x < split`` (float32): the same as
        ``x <= `` the next float32 below it; missing values follow ``default_left``. A split node's value is the
        cover-weighted mean of its children's (XGBoost's own for approximate contributions), and the base score
        is one more tree: a single leaf holding its log-odds."""
        model = json.loads(bytes(booster.save_raw("json")))["learner"]
        objective = model["objective"]["name"]
        if objective != "binary:logistic":
            raise ValueError(f"not a binary:logistic XGBoost model: {objective!r}")
        base = float(str(model["learner_model_param"]["base_score"]).strip("[]"))
        nodes: list[tuple] = []
        roots = []
        for tree in model["gradient_booster"]["model"]["trees"]:
            left, right = tree["left_children"], tree["right_children"]
            split, feature, cover = tree["split_conditions"], tree["split_indices"], tree["sum_hessian"]
            offset = len(nodes)
            values = np.asarray(split, dtype=np.float64)
            for i in reversed(range(len(left))):  # children come after their parent
                if left[i] >= 0:
                    a, b = cover[left[i]], cover[right[i]]
                    values[i] = (values[left[i]] * a + values[right[i]] * b) / (a + b) if a + b > 0 else 0.0
            for i in range(len(left)):
                if left[i] < 0:
                    nodes.append((-1, 0.0, -1, -1, float(values[i]), False, 0))
                else:
                    below = float(np.nextafter(np.float32(split[i]), np.float32(-np.inf)))
                    nodes.append((int(feature[i]), below, offset + left[i], offset + right[i], float(values[i]),
                                  bool(tree["default_left"][i]), _MISSING["NaN"]))
            roots.append(offset)
        roots.append(len(nodes))
        nodes.append((-1, 0.0, -1, -1, float(np.log(base / (1 - base))), False, 0))
        columns = list(zip(*nodes, strict=True))
        return cls(np.asarray(roots, np.int32), np.asarray(columns[0], np.int32), np.asarray(columns[1], np.float64),
                   np.asarray(columns[2], np.int32), np.asarray(columns[3], np.int32),
                   np.asarray(columns[4], np.float64), np.asarray(columns[5], np.bool_),
                   np.asarray(columns[6], np.int8), int(booster.num_features()))

    def predict(self, X: np.ndarray, contributions: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Raw scores (log-odds), and per-feature path contributions (last column: the expected value)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.shape[1] != self.n_features:
            raise ValueError(f"model expects {self.n_features} features, got {X.shape[1]}")
        if self.compact is not None:  # no split routes missing values: LightGBM reads NaN as 0 (so does `_walk8`)
            return _walk8(X, *self.compact, contributions, _NO_LEAVES)
        return _walk(X, self.roots, self.feature, self.threshold, self.left, self.right, self.value,
                     self.default_left, self.missing, contributions)

    def predict_leaves(self, X: np.ndarray) -> tuple[np.ndarray, Any]:
        """Raw scores, and what `leaf_contributions` needs to give the path contributions of chosen rows later,
        equal to `predict`'s: a batch explains about half its rows, and adding every row's contributions was
        40% of the trees' time. Without `compact`, the contributions of all rows, computed here."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.shape[1] != self.n_features:
            raise ValueError(f"model expects {self.n_features} features, got {X.shape[1]}")
        if self.compact is None:
            return self.predict(X)
        leaves = np.empty((len(X), len(self.compact[0])), dtype=np.int32)
        return _walk8(X, *self.compact, False, leaves)[0], leaves

    def leaf_contributions(self, leaves: Any, rows: np.ndarray) -> np.ndarray:
        """`predict`'s contributions of ``rows``, from `predict_leaves`' second value (the same float32 sums)."""
        if self.compact is None:
            return leaves[rows]
        leaf_contrib, bias = self.compact[6:]
        return _leaf_contributions(leaves, rows, leaf_contrib, bias)

    @cached_property
    def compact(self) -> tuple[Any, ...] | None:
        """The trees as `_walk8` reads them, built at load time (the saved arrays stay as they are): each tree's
        nodes in breadth-first order, so the top levels share cache lines and a node's children are adjacent; a
        node as 8 bytes, its threshold as float32 (the largest float32 at most LightGBM's float64 threshold: for
        a float32 feature value ``x > t`` exactly when ``x > t32``) beside ``left << 8 | feature``. Leaves loop to
        themselves (threshold +inf) and every tree is walked to its full depth: a one-URL request reads about
        a third of the cache lines the separate 8-byte feature, threshold and child arrays took. Each leaf has its
        value and its row of the contribution table (the per-feature sums of the value changes on its
        root-to-leaf path). None when some split routes missing values (`_walk` does) or the trees are too large
        for the packing."""
        if (self.missing != 0).any() or len(self.feature) >= 1 << 23 or self.n_features > 256:
            return None
        n, m = len(self.feature), self.n_features
        leaf = self.feature < 0
        order = np.empty(n, dtype=np.int64)  # new position -> old node
        position = np.empty(n, dtype=np.int64)  # old node -> new position
        depth = np.zeros(len(self.roots), dtype=np.int64)
        table = []  # per leaf in new order: its path contributions (float64 sums, as `_walk` adds them up)
        paths: dict[int, tuple[np.ndarray, int]] = {}
        at = 0
        tree_roots = np.empty(len(self.roots), dtype=np.int64)
        for t, root in enumerate(self.roots):
            tree_roots[t] = at
            queue, head = [int(root)], 0
            paths[int(root)] = (np.zeros(m), 0)
            while head < len(queue):  # breadth first: a node's two children are taken together
                node = queue[head]
                head += 1
                order[at], position[node] = node, at
                at += 1
                path, level = paths.pop(node)
                if leaf[node]:
                    depth[t] = max(depth[t], level)
                    table.append(path)
                    continue
                for child in (int(self.left[node]), int(self.right[node])):
                    step = path.copy()
                    step[self.feature[node]] += self.value[child] - self.value[node]
                    paths[child] = (step, level + 1)
                    queue.append(child)
        is_leaf = leaf[order]
        left = np.where(is_leaf, np.arange(n), position[np.where(leaf, 0, self.left)][order])
        if not (is_leaf | (position[np.where(leaf, 0, self.right)][order] == left + 1)).all():
            raise AssertionError("breadth-first order keeps children adjacent")
        threshold = np.where(is_leaf, np.inf, self.threshold[order])
        below = threshold.astype(np.float32)
        below = np.where(below.astype(np.float64) > threshold, np.nextafter(below, np.float32(-np.inf)), below)
        nodes = np.empty(2 * n, dtype=np.int32)
        nodes[0::2] = below.view(np.int32)
        nodes[1::2] = left.astype(np.int32) << 8 | np.where(is_leaf, 0, self.feature[order]).astype(np.int32)
        leaf_of = np.where(is_leaf, np.cumsum(is_leaf) - 1, -1).astype(np.int32)
        bias = 0.0  # the expected value: the roots' values added in tree order, as `_walk` does
        for root in self.roots:
            bias += float(self.value[root])
        return (tree_roots, depth, nodes.view(np.float32), nodes, leaf_of, self.value[order][is_leaf],
                np.asarray(table, dtype=np.float64).reshape(len(table), m).astype(np.float32), bias)


@njit(cache=True)
def _walk(X, roots, feature, threshold, left, right, value, default_left, missing, contributions):
    # Tree-major over blocks of rows: one tree's nodes stay in L1 cache while a block of rows goes through it.
    # Each row still adds its trees' outputs in tree order, so the sum is LightGBM's to the last bit.
    n, m = X.shape
    raw = np.zeros(n, dtype=np.float64)
    contrib = np.zeros((n if contributions else 0, m + 1), dtype=np.float32)
    bias = 0.0
    for t in range(len(roots)):
        bias += value[roots[t]]
    block = 256
    for start in range(0, n, block):
        stop = min(start + block, n)
        for t in range(len(roots)):
            root = roots[t]
            for i in range(start, stop):
                node = root
                while feature[node] >= 0:
                    x = np.float64(X[i, feature[node]])
                    kind = missing[node]
                    if kind != 0 or np.isnan(x):  # LightGBM's NumericalDecision for missing values
                        if np.isnan(x) and kind != 2:
                            x = 0.0
                        if (kind == 1 and -1e-35 <= x <= 1e-35) or (kind == 2 and np.isnan(x)):
                            child = left[node] if default_left[node] else right[node]
                        else:
                            child = left[node] if x <= threshold[node] else right[node]
                    else:
                        child = left[node] if x <= threshold[node] else right[node]
                    if contributions:
                        contrib[i, feature[node]] += value[child] - value[node]
                    node = child
                raw[i] += value[node]
        if contributions:
            for i in range(start, stop):
                contrib[i, m] = bias
    return raw, contrib


@njit(cache=True)
def _walk8(X, roots, depth, thresholds, nodes, leaf_of, leaf_value, leaf_contrib, bias, contributions, leaves):
    # Eight rows at once through each tree, every one for the tree's full depth (leaves loop to themselves):
    # no data-dependent branch, and eight independent chains of loads for the CPU to overlap. The eight positions
    # are plain locals, kept in registers: held in an array, each step went through memory and the walk took 3.7
    # times as long (session 33). The arrays are `TreeEnsemble.compact`'s: a node's float32 threshold at
    # ``thresholds[2 * node]``, ``left << 8 | feature`` at ``nodes[2 * node + 1]``, the right child ``left + 1``.
    # Raw scores add the leaves' values in tree order (LightGBM's sum to the last bit); a row's path contributions
    # are its leaves' rows of the contribution table, added as contiguous (SIMD) vectors. ``leaves``: an (n, trees)
    # array to keep each row's leaf of each tree in (`predict_leaves`), or an empty one.
    n, m = X.shape
    raw = np.zeros(n, dtype=np.float64)
    contrib = np.zeros((n if contributions else 0, m + 1), dtype=np.float32)
    full = n - n % 8
    for start in range(0, n, 256):
        stop = min(start + 256, n)
        for t in range(len(roots)):
            root = roots[t]
            levels = depth[t]
            for i in range(start, min(stop, full), 8):
                a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = root
                for _ in range(levels):
                    a0 = _step(X, i, a0, thresholds, nodes)
                    a1 = _step(X, i + 1, a1, thresholds, nodes)
                    a2 = _step(X, i + 2, a2, thresholds, nodes)
                    a3 = _step(X, i + 3, a3, thresholds, nodes)
                    a4 = _step(X, i + 4, a4, thresholds, nodes)
                    a5 = _step(X, i + 5, a5, thresholds, nodes)
                    a6 = _step(X, i + 6, a6, thresholds, nodes)
                    a7 = _step(X, i + 7, a7, thresholds, nodes)
                _add_leaves8(raw, contrib, leaves, i, 1, t, 0, 8, leaf_of[a0], leaf_of[a1], leaf_of[a2], leaf_of[a3],
                             leaf_of[a4], leaf_of[a5], leaf_of[a6], leaf_of[a7], leaf_value, leaf_contrib,
                             contributions)
        # the last n % 8 rows (a request's few): eight trees at once instead, each row on its own. A tree's walk is
        # a chain of dependent loads, cold after an idle gap: one chain at a time took a one-URL request 100 trees'
        # worth of memory latencies; eight in flight overlap. Leaves are still added in tree order.
        for i in range(max(start, full), stop):
            last = len(roots) - 1
            for t0 in range(0, len(roots), 8):  # past the last tree (fewer than eight left), lanes walk it again
                a0, a1, a2, a3 = roots[t0], roots[min(t0 + 1, last)], roots[min(t0 + 2, last)], roots[min(t0 + 3, last)]
                a4, a5, a6, a7 = (roots[min(t0 + 4, last)], roots[min(t0 + 5, last)], roots[min(t0 + 6, last)],
                                  roots[min(t0 + 7, last)])
                levels = depth[t0:t0 + 8].max()  # a shallower tree's leaf loops to itself
                for _ in range(levels):
                    a0 = _step(X, i, a0, thresholds, nodes)
                    a1 = _step(X, i, a1, thresholds, nodes)
                    a2 = _step(X, i, a2, thresholds, nodes)
                    a3 = _step(X, i, a3, thresholds, nodes)
                    a4 = _step(X, i, a4, thresholds, nodes)
                    a5 = _step(X, i, a5, thresholds, nodes)
                    a6 = _step(X, i, a6, thresholds, nodes)
                    a7 = _step(X, i, a7, thresholds, nodes)
                _add_leaves8(raw, contrib, leaves, i, 0, t0, 1, min(8, last + 1 - t0), leaf_of[a0], leaf_of[a1],
                             leaf_of[a2], leaf_of[a3], leaf_of[a4], leaf_of[a5], leaf_of[a6], leaf_of[a7], leaf_value,
                             leaf_contrib, contributions)
        if contributions:
            for i in range(start, stop):
                contrib[i, m] = bias
    return raw, contrib


@njit(cache=True)
def _leaf_contributions(leaves, rows, leaf_contrib, bias):
    """`_walk8`'s contributions of the given rows from their leaves: the table rows added in tree order."""
    m = leaf_contrib.shape[1]
    contrib = np.zeros((len(rows), m + 1), dtype=np.float32)
    for k in range(len(rows)):
        i = rows[k]
        for t in range(leaves.shape[1]):
            leaf = leaves[i, t]
            for j in range(m):
                contrib[k, j] += leaf_contrib[leaf, j]
        contrib[k, m] = bias
    return contrib


@njit(cache=True, inline="always")
def _step(X, i, node, thresholds, nodes):
    """The child of ``node`` that row ``i`` goes to (a leaf: itself)."""
    packed = nodes[2 * node + 1]
    x = X[i, packed & 255]
    if x != x:  # NaN: LightGBM reads a missing value as 0 when no split routes it
        x = np.float32(0)
    return (packed >> 8) + (x > thresholds[2 * node])


@njit(cache=True, inline="always")
def _add_leaves8(raw, contrib, leaves, i, row_step, t, tree_step, count, l0, l1, l2, l3, l4, l5, l6, l7, leaf_value,
                 leaf_contrib, contributions):
    """The first ``count`` of eight leaves reached, the k-th by row ``i + k * row_step`` in tree ``t + k * tree_step``:
    their values added to the rows' raw scores (for a row, in tree order), kept in ``leaves`` if it is not empty,
    and their contribution rows added if asked. The leaves come as scalars and each option is tested once for all
    eight: a loop over an array of them, one call per leaf, took the batch walk 2.4 times as long (session 33)."""
    if count == 8:
        raw[i] += leaf_value[l0]
        raw[i + row_step] += leaf_value[l1]
        raw[i + 2 * row_step] += leaf_value[l2]
        raw[i + 3 * row_step] += leaf_value[l3]
        raw[i + 4 * row_step] += leaf_value[l4]
        raw[i + 5 * row_step] += leaf_value[l5]
        raw[i + 6 * row_step] += leaf_value[l6]
        raw[i + 7 * row_step] += leaf_value[l7]
    else:
        reached = (l0, l1, l2, l3, l4, l5, l6, l7)
        for k in range(count):
            raw[i + k * row_step] += leaf_value[reached[k]]
    if leaves.shape[0] or contributions:
        reached = (l0, l1, l2, l3, l4, l5, l6, l7)
        for k in range(count):
            row, tree, leaf = i + k * row_step, t + k * tree_step, reached[k]
            if leaves.shape[0]:
                leaves[row, tree] = leaf
            if contributions:
                for j in range(leaf_contrib.shape[1]):
                    contrib[row, j] += leaf_contrib[leaf, j]


_NO_LEAVES = np.empty((0, 0), dtype=np.int32)  # `_walk8` keeps no leaves


def _sigmoid(raw: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-raw))


# URLs of many shapes, scored both ways when a model loads: the fast path is used only if it agrees.
PROBE_URLS = [
    "https://www.google.com/", "http://paypal.com.secure-login.example.tk/webscr?cmd=_login", "example.org",
    "http://192.168.10.5:8080/admin/login.php", "https://github.com/scikit-learn/scikit-learn/issues/1",
    "http://xn--pypal-4ve.com/signin", "http://bit.ly/3abcDEF", "https://docs.python.org/3/library/csv.html",
    "http://free-gift-card.xyz/claim?id=123456789&ref=mail", "http://[2001:db8::1]/index.html",
    "https://accounts.microsoft.com.verify-account.info/update/billing", "http://a.b.c.d.e.f.example.co.uk/x/y/z",
    "https://en.wikipedia.org/wiki/Phishing", "http://login.live.com.account-confirm.ga/dropbox/file.exe",
    "http://user@evil.example.com/http://www.bank.com/", "https://www.amazon.co.uk/gp/cart/view.html",
]


@dataclass(frozen=True)
class Calibrator:
    """A fitted scikit-learn calibration map: isotonic (``x``/``y`` breakpoints, clipped at the ends) or
    sigmoid (``expit(-(a * score + b))``, parameters in ``x``)."""

    method: str
    x: np.ndarray
    y: np.ndarray

    @classmethod
    def from_sklearn(cls, calibrator: Any) -> Calibrator:
        if hasattr(calibrator, "X_thresholds_"):
            return cls("isotonic", np.asarray(calibrator.X_thresholds_, np.float64),
                       np.asarray(calibrator.y_thresholds_, np.float64))
        return cls("sigmoid", np.asarray([calibrator.a_, calibrator.b_], np.float64), np.zeros(0))

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            return np.interp(scores, self.x, self.y)
        return 1.0 / (1.0 + np.exp(self.x[0] * scores + self.x[1]))

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """The map clipped to [0, 1] (and -0.0 read as 0.0): an isotonic map in one kernel call, numba's
        ``np.interp`` (bit for bit NumPy's on the breakpoints, their neighbours and 2.4 million raw scores): a
        request of one URL paid more for NumPy's interp, clip and add than for the rest of the model."""
        if self.method == "isotonic":
            return _interp_clipped(scores, self.x, self.y)
        return np.clip(self(scores), 0.0, 1.0) + 0.0


@njit(cache=True)
def _interp_clipped(scores, x, y):
    out = np.interp(scores, x, y)
    for i in range(len(out)):
        p = out[i]
        out[i] = (0.0 if p < 0.0 else 1.0 if p > 1.0 else p) + 0.0  # as np.clip: NaN stays NaN
    return out


@dataclass(frozen=True)
class UrlScorer:
    """Features, calibrated probability and per-feature contributions of URLs, from arrays alone.

    ``folds`` holds one (trees, calibrator) pair per calibrated model (one, or one per grouped fold when
    calibration.ensemble is true); their probabilities are averaged, as ``CalibratedClassifierCV`` does.
    ``link`` says what the calibrators take: the trees' raw log-odds, or their sigmoid."""

    ngram_range: tuple[int, int]
    n_features: int
    ngram_weights: list[tuple[np.ndarray, float]]  # (coefficients, intercept) of the host and path scorers
    medians: np.ndarray  # training medians of the features: reasons only cite values on the telling side
    folds: list[tuple[TreeEnsemble, Calibrator]]
    link: str
    familiarity: NameFamiliarity | None = None  # the site names' familiarity, when the featurizer has it
    words: NameWords | None = None  # the word lists the host names' words are read with, when the featurizer has them

    def features(self, parsed: ParsedUrls) -> np.ndarray:
        return url_features(parsed, self.ngram_range, self.n_features, self.ngram_weights, self.familiarity,
                            self.words)

    def predict(self, X: np.ndarray, contributions: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities, and the folds' mean log-odds path contributions (last column: bias)."""
        if len(self.folds) == 1:  # no mean to take: four array operations fewer for a request of one URL
            (trees, calibrator), = self.folds
            raw, contrib = trees.predict(X, contributions)
            return calibrator.probabilities(raw if self.link == "raw" else _sigmoid(raw)), contrib
        proba = np.zeros(len(X))
        contrib = np.zeros((len(X) if contributions else 0, X.shape[1] + 1), dtype=np.float32)
        for trees, calibrator in self.folds:
            raw, fold_contrib = trees.predict(X, contributions)
            proba += calibrator.probabilities(raw if self.link == "raw" else _sigmoid(raw))  # +0.0 + -0.0 is +0.0
            contrib += fold_contrib
        return proba / len(self.folds), contrib / len(self.folds)

    def predict_deferred(self, X: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        """`predict`'s probabilities, and a function giving its contributions of chosen rows (indices into ``X``)
        only when asked: the batch path explains about half its rows."""
        found = []
        proba = np.zeros(len(X))
        for trees, calibrator in self.folds:
            raw, leaves = trees.predict_leaves(X)
            found.append((trees, leaves))
            probabilities = calibrator.probabilities(raw if self.link == "raw" else _sigmoid(raw))
            if len(self.folds) == 1:
                proba = probabilities
            else:
                proba += probabilities  # as `predict` adds them
        if len(self.folds) > 1:
            proba = proba / len(self.folds)

        def contributions(rows: np.ndarray) -> np.ndarray:
            rows = np.asarray(rows, dtype=np.int64)
            if len(found) == 1:
                return found[0][0].leaf_contributions(found[0][1], rows)
            contrib = np.zeros((len(rows), X.shape[1] + 1), dtype=np.float32)
            for trees, leaves in found:
                contrib += trees.leaf_contributions(leaves, rows)
            return contrib / len(found)

        return proba, contributions

    @classmethod
    def from_pipeline(cls, model: Any) -> UrlScorer | None:
        """The compiled form of a fitted ``Pipeline([("features", UrlFeaturizer), ("classifier",
        CalibratedClassifierCV of LGBMClassifier)])`` if it reproduces ``predict_proba`` on ``PROBE_URLS``;
        None for any other model (those are scored through scikit-learn)."""
        featurizer, classifier = model.named_steps.get("features"), model.named_steps.get("classifier")
        folds = getattr(classifier, "calibrated_classifiers_", None)
        if not hasattr(featurizer, "ngram_weights") or not folds or any(len(f.calibrators) != 1 for f in folds):
            return None
        compiled = []
        for fold in folds:
            inner = getattr(fold.estimator, "estimator", fold.estimator)  # FrozenEstimator or the classifier
            if type(inner).__name__ != "LGBMClassifier" or len(getattr(inner, "classes_", [])) != 2:
                return None
            compiled.append((TreeEnsemble.from_booster(inner.booster_), Calibrator.from_sklearn(fold.calibrators[0])))
        expected = model.predict_proba(PROBE_URLS)[:, 1]
        for link in ("raw", "sigmoid"):
            scorer = cls(tuple(featurizer.ngram_range), int(featurizer.n_features), featurizer.ngram_weights(),
                         np.asarray(featurizer.medians_, np.float32), compiled, link, featurizer.familiarity(),
                         featurizer.name_words())
            if scorer.max_difference(PROBE_URLS, expected) <= 1e-9:
                return scorer
        return None

    def scores(self, urls: Any) -> np.ndarray:
        return self.predict(self.features(ParsedUrls(urls)), contributions=False)[0]

    def max_difference(self, urls: Any, expected: np.ndarray) -> float:
        """The largest absolute difference from ``expected`` (the pipeline's probabilities of ``urls``)."""
        return float(np.max(np.abs(self.scores(urls) - expected), initial=0.0))

    # -------------------------------------------------------------------------------------------- files

    def save(self, path: str | Path) -> str:
        """Write the arrays reproducibly (sorted entries, fixed timestamps) and atomically; return the
        file's SHA-256 for the manifest."""
        arrays = {"version": np.asarray(FEATURIZER_VERSION), "link": np.asarray(self.link),
                  "ngram_range": np.asarray(self.ngram_range, np.int64),
                  "n_features": np.asarray(self.n_features, np.int64), "medians": self.medians}
        for j, (coef, intercept) in enumerate(self.ngram_weights):
            arrays[f"ngram{j}.coef"], arrays[f"ngram{j}.intercept"] = coef, np.asarray(intercept, np.float64)
        if self.familiarity is not None:
            arrays |= {f"familiarity.{name}": getattr(self.familiarity, name) for name in FITTED_ARRAYS}
        if self.words is not None:
            arrays["words.keys"] = self.words.keys
        for i, (trees, calibrator) in enumerate(self.folds):
            arrays |= {f"fold{i}.trees.{name}": np.asarray(getattr(trees, name)) for name in TREE_ARRAYS}
            arrays |= {f"fold{i}.calibrator.method": np.asarray(calibrator.method),
                       f"fold{i}.calibrator.x": calibrator.x, f"fold{i}.calibrator.y": calibrator.y}
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:  # stored: loads without inflating
            for name in sorted(arrays):
                with archive.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w") as entry:
                    np.lib.format.write_array(entry, np.asarray(arrays[name]), allow_pickle=False)
        data = out.getvalue()
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        return hashlib.sha256(data).hexdigest()

    @classmethod
    def load(cls, path: str | Path, sha256: str) -> UrlScorer:
        """Read a compiled scorer, only if its bytes hash to ``sha256`` (no object in it can run code)."""
        data = Path(path).read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ModelIntegrityError(f"{path}: SHA-256 {actual} does not match the recorded {sha256}; "
                                      "refusing to load")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        if str(arrays["version"]) != FEATURIZER_VERSION:
            raise FeatureDefinitionError(f"{path} was compiled with feature definitions {str(arrays['version'])!r}, "
                                         f"the code computes {FEATURIZER_VERSION!r}: retrain the model (dvc repro)")
        weights = [(arrays[f"ngram{j}.coef"], float(arrays[f"ngram{j}.intercept"]))
                   for j in range(2) if f"ngram{j}.coef" in arrays]
        folds = []
        while f"fold{len(folds)}.trees.roots" in arrays:
            prefix = f"fold{len(folds)}."
            trees = TreeEnsemble(*(arrays[prefix + "trees." + name] for name in TREE_ARRAYS[:-1]),
                                 n_features=int(arrays[prefix + "trees.n_features"]))
            calibrator = Calibrator(str(arrays[prefix + "calibrator.method"]), arrays[prefix + "calibrator.x"],
                                    arrays[prefix + "calibrator.y"])
            folds.append((trees, calibrator))
        familiarity = NameFamiliarity(*(arrays[f"familiarity.{name}"] for name in FITTED_ARRAYS)) \
            if "familiarity.grams" in arrays else None
        words = NameWords(arrays["words.keys"]) if "words.keys" in arrays else None
        return cls(tuple(int(v) for v in arrays["ngram_range"]), int(arrays["n_features"]), weights,
                   arrays["medians"], folds, str(arrays["link"]), familiarity, words)


def write_compiled(model: Any, model_dir: str | Path, name: str = "scorer.npz") -> dict[str, str] | None:
    """Compile ``model`` into ``model_dir/name`` and return the manifest's ``compiled`` entry (file and
    SHA-256); None, and no file, when the model has no compiled form."""
    path = Path(model_dir) / name
    scorer = UrlScorer.from_pipeline(model)
    if scorer is None:
        path.unlink(missing_ok=True)
        return None
    return {"file": name, "sha256": scorer.save(path)}


TREE_ARRAYS = ("roots", "feature", "threshold", "left", "right", "value", "default_left", "missing", "n_features")

