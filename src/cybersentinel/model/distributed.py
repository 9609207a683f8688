"""Training on a Dask cluster (``train.engine: dask``): LightGBM through `lightgbm.DaskLGBMClassifier` and
XGBoost through `xgboost.dask`, on a shuffled, repartitioned frame (label-sorted partitions give LightGBM worse
models), each brought back as the ordinary booster the rest of training expects: the same calibration, threshold,
model file and compiled scorer as local training. scikit-learn's own models train locally.

`DaskBoosted` wraps the configured estimator so that the grouped search and calibration (`estimators.py`) run
unchanged while every fit goes to the cluster; `unwrap` puts the fitted boosters back in their place before the
model is saved, so the model file holds the usual types only. Featurizing a large input runs on the same cluster:
`featurize_partitions` applies a featurizer fitted once to every partition (`map_partitions`).

Dask is imported only here and in `cybersentinel.ops.distributed`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from cybersentinel.core.redact import redact

DASK_MODELS = ("lightgbm", "xgboost")
ORDER = "_shuffle_order"


class DistributedError(RuntimeError):
    """A distributed run that cannot start or finish (reported to the user as it is)."""


def connect(scheduler: str | None, workers: int, threads: int = 1) -> tuple[Any, str]:
    """A client of the cluster at ``scheduler``, or of a new `LocalCluster` of ``workers`` processes on
    127.0.0.1 (closed with the client); and how run records name it. Refuses a cluster whose workers run other
    versions of Dask or its serialisation stack."""
    from distributed import Client, LocalCluster

    if scheduler:
        client, name = Client(scheduler, timeout="30s"), redact(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True, host="127.0.0.1",
                               dashboard_address=None)
        client, name = Client(cluster), f"LocalCluster(n_workers={workers}, threads_per_worker={threads})"
    try:
        client.get_versions(check=True)
    except ValueError as exc:
        close(client)
        raise DistributedError(f"client and workers run different versions: {exc}") from exc
    return client, name


def close(client: Any) -> None:
    """Close ``client``, and the LocalCluster `connect` started for it (an existing cluster stays up)."""
    cluster = client.cluster
    client.close()
    if cluster is not None:
        cluster.close()


class LocalOnlyModelError(ValueError):
    """The configured model has no Dask training: it trains locally."""


def check_model(name: str) -> None:
    if name not in DASK_MODELS:
        raise LocalOnlyModelError(f"model {name!r} has no Dask training (only {', '.join(DASK_MODELS)} do): it trains "
                             "locally; set train.engine: local to say so")


def shuffled(frame: Any, partitions: int, seed: int) -> Any:
    """``frame`` (a Dask DataFrame) with its rows in a seeded random order across ``partitions`` partitions."""
    def keyed(part: pd.DataFrame, partition_info: dict | None = None) -> pd.DataFrame:
        index = (partition_info or {}).get("number", 0)
        rng = np.random.default_rng([seed, index])
        return part.assign(**{ORDER: rng.random(len(part))})

    meta = frame._meta.assign(**{ORDER: np.float64(0)})
    keyed_frame = frame.map_partitions(keyed, meta=meta)
    return keyed_frame.shuffle(ORDER, npartitions=partitions, shuffle_method="tasks").drop(columns=ORDER)


def to_dask_frame(X: np.ndarray, y: np.ndarray, partitions: int, seed: int,
                  sample_weight: np.ndarray | None = None) -> tuple[Any, Any, Any]:
    """Features, labels and row weights (None without ``sample_weight``) as a shuffled Dask frame of
    ``partitions`` partitions (arrives label-sorted or not)."""
    import dask.dataframe as dd

    frame = pd.DataFrame(np.asarray(X, dtype=np.float32), columns=[f"f{j}" for j in range(X.shape[1])])
    frame["label"] = np.asarray(y).astype(np.int64)
    if sample_weight is not None:
        frame["weight"] = np.asarray(sample_weight, dtype=np.float64)
    data = shuffled(dd.from_pandas(frame, npartitions=partitions), partitions, seed)
    weights = data["weight"] if sample_weight is not None else None
    return data.drop(columns=["label", "weight"], errors="ignore"), data["label"], weights


def fit_on_dask(estimator: BaseEstimator, X: np.ndarray, y: np.ndarray, client: Any, partitions: int,
                seed: int, sample_weight: np.ndarray | None = None) -> BaseEstimator:
    """``estimator`` (an unfitted LGBMClassifier or XGBClassifier) fitted on the cluster with the rows weighed by
    ``sample_weight``, returned as the same ordinary, fitted class."""
    name = type(estimator).__name__
    params = estimator.get_params()
    features, labels, weights = to_dask_frame(X, y, partitions, seed, sample_weight)
    # arrays, not the frame: the booster then records no column names, as when fitted locally on arrays
    columns = [features, labels] + ([weights] if weights is not None else [])
    features, labels, *weights = client.persist([column.to_dask_array(lengths=True) for column in columns])
    weighted = {"sample_weight": weights[0]} if weights else {}
    if name == "LGBMClassifier":
        from lightgbm import DaskLGBMClassifier

        params.pop("n_jobs", None)  # LightGBM's Dask training sets the threads per worker itself
        model = DaskLGBMClassifier(client=client, **params).fit(features, labels, **weighted)
        return model.to_local()
    if name == "XGBClassifier":
        from xgboost import XGBClassifier
        from xgboost.dask import DaskXGBClassifier

        model = DaskXGBClassifier(**params)
        model.client = client
        model.fit(features, labels, **weighted)
        local = XGBClassifier(**params)
        local.load_model(bytearray(model.get_booster().save_raw("json")))
        return local
    raise LocalOnlyModelError(f"{name} has no Dask training")


class DaskBoosted(ClassifierMixin, BaseEstimator):
    """A LightGBM or XGBoost classifier whose ``fit`` trains on the current Dask client's cluster
    (`distributed.get_client`: the one the train stage opened). Nested parameters (``estimator__<name>``) reach
    the wrapped estimator, so the search space applies unchanged."""

    def __init__(self, estimator: BaseEstimator | None = None, partitions: int = 8, seed: int = 0):
        self.estimator, self.partitions, self.seed = estimator, partitions, seed

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> DaskBoosted:
        from distributed import get_client

        self.estimator_ = fit_on_dask(clone(self.estimator), X, y, get_client(), self.partitions, self.seed,
                                      sample_weight)
        self.classes_ = self.estimator_.classes_
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.estimator_.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.estimator_.predict(X)


def dask_space(space: dict[str, list]) -> dict[str, list]:
    """The search space addressed to the wrapped estimator."""
    return {f"estimator__{k}": v for k, v in space.items()}


def local_params(params: dict[str, Any]) -> dict[str, Any]:
    """Best parameters as the local estimator names them (what model.json and best_params.json record)."""
    return {k.removeprefix("estimator__"): v for k, v in params.items()}


def unwrap(calibrated: Any) -> Any:
    """A fitted ``CalibratedClassifierCV`` of `DaskBoosted` with each fold's fitted booster in its place (the
    template too): the model file then holds the usual, allowlisted types."""
    if isinstance(calibrated.estimator, DaskBoosted):
        calibrated.estimator = calibrated.estimator.estimator
    for fold in calibrated.calibrated_classifiers_:
        inner = fold.estimator
        if isinstance(inner, DaskBoosted):
            fold.estimator = inner.estimator_
        elif isinstance(getattr(inner, "estimator", None), DaskBoosted):  # FrozenEstimator(DaskBoosted)
            inner.estimator = inner.estimator.estimator_
    return calibrated


def featurize_partitions(frame: Any, featurizer: Any, names: list[str]) -> Any:
    """``featurizer`` (fitted once) applied to every partition of ``frame`` (a Dask DataFrame of its inputs) on
    the cluster: a Dask DataFrame of the ``names`` columns, partition for partition, rows in order."""
    meta = pd.DataFrame({name: pd.Series(dtype=np.float32) for name in names})

    def transform(part: pd.DataFrame) -> pd.DataFrame:
        values = featurizer.transform(part) if len(part) else np.empty((0, len(names)), np.float32)
        return pd.DataFrame(np.asarray(values, dtype=np.float32), columns=names, index=part.index)

    return frame.map_partitions(transform, meta=meta)


def featurize_on_cluster(client: Any, frame: pd.DataFrame, featurizer: Any, names: list[str],
                         partitions: int) -> np.ndarray:
    """``featurizer`` applied to ``frame`` (its inputs) in ``partitions`` partitions on ``client``'s cluster
    (`featurize_partitions`): the float32 feature matrix, rows in ``frame``'s order."""
    import dask.dataframe as dd

    parts = dd.from_pandas(frame.reset_index(drop=True), npartitions=max(1, partitions))
    computed = client.compute(featurize_partitions(parts, featurizer, names)).result()
    return computed.to_numpy()
