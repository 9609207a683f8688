"""`train.engine: dask` on the shared two-worker LocalCluster: LightGBM and XGBoost trained through their Dask
estimators come back as ordinary boosters that score in the compiled walker as Booster.predict does, with a test
ROC-AUC within 0.002 of local training on the same data and row weights; the grouped calibration runs unchanged and
the saved model holds only the usual types; featurizing per partition equals featurizing at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_dask import dask_client  # noqa: F401
from fixtures_model import FEATURIZER, labelled_sample, mirror_dir
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import Pipeline

from cybersentinel.features.featurizer import build_featurizer
from cybersentinel.model.compiled import TreeEnsemble, write_compiled
from cybersentinel.model.estimators import build_estimator, calibrate_grouped, load_model, save_model

MODELS = {"lightgbm": {"name": "lightgbm", "params": {"n_estimators": 80, "learning_rate": 0.1, "num_leaves": 31}},
          "xgboost": {"name": "xgboost", "params": {"n_estimators": 80, "learning_rate": 0.1, "max_depth": 6}}}


@pytest.fixture(scope="module")
def features() -> dict:
    """Real URLs featurized once: a grouped train/test split."""
    sample, groups, dataset = labelled_sample(mirror_dir(), 3000, seed=1)
    train, test = next(GroupShuffleSplit(1, test_size=0.3, random_state=0).split(sample, groups=groups))
    featurizer = build_featurizer(dataset, FEATURIZER, [])
    y = sample["label"].to_numpy()
    x_train = featurizer.fit_transform(sample.loc[train, ["url"]], y[train])
    return {"x_train": x_train, "y_train": y[train], "groups": groups[train], "x_test": featurizer.transform(
        sample.loc[test, ["url"]]), "y_test": y[test], "featurizer": featurizer, "urls": sample.loc[test, ["url"]]}


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", ["lightgbm", "xgboost"])
def test_dask_trained_booster_matches_local_training(dask_client, features: dict, name: str) -> None:  # noqa: F811
    from cybersentinel.model.distributed import fit_on_dask

    x_train, y_train = features["x_train"], features["y_train"]
    weights = np.where(y_train == 1, 10.0, 1.0)  # row weights reach the cluster's fit: phishing counts ten times
    estimator = build_estimator(MODELS[name], seed=0)
    local = build_estimator(MODELS[name], seed=0).fit(x_train, y_train, sample_weight=weights)
    unweighted = build_estimator(MODELS[name], seed=0).fit(x_train, y_train)
    remote = fit_on_dask(estimator, x_train, y_train, dask_client, partitions=4, seed=0, sample_weight=weights)
    assert type(remote) is type(local)  # an ordinary booster, not a Dask estimator
    x_test, y_test = features["x_test"], features["y_test"]
    auc_local = roc_auc_score(y_test, local.predict_proba(x_test)[:, 1])
    auc_dask = roc_auc_score(y_test, remote.predict_proba(x_test)[:, 1])
    print(f"{name}: test ROC-AUC local {auc_local:.5f}, dask {auc_dask:.5f}")
    assert auc_dask > 0.9 and abs(auc_dask - auc_local) <= 0.002, (auc_local, auc_dask)
    means = [model.predict_proba(x_test)[:, 1].mean() for model in (remote, local, unweighted)]
    # the weights move the scores, and the cluster's fit moves them as the local one does
    assert means[1] - means[2] > 0.01 and abs(means[0] - means[1]) < (means[1] - means[2]) / 3, means

    if name == "lightgbm":
        trees = TreeEnsemble.from_booster(remote.booster_)
        expected = remote.booster_.predict(x_test, raw_score=True)
    else:
        from xgboost import DMatrix

        trees = TreeEnsemble.from_xgboost(remote.get_booster())
        expected = remote.get_booster().predict(DMatrix(x_test), output_margin=True)
    raw, _ = trees.predict(x_test)
    if name == "lightgbm":
        assert np.array_equal(raw, expected)  # the walker adds LightGBM's leaf values in its order: bit for bit
    else:  # XGBoost adds its leaf values in float32; the walker in float64
        assert np.max(np.abs(raw - expected)) < 1e-5


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_grouped_calibration_on_dask_saves_an_ordinary_compiled_model(dask_client, features: dict,  # noqa: F811
                                                                      tmp_path: Path) -> None:
    from cybersentinel.model.distributed import DaskBoosted, unwrap

    wrapped = DaskBoosted(build_estimator(MODELS["lightgbm"], seed=0), partitions=4, seed=0)
    calibrated, held_out = calibrate_grouped(wrapped, features["x_train"], features["y_train"], features["groups"],
                                             folds=3, method="isotonic", ensemble=False, n_jobs=1, seed=0)
    model = Pipeline([("features", features["featurizer"]), ("classifier", unwrap(calibrated))])
    assert held_out.shape == features["y_train"].shape
    sha256 = save_model(model, tmp_path / "model.skops")  # refuses nothing: only allowlisted types inside
    loaded = load_model(tmp_path / "model.skops", sha256)
    assert type(loaded.named_steps["classifier"].calibrated_classifiers_[0].estimator).__name__ == "LGBMClassifier"
    assert write_compiled(model, tmp_path) is not None  # the served, compiled form reproduces the pipeline
    urls = features["urls"]["url"].tolist()[:500]
    assert np.array_equal(loaded.predict_proba(urls), model.predict_proba(urls))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_featurizing_per_partition_equals_featurizing_at_once(dask_client, features: dict) -> None:  # noqa: F811
    import dask.dataframe as dd

    from cybersentinel.model.distributed import featurize_partitions

    frame = features["urls"].reset_index(drop=True)
    names = list(features["featurizer"].get_feature_names_out())
    out = featurize_partitions(dd.from_pandas(frame, npartitions=5), features["featurizer"], names)
    computed = dask_client.compute(out).result()
    assert list(computed.index) == list(range(len(frame)))
    assert np.array_equal(computed.to_numpy(), np.asarray(features["featurizer"].transform(frame), np.float32))


def test_scikit_learn_models_stay_local_with_a_clear_message() -> None:
    from cybersentinel.model.distributed import LocalOnlyModelError, check_model

    check_model("lightgbm")
    with pytest.raises(LocalOnlyModelError, match="'random_forest' has no Dask training .* trains locally"):
        check_model("random_forest")
