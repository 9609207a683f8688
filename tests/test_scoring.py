"""The detector: the tree kernel reproduces LightGBM and scikit-learn's calibrated probabilities, reasons
explain flagged rows in plain words, unusable rows get an error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures_model import mirror_dir, model_dir  # noqa: F401

from cybersentinel.features import FEATURE_DESCRIPTIONS, LOW_VALUE_DESCRIPTIONS
from cybersentinel.scoring import Detector


@pytest.fixture(scope="module")
def detector(model_dir) -> Detector:  # noqa: F811
    return Detector.from_dir(model_dir)


@pytest.fixture(scope="module")
def urls() -> list[str]:
    import json

    mirror = mirror_dir()
    legit = json.loads((mirror / "data_legitimate_36400.json").read_text())
    phish = json.loads((mirror / "data_phishing_37175.json").read_text())
    rng = np.random.default_rng(1)
    return [*rng.choice(legit, 1500).tolist(), *rng.choice(phish, 1500).tolist()]


def test_fast_path_reproduces_the_evaluated_model(detector, urls):
    assert detector.trees is not None
    X = detector.model.named_steps["features"].transform(pd.DataFrame({"url": urls}))
    folds = detector.model.named_steps["classifier"].calibrated_classifiers_
    for trees, fold in zip(detector.trees, folds, strict=True):
        booster = getattr(fold.estimator, "estimator", fold.estimator).booster_
        raw, contrib = trees.predict(X)
        np.testing.assert_array_equal(raw, booster.predict(X, raw_score=True))  # LightGBM's own sum, bit for bit
        np.testing.assert_allclose(contrib.sum(axis=1), raw, atol=1e-3)  # path contributions add up to the score
    scored = detector.score_urls(urls)
    expected = detector.model.predict_proba(pd.DataFrame({"url": urls}))[:, 1]
    np.testing.assert_allclose(scored["score"].to_numpy(), expected, atol=1e-6)
    assert (scored["error"] == "").all()


def test_reasons_explain_flagged_rows_in_plain_words(detector, urls):
    scored = detector.score_urls(urls)
    phrases = set(FEATURE_DESCRIPTIONS.values()) | set(LOW_VALUE_DESCRIPTIONS.values())
    flagged = scored["verdict"] != "benign"
    assert (scored.loc[~flagged, "reasons"] == "").all()
    assert (scored.loc[flagged, "reasons"] != "").mean() > 0.9
    for text in scored.loc[flagged, "reasons"].unique():
        parts = [p for p in text.split("; ") if p]
        assert len(parts) <= 3 and set(parts) <= phrases


def test_verdicts_follow_threshold_and_band(detector):
    t, low = detector.threshold, detector.suspicious_from
    assert list(detector.verdicts(np.array([t, (t + low) / 2, low - 1e-3]))) == ["malicious", "suspicious", "benign"]


def test_unusable_rows_get_an_error_not_a_score(detector):
    values = ["", "   ", "x" * 70_000, "http://", "bad host/x", "http://ok.example.com/", None, b"\xff\xfe"]
    scored = detector.score_urls(values)
    assert len(scored) == len(values)
    assert list(scored["error"].str.split(" ").str[0]) == ["empty", "empty", "URL", "no", "host", "", "empty", "host"]
    assert scored.loc[scored["error"] != "", "score"].isna().all()
    assert scored.loc[5, "verdict"] in ("benign", "suspicious", "malicious")


def test_interleaved_kernel_matches_the_general_walk_and_lightgbm_on_odd_inputs(detector, urls):
    from cybersentinel.scoring import _walk

    trees = detector.trees[0]
    assert trees.interleaved is not None  # no split of this model routes missing values
    X = detector.model.named_steps["features"].transform(pd.DataFrame({"url": urls[:203]}))  # not a multiple of 8
    X[::7, ::5] = np.nan
    X[1::11, 2] = np.inf
    raw, contrib = trees.predict(X)
    raw_general, contrib_general = _walk(X, trees.roots, trees.feature, trees.threshold, trees.left, trees.right,
                                         trees.value, trees.default_left, trees.missing, True)
    folds = detector.model.named_steps["classifier"].calibrated_classifiers_
    booster = getattr(folds[0].estimator, "estimator", folds[0].estimator).booster_
    np.testing.assert_array_equal(raw, raw_general)
    np.testing.assert_array_equal(raw, booster.predict(X, raw_score=True))
    np.testing.assert_allclose(contrib, contrib_general, atol=1e-4)
