"""Train: grouped randomised hyperparameter search on the training split; then the best candidate is
fitted once per grouped fold and calibrated on that fold's held-out groups, the decision threshold is
chosen on those held-out scores, and the whole featurizer + classifier pipeline is saved with a
manifest (hashes, threshold, search results), with the reference profile `cybersentinel drift` compares traffic
with (a sample of the training rows' features and held-out scores, `models/reference.parquet`)."""

import argparse
import json
import shutil
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from cybersentinel.core.config import feedback_source_names
from cybersentinel.core.files import atomic_path, read_params, sha256_file, write_json
from cybersentinel.model.compiled import write_compiled
from cybersentinel.model.drift import write_reference
from cybersentinel.model.estimators import (
    build_estimator,
    calibrate_grouped,
    choose_threshold,
    grouped_search,
    load_model,
    repeat_rows,
    save_model,
    search_space,
    training_weights,
)
from cybersentinel.model.metrics import classification_metrics
from cybersentinel.scoring.detector import policy_lists, rules_only
from cybersentinel.scoring.policy import Policy
from cybersentinel.tracking.runs import stage_run


def write_popularity(popular: dict[str, int], tranco: Path, out: Path) -> dict:
    """The policy's popular sites, pinned with the model so the popularity rule holds with or without live
    feeds: the top registered domains of the pinned Tranco list, in rank order."""
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(sorted(popular, key=popular.__getitem__)) + "\n", encoding="utf-8")
    return {"file": out.name, "sha256": sha256_file(out), "entries": len(popular), "source": tranco.name,
            "source_sha256": sha256_file(tranco)}


def pin_file(source: Path, out: Path, **about: str) -> dict:
    """A copy of a policy input beside the model, recorded (with its hash) in the manifest."""
    with atomic_path(out) as tmp:
        shutil.copyfile(source, tmp)
    return {"file": out.name, "sha256": sha256_file(out), **about}


def flaggable_rows(train: pd.DataFrame, kind: str, rules: Policy, software: str, lists: dict[str, Any]) -> np.ndarray:
    """Which training rows the served decision could flag on their score, for the false-positive budget: of a URL
    dataset, all but a popular site's page or a stock file (the policy's URL rules); of a tabular one, every row
    (its model scores feature vectors, with no URL for those rules to read)."""
    if kind != "url":
        return np.ones(len(train), dtype=bool)
    # the budget is spent on what the served decision can flag: a popular site's page or a stock file is not
    return rules_only(rules, software, lists).flaggable_on_score(train["url"])


def on_engine(stack: ExitStack, train: dict, model_name: str, estimator, space: dict, n_jobs: int, seed: int):
    """The estimator, search space and parallelism for ``train.engine``, and how to bring the calibrated model and
    its best parameters back to their local form. With ``dask`` each fit of LightGBM or XGBoost runs on the cluster
    (opened here, closed with ``stack``) one at a time; other models train locally, saying so."""
    local = (estimator, space, n_jobs, lambda calibrated, best: (calibrated, best))
    if train["engine"] == "local":
        return local
    if train["engine"] != "dask":
        raise ValueError(f"train.engine must be local or dask, not {train['engine']!r}")
    from cybersentinel.model import distributed

    try:
        distributed.check_model(model_name)
    except distributed.LocalOnlyModelError as exc:
        print(f"train.engine dask: {exc}")
        return local
    client, name = distributed.connect(train.get("scheduler"), train["workers"])
    stack.callback(distributed.close, client)
    print(f"train.engine dask: fitting {model_name} on {name}")
    wrapped = distributed.DaskBoosted(estimator, partitions=train["partitions"], seed=seed)
    return (wrapped, distributed.dask_space(space), 1,
            lambda calibrated, best: (distributed.unwrap(calibrated), distributed.local_params(best)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="model folder")
    parser.add_argument("--intel", type=Path, required=True, help="pinned feed snapshot: its popularity list")
    parser.add_argument("--software", type=Path, required=True, help="stock files of known web software")
    parser.add_argument("--resolvers", type=Path, required=True, help="public DNS resolvers' addresses")
    args = parser.parse_args()
    params = read_params()
    seed, model_cfg, search_cfg = params["seed"], params["model"], params["search"]
    featurizer_info = json.loads((args.features / "featurizer.json").read_text())
    featurizer = load_model(args.features / "featurizer.skops", featurizer_info["sha256"])
    names = featurizer_info["features"]

    train = pd.read_parquet(args.features / "train.parquet")
    # Analyst feedback trains with its configured weight; the collections alone set the threshold and validation.
    feedback = train["source"].isin(list(feedback_source_names(params["dataset"]))).to_numpy()
    train = repeat_rows(train, feedback, int(params["feedback"]["weight"]))
    collections = ~train["source"].isin(list(feedback_source_names(params["dataset"]))).to_numpy()
    x, y, groups = train[names].to_numpy(), train["label"].to_numpy(), train["group"].to_numpy()

    with stage_run("train", params["mlflow"]["experiment"],
                   {"dataset": params["dataset"]["name"], "model": model_cfg["name"]}) as tracker:
        tracker.params({"model": model_cfg, "search": search_cfg, "calibration": params["calibration"],
                        "threshold": params["threshold"], "seed": seed, "train": params["train"]})
        estimator = build_estimator(model_cfg, seed)
        space = search_space(model_cfg)
        best_params, cv_score = {}, float("nan")
        with ExitStack() as stack:
            estimator, space, n_jobs, unwrap = on_engine(stack, params["train"], model_cfg["name"], estimator, space,
                                                         search_cfg["n_jobs"], seed)
            weights = training_weights(x, y, names, params["train"]["root_page_balance"])
            if space:
                search = grouped_search(estimator, space, x, y, groups,
                                        n_iter=search_cfg["n_iter"], cv_folds=search_cfg["cv_folds"],
                                        scoring=search_cfg["scoring"], n_jobs=n_jobs, seed=seed,
                                        sample_weight=weights)
                scores = search.cv_results_["mean_test_score"]
                best = int(np.argmax(scores))
                best_params, cv_score = search.cv_results_["params"][best], float(scores[best])
            calibrated, held_out = calibrate_grouped(clone(estimator).set_params(**best_params), x, y, groups,
                                                     folds=params["calibration"]["folds"],
                                                     method=params["calibration"]["method"],
                                                     ensemble=params["calibration"]["ensemble"],
                                                     n_jobs=n_jobs, seed=seed, sample_weight=weights)
            calibrated, best_params = unwrap(calibrated, best_params)
        threshold_cfg = params["threshold"]
        rules = Policy(threshold=1.0, **params["policy"])  # validates the parameters
        software = params["software"]["wordpress"]["label"]
        lists = policy_lists(args.intel / "tranco_top100k.csv", rules.popular_list_size, args.software,
                             args.resolvers, params["software"]["resolvers"]["label"])
        flaggable = flaggable_rows(train, params["dataset"]["kind"], rules, software, lists)
        y_c, held_out_c, sources_c = y[collections], held_out[collections], train["source"].to_numpy()[collections]
        threshold = choose_threshold(y_c, held_out_c, threshold_cfg["objective"], max_fpr=threshold_cfg.get("max_fpr"),
                                     sources=sources_c, flaggable=flaggable[collections],
                                     estimator=threshold_cfg["estimator"])
        val_metrics = classification_metrics(y_c, held_out_c, threshold)
        policy = replace(rules, threshold=round(threshold, 6))
        legit = (y == 0) & collections
        flagged = flaggable & (held_out >= threshold)
        fpr_by_source = {s: round(float(np.mean(flagged[legit & (train["source"] == s).to_numpy()])), 5)
                         for s in sorted(train.loc[legit, "source"].unique())}

        model = Pipeline([("features", featurizer), ("classifier", calibrated)])
        sha256 = save_model(model, args.out / "model.skops")
        manifest = {
            "name": params["mlflow"]["registered_model"], "file": "model.skops", "sha256": sha256,
            "dataset": params["dataset"]["name"], "kind": params["dataset"]["kind"],
            "inputs": featurizer_info["inputs"], "features": names, "model": model_cfg["name"],
            "best_params": {k: v.item() if hasattr(v, "item") else v for k, v in best_params.items()},
            "cv_" + search_cfg["scoring"]: round(cv_score, 5), "policy": policy.as_dict(),
            "threshold_rule": {**threshold_cfg, "held_out_fpr_by_source": fpr_by_source},
            "validation": val_metrics,
            "train_data_sha256": sha256_file(args.features / "train.parquet"),
        }
        manifest["popularity"] = write_popularity(lists["popularity"], args.intel / "tranco_top100k.csv",
                                                  args.out / "popular.txt")
        manifest["software"] = pin_file(args.software, args.out / "software.txt",
                                        name=params["software"]["wordpress"]["label"])
        manifest["resolvers"] = pin_file(args.resolvers, args.out / "resolvers.txt",
                                         name=params["software"]["resolvers"]["label"])
        # what `cybersentinel drift` compares traffic with: features and held-out scores of the training rows
        manifest["reference"] = write_reference(args.out, x, names, held_out, seed=seed)
        compiled = write_compiled(model, args.out)  # the served form: arrays, no scikit-learn at load time
        if compiled:
            manifest["compiled"] = compiled
        write_json(args.out / "model.json", manifest)
        write_json(args.out / "best_params.json", manifest["best_params"])  # what the generalisation study reuses
        # the held-out metrics themselves are logged with the registered model (tracking/registry.py)
        tracker.metrics({"cv_score": cv_score, "threshold": threshold}, prefix="validation.")
        tracker.artifact(str(args.out / "model.json"))
        from cybersentinel.tracking.registry import log_and_register

        log_and_register(tracker, model, manifest, train[featurizer_info["inputs"]].head(5), args.out)
    print(f"{model_cfg['name']}: cv {search_cfg['scoring']} {cv_score:.4f}, best {best_params}, "
          f"threshold {threshold:.3f}, validation accuracy {val_metrics['accuracy']:.4f}")


if __name__ == "__main__":
    main()
