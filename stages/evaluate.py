"""Evaluate: score the held-out test split through the saved pipeline, check that the compiled form the
service loads gives the same scores, and judge the served decision (model + pinned feeds + popularity, the
decision policy every door applies). Writes the headline metrics (reports/metrics.json, a DVC metric tied to
the model by its hash: the few figures a reviewer compares), everything else (every metric, per registered
domain, per source, per slice, the sanity URLs, the probe lists' verdicts) in reports/details.json (not a DVC
metric, so `dvc exp show` stays readable), and the data behind the ROC, precision-recall, confusion, calibration
and importance plots."""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

from cybersentinel.core.files import read_params, sha256_file, write_json
from cybersentinel.data.validation import url_slices
from cybersentinel.intel.feeds import IntelIndex
from cybersentinel.model.compiled import UrlScorer
from cybersentinel.model.estimators import load_detector
from cybersentinel.model.metrics import (
    calibration_points,
    classification_metrics,
    confusion_counts,
    confusion_rows,
    group_weights,
    pr_points,
    roc_points,
)
from cybersentinel.scoring.detector import Detector, pinned_lists
from cybersentinel.scoring.policy import Policy
from cybersentinel.tracking.runs import stage_run

# What reports/metrics.json keeps of the full figures (details.json has them all).
HEADLINE = {"test": ("roc_auc", "pr_auc", "tpr_at_1pct_fpr", "precision", "recall", "rows"),
            "served": ("roc_auc", "tpr_at_1pct_fpr", "precision", "recall", "rows", "unscorable_rows")}
SANITY_HEADLINE = ("legitimate_malicious_with_feeds", "legitimate_malicious_without_feeds",
                   "phishing_not_malicious_with_feeds", "phishing_not_malicious_without_feeds")
VERDICTS = ("malicious", "suspicious", "benign")


def headline(details: dict) -> dict:
    """The small set of figures `dvc metrics diff` and `dvc exp show` compare; ``details`` holds everything."""
    metrics = {"model_sha256": details["model_sha256"], "manifest_sha256": details["manifest_sha256"],
               "model_dir": details["model_dir"], "threshold": details["threshold"]}
    for section, keys in HEADLINE.items():
        if section in details:
            metrics[section] = {k: details[section][k] for k in keys if k in details[section]}
    if "sanity_counts" in details:  # wrong verdicts on the hand-written sets
        metrics["sanity"] = {k: details["sanity_counts"][k] for k in SANITY_HEADLINE}
    if details.get("probes"):  # the probe lists' wrong verdicts, summed: each list's are in details
        metrics["probes"] = {"legitimate_malicious": sum(p["malicious"] for p in details["probes"].values()
                                                         if p["kind"] == "legitimate"),
                             "malicious_missed": sum(p["urls"] - p["errors"] - p["malicious"]
                                                     for p in details["probes"].values() if p["kind"] == "malicious")}
    return metrics


def url_only_gaps(kind: str) -> dict[str, str]:
    """What evaluate leaves out for a model that does not score URLs (a tabular dataset's), and why: the served
    decision (its policy reads URLs; its feeds list hosts), the hand-written sanity and probe URLs and the URL
    slices."""
    why = f"the model scores a {kind} dataset's feature columns, not URLs"
    return {"served": f"{why}: the decision policy, its feeds and popular sites read URLs",
            "sanity": f"{why}: the sanity sets are URLs", "slices": f"{why}: the slices are URL shapes",
            "probes": f"{why}: the probe lists are URLs"}


def sanity_check(detector: Detector, index: IntelIndex, legitimate: Path, phishing: Path,
                 ) -> tuple[dict[str, int], dict[str, list]]:
    """The served decision, with and without feeds, on hand-written legitimate URLs of the kinds a lexical model
    flags (sign-in pages, cloud documents, CDN and CMS assets, resolvers) and on typical phishing shapes:
    (counts of wrong verdicts, the URLs that got them)."""
    lists = {kind: [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
             for kind, path in (("legitimate", legitimate), ("phishing", phishing))}
    counts, failures = {f"{kind}_urls": len(urls) for kind, urls in lists.items()}, {}
    for feeds, decider in (("with_feeds", detector.decider(index)), ("without_feeds", detector.decider())):
        for kind, urls in lists.items():
            verdicts = detector.score_values(urls, reasons=False, decider=decider)["verdict"].to_pylist()
            wrong = [u for u, v in zip(urls, verdicts, strict=True)
                     if (v == "malicious") == (kind == "legitimate")]
            key = f"{kind}_{'malicious' if kind == 'legitimate' else 'not_malicious'}_{feeds}"
            counts[key], failures[key] = len(wrong), wrong
    return counts, failures


def probe_verdicts(detector: Detector, lists: dict[str, list[Path]]) -> dict[str, dict]:
    """The served decision without feeds (as `cybersentinel predict --no-feeds` judges a list) on hand-written probe
    lists of traffic the collections hold little of, by the list's file name: its kind (``lists``' key:
    ``legitimate`` or ``malicious``), its path, and how many of its URLs got each verdict or an error (no web
    address). Unlike the sanity sets nothing here must hold: the counts are what a change moves."""
    decider, found = detector.decider(), {}
    for kind, paths in lists.items():
        for path in paths:
            urls = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            verdicts = detector.score_values(urls, reasons=False, decider=decider)["verdict"].to_pylist()
            found[path.stem] = {"kind": kind, "path": path.as_posix(), "urls": len(urls),
                                **{v: verdicts.count(v) for v in VERDICTS}, "errors": verdicts.count("")}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--intel", type=Path, required=True, help="pinned feed snapshot (stage intel)")
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--details", type=Path, required=True)
    parser.add_argument("--sanity", type=Path, nargs=2, metavar=("LEGITIMATE", "PHISHING"), required=True,
                        help="hand-written URL lists: none of the first may be malicious, all of the second must be")
    parser.add_argument("--probes-legitimate", type=Path, nargs="*", default=[], metavar="LIST",
                        help="hand-written lists of legitimate traffic: how many come out malicious")
    parser.add_argument("--probes-malicious", type=Path, nargs="*", default=[], metavar="LIST",
                        help="hand-written lists of phishing and malware: how many do not come out malicious")
    parser.add_argument("--plots", type=Path, required=True)
    args = parser.parse_args()
    params = read_params()
    model, manifest = load_detector(args.model)
    test = pd.read_parquet(args.features / "test.parquet")
    policy = Policy.from_manifest(manifest)
    y, threshold = test["label"].to_numpy(), policy.threshold
    scores = model.predict_proba(test[manifest["inputs"]])[:, 1]
    if manifest.get("compiled"):  # the served form must score every test row as the evaluated pipeline does
        scorer = UrlScorer.load(args.model / manifest["compiled"]["file"], manifest["compiled"]["sha256"])
        difference = scorer.max_difference(test["url"], scores)
        if not difference <= 1e-9:
            raise SystemExit(f"the compiled scorer differs from the pipeline by {difference:.3g} on the test set")

    sources = {s: (test["source"] == s).to_numpy() for s in sorted(test["source"].unique())}
    weights = group_weights(test["group"])  # each registered domain weighs the same: big sites stop dominating
    # the manifest's own hash: the doors refuse a model.json edited after this measured it (`load_manifest`)
    details = {"model_sha256": manifest["sha256"], "manifest_sha256": sha256_file(args.model / "model.json"),
               "model_dir": args.model.as_posix(),
               "threshold": threshold,
               "test": classification_metrics(y, scores, threshold),
               "test_per_group": classification_metrics(y, scores, threshold, weights),
               "confusion": confusion_counts(y, scores, threshold),
               "by_source": {s: classification_metrics(y[m], scores[m], threshold) for s, m in sources.items()}}
    if manifest["kind"] != "url":
        details["not_applicable"] = url_only_gaps(manifest["kind"])
    else:
        # the decision users get: the same rows through the policy with the pinned feeds and popularity list
        detector = Detector(model, manifest, None, **pinned_lists(args.model, manifest))
        index = IntelIndex.from_dir(args.intel)
        decided = detector.score_values(test["url"], reasons=False, decider=detector.decider(index))
        served = decided["score"].to_numpy(zero_copy_only=False)
        # rows the service would answer with an error (a host with spaces or control characters...) have no
        # served score: counted, and left out of the served metrics
        scored = ~np.isnan(served)
        # the share of each class called at least `suspicious`: what acting on that band too catches and costs
        warned = np.isin(decided["verdict"].to_numpy(zero_copy_only=False), ("suspicious", "malicious"))
        details["served"] = {**classification_metrics(y[scored], served[scored], threshold),
                             "warned_recall": round(float(warned[scored & (y == 1)].mean()), 5),
                             "warned_fpr": round(float(warned[scored & (y == 0)].mean()), 5),
                             "unscorable_rows": int((~scored).sum())}
        details["served_per_group"] = classification_metrics(y[scored], served[scored], threshold, weights[scored])
        details["served_by_source"] = {s: classification_metrics(y[m & scored], served[m & scored], threshold)
                                       for s, m in sources.items()}
        details["sanity_counts"], details["sanity"] = sanity_check(detector, index, *args.sanity)
        details["probes"] = probe_verdicts(detector, {"legitimate": args.probes_legitimate,
                                                      "malicious": args.probes_malicious})
        # how the model does on the shapes that were shortcuts in training data
        details["slices"] = {name: classification_metrics(y[m], scores[m], threshold)
                             for name, m in url_slices(test["url"]).items() if m.sum() > 0}

    # What the model leans on: drop in ROC-AUC when one feature's test values are shuffled.
    classifier = model.named_steps["classifier"]
    importance = permutation_importance(classifier, test[manifest["features"]].to_numpy(), y, scoring="roc_auc",
                                        n_repeats=params["evaluate"]["importance_repeats"],
                                        random_state=params["seed"], n_jobs=1)
    ranked = sorted(zip(manifest["features"], importance.importances_mean, strict=True), key=lambda p: -p[1])
    plots = {
        "roc.json": roc_points(y, scores),
        "pr.json": pr_points(y, scores),
        "calibration.json": calibration_points(y, scores, params["evaluate"]["calibration_bins"]),
        "confusion.json": confusion_rows(y, scores, threshold),
        "importance.json": [{"feature": f, "importance": round(float(v), 5)} for f, v in ranked],  # every feature
    }
    metrics = headline(details)
    write_json(args.metrics, metrics)
    write_json(args.details, details)
    for name, rows in plots.items():
        write_json(args.plots / name, rows)
    tags = {"dataset": manifest["dataset"], "model": manifest["model"], "model_sha256": manifest["sha256"]}
    with stage_run("evaluate", params["mlflow"]["experiment"], tags) as t:
        t.metrics(details["test"], prefix="test.")
        t.artifact(str(args.metrics))
        t.artifact(str(args.details))
        t.artifact(str(args.plots), "plots")
    summary = ", ".join(f"{k} {v:.4f}" for k, v in details["test"].items() if k != "rows")
    print(f"test ({len(y):,} rows, {np.mean(y):.1%} phishing): {summary}")
    for part, why in details.get("not_applicable", {}).items():
        print(f"{part}: not applicable ({why})")


if __name__ == "__main__":
    main()
