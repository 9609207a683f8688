"""Featurize: fit the featurizer on the prepared table's training split only (a URL featurizer with the pinned
popularity list's names, less the test split's sites, and the word list), and write both feature tables (with their
provenance columns) and the featurizer. With ``train.engine: dask`` the fitted featurizer is applied
to the test split partition by partition on the cluster; the training split's features are the fit's own
out-of-fold scores, so they come from the local fit either way."""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from cybersentinel.core.files import read_params, write_json, write_parquet
from cybersentinel.data.prepare import feature_columns
from cybersentinel.features.featurizer import build_featurizer
from cybersentinel.features.words import read_words
from cybersentinel.intel.popular import read_popular_sites
from cybersentinel.model.estimators import save_model
from cybersentinel.tracking.runs import stage_run


def transform(featurizer, frame: pd.DataFrame, names: list[str], train: dict) -> np.ndarray:
    """``featurizer`` (fitted) applied to ``frame``: here with ``train.engine: local``, else on the Dask cluster
    `train.scheduler` names (or a new LocalCluster of ``train.workers``) in ``train.partitions`` partitions."""
    if train["engine"] == "local":
        return featurizer.transform(frame)
    if train["engine"] != "dask":
        raise ValueError(f"train.engine must be local or dask, not {train['engine']!r}")
    from cybersentinel.model.distributed import close, connect, featurize_on_cluster

    client, name = connect(train.get("scheduler"), train["workers"])
    try:
        print(f"train.engine dask: featurizing {len(frame):,} rows on {name}")
        return featurize_on_cluster(client, frame, featurizer, names, train["partitions"])
    finally:
        close(client)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--intel", type=Path, required=True, help="pinned feed snapshot: its popularity list")
    parser.add_argument("--words", type=Path, required=True, help="the word list the host names' words are read with")
    parser.add_argument("--out", type=Path, required=True, help="folder for train/test tables and the featurizer")
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args()
    params = read_params()
    dataset = params["dataset"]
    with stage_run("featurize", params["mlflow"]["experiment"], {"dataset": dataset["name"]}) as tracker:
        table = pd.read_parquet(args.prepared)
        table = table[~((table["split"] == "test") & table["synthetic"])].reset_index(drop=True)  # never scored
        is_test = (table["split"] == "test").to_numpy()
        train, test = table[~is_test].reset_index(drop=True), table[is_test].reset_index(drop=True)

        columns = feature_columns(table, dataset)
        featurizer = build_featurizer(dataset, params["featurizer"], columns)
        inputs = ["url"] if dataset["kind"] == "url" else columns
        familiar = params["featurizer"]["familiar_sites"]
        names_from = {"popular_sites": list(read_popular_sites(args.intel / "tranco_top100k.csv", familiar)),
                      "judged_sites": set(test["group"])} if dataset["kind"] == "url" and familiar else {}
        if dataset["kind"] == "url" and params["featurizer"]["name_words"]:
            names_from["words"] = read_words(args.words)
        train_x = featurizer.fit_transform(train[inputs], train["label"].to_numpy(), **names_from)
        names = list(featurizer.get_feature_names_out())
        test_x = transform(featurizer, test[inputs], names, params["train"])

        meta = [c for c in ("url", "label", "source", "group", "date") if c in table.columns]
        for name, part, x in (("train", train, train_x), ("test", test, test_x)):
            features = pd.DataFrame(x, columns=names)
            write_parquet(args.out / f"{name}.parquet", pd.concat([part[meta], features], axis=1))
        sha256 = save_model(featurizer, args.out / "featurizer.skops")
        write_json(args.out / "featurizer.json", {"sha256": sha256, "features": names, "inputs": inputs})

        report = {"train_rows": len(train), "test_rows": len(test),
                  "train_positive_share": round(float(train["label"].mean()), 4),
                  "test_positive_share": round(float(test["label"].mean()), 4),
                  "groups_in_both": len(set(train["group"]) & set(test["group"])),
                  "test_rows_by_source": test["source"].value_counts().sort_index().to_dict()}
        write_json(args.report, report)
        tracker.metrics({k: v for k, v in report.items() if isinstance(v, int | float)}, prefix="split.")
    print(f"{len(train):,} train / {len(test):,} test rows, {len(names)} features")


if __name__ == "__main__":
    main()
