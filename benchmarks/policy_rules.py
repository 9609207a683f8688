"""What each rule of the decision policy buys on traffic unlike the training data: the `generalise` folds, each
rule taken away in turn.

For each fold of stage `generalise` (the nine collections left out, forward in time), the recipe is trained as the
stage trains it (`fit_recipe`) and its held-out rows are scored by the served decision, reasons included, as
`served_judgement` scores them (the popular sites, stock files and resolvers pinned as `train` pins them; no feeds).
Each row's reasons say which rules acted on it (`rule_kinds`); a rule is taken away by putting the rows it acted on
back at the model's own score (`without_rule`: a row two rules acted on goes back whole, so the other rule's share
is counted there too). Printed per fold: the served ROC-AUC, TPR at 1% FPR, recall and false-positive rate at the
fold's threshold, then each rule's rows and what taking it away changes. Prints figures; asserts nothing. About
100 s a fold, two at a time. Reads data/prepared.parquet, data/intel, data/software.txt, data/resolvers.txt,
params.yaml and models/best_params.json (`dvc repro`).

    python benchmarks/policy_rules.py
    python benchmarks/policy_rules.py --folds web_page_phishing,https_everywhere_tests_2019
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
# The policy's reason texts (`policy.decide`, `decider`), by the rule that writes them; a reason holds one part per
# rule, joined by "; ". The model's own reasons (features) name no rule.
RULES = (("block or allow list", re.compile(r"^(?:on the local block list|allowlisted)")),
         ("feeds", re.compile(r"^listed in ")),
         ("look-alike name", re.compile(r" imitates `|^punycode host")),
         ("brand or country ending in a subdomain", re.compile(r"in the subdomain of unrelated `")),
         ("brand named in an unpopular site's subdomain", re.compile(r"^brand `[^`]*` named in the subdomain")),
         ("sign-in page on a public address", re.compile(r"^a sign-in page \(`[^`]*`\) on the public address `")),
         ("program for download on a public address", re.compile(r" for download \(`[^`]*`\) on the public address `")),
         ("page planted in a WordPress folder", re.compile(r"^a page in `")),
         ("program named as a document", re.compile(r"^a [^`]* named as a `\.[a-z0-9]+` file \(`")),
         ("host before @", re.compile(r"` before '@' hides the real host `")),
         ("stock file", re.compile(r"^stock ")),
         ("address", re.compile(r" address(?:: not routable|, not reachable)|^public IP address|^the root page of the "
                                r"address `")),
         ("popular site", re.compile(r"^popular site ")),
         ("user content", re.compile(r"^a host where anyone can publish")),
         ("page asset", re.compile(r"^a page asset")))


def rule_kinds(reason: str) -> set[str]:
    """The rules a served reason names (empty for the model's word alone)."""
    return {name for part in filter(None, reason.split("; ")) for name, pattern in RULES if pattern.search(part)}


def served_figures(y: np.ndarray, scores: np.ndarray, malicious: np.ndarray, groups: np.ndarray) -> dict[str, Any]:
    """ROC-AUC and TPR at 1% FPR of the scores, recall and false-positive rate of the verdicts (`generalise`'s)."""
    from cybersentinel.model.generalisation import shares_and_ranking

    return shares_and_ranking(y, scores, malicious, groups, 0, 0, prefix="served_")


def without_rule(rows: pd.DataFrame, rule: str, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(scores, malicious) of the served decision with ``rule`` taken away: the rows it acted on (``kinds``) back at
    the model's score (``model_score``) and its verdict at ``threshold``; every other row as served."""
    acted = rows["kinds"].map(lambda kinds: rule in kinds).to_numpy()
    scores = np.where(acted, rows["model_score"].to_numpy(), rows["score"].to_numpy())
    malicious = np.where(acted, rows["model_score"].to_numpy() >= threshold, rows["verdict"].to_numpy() == "malicious")
    return scores, malicious


def fold_rows(table: pd.DataFrame, params: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from cybersentinel.core.config import feedback_source_names
    from cybersentinel.model.generalisation import forward_rows, held_out_collections, loco_rows

    folds = {name: loco_rows(table, name) for name in held_out_collections(table, feedback_source_names(
        params["dataset"]))}
    folds["forward"] = forward_rows(table, params["generalise"]["cutoff_year"])
    return folds


def fold_detector(table: pd.DataFrame, training: np.ndarray, evaluation: np.ndarray, params: Mapping[str, Any],
                  best_params: Mapping[str, Any], lists: Mapping[str, Any], familiar: list[str],
                  flaggable: np.ndarray, words: list[str]) -> tuple[Any, pd.DataFrame]:
    """The fold's served decision (its model, trained as stage `generalise` trains it, behind the policy with the
    pinned ``lists``, no feeds) and its held-out rows."""
    from sklearn.pipeline import Pipeline

    from cybersentinel.model.generalisation import fit_fold
    from cybersentinel.scoring.detector import Detector

    rows = table[evaluation]
    featurizer, classifier, threshold = fit_fold(table[training], params, best_params, familiar, set(rows["group"]),
                                                 flaggable[training], words)
    manifest = {"kind": "url", "inputs": ["url"], "policy": {**params["policy"], "threshold": threshold},
                "software": {"name": params["software"]["wordpress"]["label"]},
                "features": list(featurizer.get_feature_names_out())}
    return Detector(Pipeline([("features", featurizer), ("classifier", classifier)]), manifest, None, **lists), rows


def served_rows(table: pd.DataFrame, training: np.ndarray, evaluation: np.ndarray, params: Mapping[str, Any],
                best_params: Mapping[str, Any], lists: Mapping[str, Any], familiar: list[str],
                flaggable: np.ndarray, words: list[str]) -> tuple[pd.DataFrame, float]:
    """The fold's held-out rows with the served decision's score, verdict, reasons and model score, and the fold's
    threshold."""
    detector, rows = fold_detector(table, training, evaluation, params, best_params, lists, familiar, flaggable,
                                   words)
    served = detector.score_values(rows["url"], reasons=True).to_pandas()
    out = rows[["url", "label", "group"]].reset_index(drop=True)
    for column in ("score", "verdict", "reasons", "model_score"):
        out[column] = served[column].to_numpy()
    out["kinds"] = out["reasons"].fillna("").map(rule_kinds)
    return out, detector.threshold


def report(name: str, rows: pd.DataFrame, threshold: float) -> list[str]:
    y, groups = rows["label"].to_numpy(), rows["group"].to_numpy()
    base = served_figures(y, rows["score"].to_numpy(dtype=float), rows["verdict"].to_numpy() == "malicious", groups)
    figures = "  ".join(f"{key[7:]} {value}" for key, value in base.items())
    lines = [f"{name}: {figures}  threshold {threshold:.4f}"]
    for rule, _ in RULES:
        acted = rows["kinds"].map(lambda kinds, rule=rule: rule in kinds)
        if not acted.any():
            continue
        scores, malicious = without_rule(rows, rule, threshold)
        changed = served_figures(y, scores.astype(float), malicious, groups)
        deltas = "  ".join(f"{key[7:]} {changed[key] - base[key]:+.4f}" for key in base)
        lines.append(f"  without {rule:45s} rows legitimate {int((acted & (rows['label'] == 0)).sum()):5d} "
                     f"phishing {int((acted & (rows['label'] == 1)).sum()):5d}  {deltas}")
    return lines


def fold_inputs(folds: str) -> dict[str, Any]:
    """What a fold's training and served judgement read, as stage `generalise` reads it: ``params``, ``table``
    (data/prepared.parquet), ``best_params``, the policy's pinned ``lists``, the featurizer's ``familiar`` sites and
    ``words``,
    which rows are ``flaggable`` on their score, and the ``folds`` (a comma-separated choice of names, "" for all)."""
    from cybersentinel.core.files import read_params
    from cybersentinel.features.words import read_words
    from cybersentinel.intel.popular import read_popular_sites
    from cybersentinel.scoring.detector import policy_lists, rules_only
    from cybersentinel.scoring.policy import Policy

    params = read_params(REPO / "params.yaml")
    table = pd.read_parquet(REPO / "data" / "prepared.parquet")
    intel = REPO / "data" / "intel" / "tranco_top100k.csv"
    policy = Policy(threshold=1.0, **params["policy"])
    lists = policy_lists(intel, policy.popular_list_size, REPO / "data" / "software.txt",
                         REPO / "data" / "resolvers.txt", params["software"]["resolvers"]["label"])
    chosen = [name for name in folds.split(",") if name]
    return {"params": params, "table": table,
            "best_params": json.loads((REPO / "models" / "best_params.json").read_text()), "lists": lists,
            "familiar": list(read_popular_sites(intel, params["featurizer"]["familiar_sites"]))
            if params["featurizer"]["familiar_sites"] else [],
            "words": read_words(REPO / "data" / "words.txt") if params["featurizer"]["name_words"] else [],
            "flaggable": rules_only(policy, params["software"]["wordpress"]["label"], lists).flaggable_on_score(
                table["url"]),
            "folds": {name: rows for name, rows in fold_rows(table, params).items() if not chosen or name in chosen}}


def main() -> None:
    from joblib import Parallel, delayed

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", default="", help="comma-separated fold names (default: every fold)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    given = fold_inputs(args.folds)
    folds = given["folds"]
    results = Parallel(n_jobs=args.jobs)(
        delayed(served_rows)(given["table"], *rows, given["params"], given["best_params"], given["lists"],
                             given["familiar"], given["flaggable"], given["words"]) for rows in folds.values())
    for name, (rows, threshold) in zip(folds, results, strict=True):
        print("\n".join(report(name, rows, threshold)))


if __name__ == "__main__":
    main()
