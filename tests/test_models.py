import io
import zipfile

import numpy as np
import pytest
import skops.io as sio
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.preprocessing import FunctionTransformer

from cybersentinel.model.estimators import (
    ModelIntegrityError,
    build_estimator,
    choose_threshold,
    load_model,
    save_model,
    search_space,
)
from cybersentinel.model.metrics import classification_metrics, group_weights, tpr_at_fpr


def brute_force_threshold(y, scores, objective):
    best, best_value = None, -1
    for t in sorted(set(scores) | {0.5}):
        pred = scores >= t
        tp, fp = (pred & (y == 1)).sum(), (pred & (y == 0)).sum()
        fn, tn = (~pred & (y == 1)).sum(), (~pred & (y == 0)).sum()
        value = (tp + tn) / len(y) if objective == "accuracy" else 2 * tp / max(2 * tp + fp + fn, 1)
        if value > best_value:
            best, best_value = t, value
    return best


@pytest.mark.parametrize("objective", ["accuracy", "f1"])
def test_choose_threshold_matches_brute_force(objective):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    scores = np.clip(y * 0.3 + rng.random(300) * 0.7, 0, 1).round(3)
    assert choose_threshold(y, scores, objective) == pytest.approx(brute_force_threshold(y, scores, objective))


@pytest.mark.parametrize("name", ["logreg", "random_forest", "xgboost", "lightgbm"])
def test_every_configured_model_trains_calibrates_and_round_trips(tmp_path, name):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(240, 4))
    y = (X[:, 0] + 0.3 * rng.normal(size=240) > 0).astype(int)
    model = build_estimator({"name": name, "params": {}}, seed=0).fit(X[:160], y[:160])
    calibrated = CalibratedClassifierCV(FrozenEstimator(model), method="sigmoid").fit(X[160:], y[160:])
    sha = save_model(calibrated, tmp_path / "m.skops")
    assert save_model(calibrated, tmp_path / "again.skops") == sha  # byte-reproducible
    loaded = load_model(tmp_path / "m.skops", sha)
    np.testing.assert_allclose(loaded.predict_proba(X), calibrated.predict_proba(X))


def test_logreg_search_space_targets_the_pipeline_step():
    assert search_space({"name": "logreg", "search": {"C": [0.1, 1]}}) == {"logisticregression__C": [0.1, 1]}


def test_load_refuses_a_modified_file(tmp_path):
    model = build_estimator({"name": "logreg", "params": {}}, 0).fit([[0.0], [1.0]], [0, 1])
    sha = save_model(model, tmp_path / "m.skops")
    data = bytearray((tmp_path / "m.skops").read_bytes())
    data[-30] ^= 0xFF
    (tmp_path / "m.skops").write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="does not match"):
        load_model(tmp_path / "m.skops", sha)


def test_load_refuses_types_outside_the_allowlist(tmp_path):
    # A correctly hashed file whose transformer would call eval(): skops could load it if trusted; we refuse.
    path = tmp_path / "evil.skops"
    path.write_bytes(sio.dumps(FunctionTransformer(func=eval)))
    from cybersentinel.core.files import sha256_file

    with pytest.raises(ModelIntegrityError, match="allowlist"):
        load_model(path, sha256_file(path))


def test_saved_archive_has_fixed_timestamps_and_names(tmp_path):
    model = build_estimator({"name": "random_forest", "params": {"n_estimators": 3}}, 0).fit([[0], [1]] * 5, [0, 1] * 5)
    save_model(model, tmp_path / "m.skops")
    archive = zipfile.ZipFile(io.BytesIO((tmp_path / "m.skops").read_bytes()))
    assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert all(n == "schema.json" or n[:6].isdigit() for n in archive.namelist())


def test_metrics_on_a_known_case():
    y = np.array([0, 0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.95])
    metrics = classification_metrics(y, scores, threshold=0.5)
    assert metrics["accuracy"] == pytest.approx(5 / 6, abs=1e-5)
    assert metrics["precision"] == pytest.approx(2 / 3, abs=1e-5)
    assert metrics["recall"] == 1.0
    assert tpr_at_fpr(y, scores, 0.0) == 0.5  # at zero false positives only the 0.95 case is caught


def test_grouped_calibration_scores_rows_only_with_models_that_did_not_train_on_them():
    from sklearn.metrics import roc_auc_score

    from cybersentinel.model.estimators import calibrate_grouped

    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(400, 5)), rng.integers(0, 2, 400)  # labels are noise
    groups = np.arange(400) // 4
    estimator = build_estimator({"name": "random_forest", "params": {"n_estimators": 30}}, seed=0)
    model, held_out = calibrate_grouped(estimator, X, y, groups, folds=4, method="isotonic",
                                        ensemble=False, n_jobs=1, seed=0)
    # In-sample, the forest has memorised the noise; the held-out scores have not.
    assert roc_auc_score(y, model.calibrated_classifiers_[0].estimator.predict_proba(X)[:, 1]) > 0.9
    assert abs(roc_auc_score(y, held_out) - 0.5) < 0.1


@pytest.mark.parametrize("name", ["lightgbm", "logreg"])
def test_grouped_calibration_equals_scikit_learns_own(name):
    from sklearn.calibration import CalibratedClassifierCV

    from cybersentinel.model.estimators import calibrate_grouped

    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + rng.normal(size=300) > 0).astype(int)
    groups = np.arange(300) // 3
    estimator = build_estimator({"name": name, "params": {}}, seed=0)
    ours, _ = calibrate_grouped(estimator, X, y, groups, folds=3, method="isotonic", ensemble=False,
                                n_jobs=1, seed=5)
    from sklearn.model_selection import StratifiedGroupKFold

    splits = list(StratifiedGroupKFold(3, shuffle=True, random_state=5).split(X, y, groups))
    theirs = CalibratedClassifierCV(estimator, method="isotonic", cv=splits, ensemble=False).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X))
    assert len(ours.calibrated_classifiers_) == 1


def test_centred_isotonic_calibration_orders_what_isotonic_ties_and_survives_a_round_trip(tmp_path):
    from sklearn.isotonic import IsotonicRegression

    from cybersentinel.model.compiled import Calibrator
    from cybersentinel.model.estimators import calibrate_grouped, centre_isotonic

    steps = IsotonicRegression(out_of_bounds="clip").fit([0, 1, 2, 3, 4, 5], [0, 0, 0.5, 0.5, 1, 1])
    centre_isotonic(steps)  # steps at 0, 0.5, 1 on [0, 1], [2, 3], [4, 5]: centres 0.5, 2.5, 4.5
    np.testing.assert_allclose(steps.predict([0, 0.5, 1.5, 2.5, 3.5, 4.5, 5, 9]),
                               [0, 0, 0.25, 0.5, 0.75, 1, 1, 1])
    rng = np.random.default_rng(3)
    X = rng.normal(size=(600, 4))
    y = (X[:, 0] + rng.normal(size=600) > 0).astype(int)
    groups = np.arange(600) // 3
    estimator = build_estimator({"name": "lightgbm", "params": {"n_estimators": 20}}, seed=0)
    plain, plain_held_out = calibrate_grouped(estimator, X, y, groups, folds=3, method="isotonic", ensemble=False,
                                              n_jobs=1, seed=5)
    centred, held_out = calibrate_grouped(estimator, X, y, groups, folds=3, method="centred_isotonic",
                                          ensemble=False, n_jobs=1, seed=5)
    scores, plain_scores = centred.predict_proba(X)[:, 1], plain.predict_proba(X)[:, 1]
    assert len(np.unique(held_out)) > 2 * len(np.unique(plain_held_out))  # the steps' rows are told apart
    assert len(np.unique(scores)) > 2 * len(np.unique(plain_scores))
    raw = centred.calibrated_classifiers_[0].estimator.predict_proba(X)[:, 1]
    assert (np.diff(scores[np.argsort(raw, kind="stable")]) >= 0).all()  # still monotone in the model's score
    assert abs(scores.mean() - plain_scores.mean()) < 0.02  # and as calibrated on average
    path = tmp_path / "m.skops"
    sha = save_model(centred, path)
    np.testing.assert_array_equal(load_model(path, sha).predict_proba(X), centred.predict_proba(X))
    calibrator = centred.calibrated_classifiers_[0].calibrators[0]  # what the compiled scorer serves
    np.testing.assert_allclose(Calibrator.from_sklearn(calibrator)(raw), calibrator.predict(raw), atol=1e-12)


def test_root_page_weights_give_both_classes_the_pooled_share_of_root_pages_and_keep_their_totals():
    from cybersentinel.model.estimators import root_page_weights

    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    root = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0], dtype=bool)  # legitimate 3 of 4, phishing 1 of 5; pooled 4 of 9
    weights = root_page_weights(y, root)
    for label in (0, 1):
        rows = y == label
        assert weights[rows].sum() == pytest.approx(rows.sum())
        assert weights[rows & root].sum() / weights[rows].sum() == pytest.approx(4 / 9)
    assert weights[0] < 1 < weights[3]  # a legitimate root page counts less, a legitimate page more
    assert weights[4] > 1 > weights[5]  # a phishing root page more, a phishing page less
    # a class without root pages (or with nothing else) cannot be re-balanced: it keeps weight 1
    np.testing.assert_array_equal(root_page_weights(np.array([0, 0, 1, 1]), np.array([1, 0, 0, 0], bool))[2:], 1.0)
    np.testing.assert_array_equal(root_page_weights(np.array([0, 0, 1]), np.array([1, 1, 0], bool)), 1.0)


def test_root_page_weights_of_a_partial_strength_go_part_of_the_way_and_keep_the_totals():
    from cybersentinel.model.estimators import root_page_weights

    y = np.array([0] * 10 + [1] * 10)
    root = np.array([True] * 8 + [False] * 2 + [True] * 2 + [False] * 8)  # 80% and 20%; pooled 50%
    np.testing.assert_array_equal(root_page_weights(y, root, 0.0), 1.0)
    shares = []
    for strength in (0.25, 0.5, 1.0):
        weights = root_page_weights(y, root, strength)
        assert weights[y == 0].sum() == pytest.approx(10) and weights[y == 1].sum() == pytest.approx(10)
        shares.append(weights[(y == 0) & root].sum() / 10)
    assert 0.8 > shares[0] > shares[1] > shares[2] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        root_page_weights(y, root, 1.5)


def test_training_weights_read_root_pages_from_the_path_depth_feature_when_asked():
    from cybersentinel.model.estimators import root_page_weights, training_weights

    X = np.array([[0.0, 5], [2.0, 1], [0.0, 3], [1.0, 0]])
    y = np.array([0, 0, 1, 1])
    names = ["path_depth", "url_length"]
    np.testing.assert_array_equal(training_weights(X, y, names, 0.5),
                                  root_page_weights(y, np.array([True, False, True, False]), 0.5))
    assert training_weights(X, y, names, 0.0) is None
    assert training_weights(X, y, ["having_ip", "url_length"], 1.0) is None  # a tabular dataset: no paths


@pytest.mark.parametrize("name", ["lightgbm", "logreg"])
def test_grouped_calibration_fits_its_classifier_with_the_row_weights(name):
    from sklearn.base import clone

    from cybersentinel.model.estimators import calibrate_grouped, fit_params

    rng = np.random.default_rng(6)
    X = rng.normal(size=(400, 4))
    y = (X[:, 0] + rng.normal(size=400) > 0).astype(int)
    weights = np.where(X[:, 1] > 0, 5.0, 0.2)
    groups = np.arange(400) // 4
    estimator = build_estimator({"name": name, "params": {"n_estimators": 30} if name == "lightgbm" else {}}, seed=0)
    weighted, weighted_held_out = calibrate_grouped(estimator, X, y, groups, folds=3, method="isotonic",
                                                    ensemble=False, n_jobs=1, seed=5, sample_weight=weights)
    plain, plain_held_out = calibrate_grouped(estimator, X, y, groups, folds=3, method="isotonic", ensemble=False,
                                              n_jobs=1, seed=5)
    direct = clone(estimator).fit(X, y, **fit_params(estimator, weights))  # a pipeline's last step takes them
    np.testing.assert_array_equal(weighted.calibrated_classifiers_[0].estimator.predict_proba(X),
                                  direct.predict_proba(X))
    assert not np.allclose(weighted.calibrated_classifiers_[0].estimator.predict_proba(X),
                           plain.calibrated_classifiers_[0].estimator.predict_proba(X))
    assert not np.allclose(weighted_held_out, plain_held_out)  # the out-of-fold fits are weighted too


def test_ensemble_calibration_scores_each_row_with_the_fold_that_held_it_out():
    from cybersentinel.model.estimators import calibrate_grouped

    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(300, 3)), rng.integers(0, 2, 300)
    estimator = build_estimator({"name": "random_forest", "params": {"n_estimators": 20}}, seed=0)
    model, held_out = calibrate_grouped(estimator, X, y, np.arange(300) // 3, folds=3, method="sigmoid",
                                        ensemble=True, n_jobs=1, seed=1)
    assert len(model.calibrated_classifiers_) == 3
    assert held_out.min() >= 0 and held_out.max() <= 1
    assert not np.allclose(held_out, model.predict_proba(X)[:, 1])  # not the in-sample average


def test_per_group_metrics_weigh_every_group_the_same():
    # one big site scored right on all four rows, two small sites each scored wrong
    groups = np.array(["big.org"] * 4 + ["a.tk", "b.tk"])
    y = np.array([0, 0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.1, 0.1, 0.1, 0.2, 0.3])
    weights = group_weights(groups)
    np.testing.assert_allclose(weights, [0.25] * 4 + [1, 1])
    assert classification_metrics(y, scores, 0.5)["accuracy"] == pytest.approx(4 / 6, abs=1e-5)
    per_group = classification_metrics(y, scores, 0.5, weights)
    assert per_group["accuracy"] == pytest.approx(1 / 3, abs=1e-5) and per_group["rows"] == 6


def test_metrics_of_a_one_class_slice_are_null_not_nan():
    metrics = classification_metrics(np.array([1, 1, 1]), np.array([0.9, 0.2, 0.8]), threshold=0.5)
    assert metrics["roc_auc"] is None and metrics["pr_auc"] is None
    assert metrics["recall"] == pytest.approx(2 / 3, abs=1e-5)


def test_budget_threshold_holds_for_every_source():
    rng = np.random.default_rng(3)
    y = np.r_[np.zeros(2000), np.ones(500)].astype(int)
    sources = np.r_[np.repeat(["calm", "noisy"], 1000), np.repeat(["phish"], 500)]
    scores = np.r_[rng.uniform(0, 0.3, 1000), rng.uniform(0, 0.9, 1000), rng.uniform(0.5, 1, 500)]
    t = choose_threshold(y, scores, "fp_budget", max_fpr=0.005, sources=sources)
    for source in ("calm", "noisy"):
        assert np.mean(scores[sources == source] >= t) <= 0.005
    # pooled over both sources the budget would be met at a lower cut-off, which the noisy source would exceed
    pooled = choose_threshold(y, scores, "fp_budget", max_fpr=0.005)
    assert pooled < t and np.mean(scores[sources == "noisy"] >= pooled) > 0.005


def test_budget_threshold_spends_the_budget_on_rows_the_served_decision_can_flag():
    y = np.zeros(1000, dtype=int)
    scores = np.r_[np.linspace(0.1, 0.5, 990), np.full(10, 0.95)]
    flaggable = np.r_[np.ones(990, bool), np.zeros(10, bool)]  # a popular site's pages: halved whatever the score
    assert choose_threshold(y, scores, "fp_budget", max_fpr=0.005) > 0.95
    t = choose_threshold(y, scores, "fp_budget", max_fpr=0.005, flaggable=flaggable)
    assert t < 0.5 and np.mean(flaggable & (scores >= t)) == 0.005  # the served decision's share: the budget itself


def test_budget_threshold_with_ties_never_exceeds_the_budget():
    y = np.zeros(1000, dtype=int)
    scores = np.r_[np.full(990, 0.1), np.full(10, 0.8)]  # isotonic calibration makes such plateaus
    t = choose_threshold(y, scores, "fp_budget", max_fpr=0.005)
    assert np.mean(scores >= t) <= 0.005 and t > 0.8


def test_harrell_davis_budget_moves_less_with_the_row_nearest_the_cut_off():
    rng = np.random.default_rng(5)
    y = np.zeros(2000, dtype=int)  # a budget of 0.25%: 5 rows may be flagged, the 6th highest may not
    scores = np.sort(rng.uniform(0, 1, 2000))
    step = (scores[-5] - scores[-6]) / 2
    nudged = scores.copy()
    nudged[-6] += step  # one row, the 6th highest, moves half way to the 5th
    moved = {}
    for estimator in ("order_statistic", "harrell_davis"):
        before = choose_threshold(y, scores, "fp_budget", max_fpr=0.0025, estimator=estimator)
        moved[estimator] = choose_threshold(y, nudged, "fp_budget", max_fpr=0.0025, estimator=estimator) - before
        assert 0.99 < before < 1.0 and np.mean(scores >= before) <= 0.004
    assert moved["order_statistic"] == pytest.approx(step, rel=1e-6)  # the cut-off sits on that one row
    assert 0 < moved["harrell_davis"] < 0.4 * step  # a weighted mean of every row: that row weighs a fraction
    with pytest.raises(ValueError, match="threshold estimator"):
        choose_threshold(y, scores, "fp_budget", max_fpr=0.0025, estimator="median")


def test_harrell_davis_budget_never_splits_a_plateau_past_the_budget():
    y = np.zeros(1000, dtype=int)
    scores = np.r_[np.full(990, 0.1), np.full(10, 0.8)]  # plain isotonic calibration makes such plateaus
    t = choose_threshold(y, scores, "fp_budget", max_fpr=0.005, estimator="harrell_davis")
    assert np.mean(scores >= t) <= 0.005 and t > 0.8
    flaggable = np.r_[np.ones(995, bool), np.zeros(5, bool)]  # half the plateau cannot be flagged on its score
    t = choose_threshold(y, scores, "fp_budget", max_fpr=0.005, flaggable=flaggable, estimator="harrell_davis")
    assert np.mean(flaggable & (scores >= t)) <= 0.005


def test_fit_recipe_reads_the_budget_with_the_estimator_asked_for():
    from fixtures_model import FEATURIZER, MODEL, labelled_sample, mirror_dir

    from cybersentinel.model.generalisation import fit_recipe

    sample, groups, dataset = labelled_sample(mirror_dir(), 300)
    train = sample.assign(group=groups, source=np.where(np.arange(len(sample)) % 2, "one", "two"))
    calibration = {"folds": 3, "method": "centred_isotonic", "ensemble": False}
    thresholds = {}
    for estimator in ("order_statistic", "harrell_davis"):
        _, classifier, thresholds[estimator] = fit_recipe(train, dataset, FEATURIZER, MODEL, {}, calibration, 0.0025,
                                                          0, threshold_estimator=estimator)
        assert 0.0 < thresholds[estimator] <= 1.0 and hasattr(classifier, "predict_proba")
    assert thresholds["order_statistic"] != thresholds["harrell_davis"]
    with pytest.raises(ValueError, match="threshold estimator"):
        fit_recipe(train, dataset, FEATURIZER, MODEL, {}, calibration, 0.0025, 0, threshold_estimator="median")


def test_grouped_interval_resamples_whole_sites():
    from cybersentinel.model.metrics import grouped_interval, weighted_share

    # 2,000 URLs, flagged on 10 of 100 sites (every URL of a site alike): site by site, the share is uncertain
    flags = np.repeat(np.arange(100) < 10, 20).astype(float)
    by_site = grouped_interval(np.repeat(np.arange(100), 20), weighted_share(flags), resamples=300, seed=1)
    by_url = grouped_interval(np.arange(2000), weighted_share(flags), resamples=300, seed=1)
    assert by_site[0] < 0.1 < by_site[1] and by_url[0] < 0.1 < by_url[1]
    assert by_site[1] - by_site[0] > 3 * (by_url[1] - by_url[0])  # rows of one site rise and fall together
    assert by_site == grouped_interval(np.repeat(np.arange(100), 20), weighted_share(flags), resamples=300, seed=1)


def test_generalisation_figures_and_intervals_leave_unscored_rows_out_of_the_ranking():
    from cybersentinel.model.generalisation import shares_and_ranking

    y = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.2, np.nan, 0.9, 0.15, 0.8])
    flagged = np.array([False, True, False, True, False, True])
    groups = np.array(["a.org", "b.org", "c.org", "d.tk", "e.tk", "f.tk"])
    out = shares_and_ranking(y, scores, flagged, groups, resamples=50, seed=0, prefix="served_")
    assert out["served_roc_auc"] == pytest.approx(5 / 6, abs=1e-5)  # over the five scored rows
    assert out["served_fpr"] == pytest.approx(1 / 3, abs=1e-5)  # the unscored row counts as not flagged
    assert out["served_recall"] == pytest.approx(2 / 3, abs=1e-5)
    for key in ("served_roc_auc", "served_fpr", "served_recall"):
        low, high = out[f"{key}_ci"]
        assert 0 <= low <= out[key] <= high <= 1
    assert "served_tpr_at_1pct_fpr_ci" not in out
    plain = shares_and_ranking(y[:2], scores[:2], flagged[:2], groups[:2], resamples=0, seed=0)
    assert plain == {"fpr_at_threshold": 0.5}  # one class: no ranking; no resamples: no intervals
    # rows called at least `suspicious`: a share of each class beside the `malicious` one, the unscored row not warned
    warned = flagged | np.array([True, False, False, False, True, False])
    both = shares_and_ranking(y, scores, flagged, groups, resamples=50, seed=0, prefix="served_", warned=warned)
    assert both["served_warned_fpr"] == pytest.approx(2 / 3, abs=1e-5) and both["served_warned_recall"] == 1.0
    assert both["served_fpr"] == out["served_fpr"] and both["served_recall"] == out["served_recall"]
    low, high = both["served_warned_fpr_ci"]
    assert 0 <= low <= both["served_warned_fpr"] <= high <= 1


def test_training_only_rows_are_never_a_collection_held_out_and_stay_out_of_what_is_known_before_the_cut_off():
    import pandas as pd

    from cybersentinel.model.generalisation import forward_rows, held_out_collections, loco_rows

    table = pd.DataFrame({
        "url": ["http://a.com/x", "http://b.org/", "http://c.com.br/kit", "http://d.com/", "http://e.com.br/",
                "http://f.net/y"],
        "label": [0, 0, 1, 1, 0, 1], "group": ["a.com", "b.org", "c.com.br", "d.com", "e.com.br", "f.net"],
        "source": ["legit", "legit", "kits", "kits", "country_homepages", "feedback"],
        "split": ["train", "test", "train", "test", "train", "train"],
        "synthetic": [False, False, False, False, True, False],
        "year": pd.array([2019, 2019, 2020, 2023, None, 2020], dtype="Float64")})
    assert held_out_collections(table, ["feedback"]) == ["kits", "legit"]
    training, evaluation = loco_rows(table, "kits")
    assert training.tolist() == [True, False, False, False, True, True]  # the homepage trains every fold
    training, evaluation = forward_rows(table, 2021)
    assert training.tolist() == [True, False, True, False, False, True]  # today's list is not the past's
    assert evaluation.tolist() == [False, True, False, True, False, False]
