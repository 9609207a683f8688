"""Whether a retrained candidate replaces the champion (`make retrain`): the one decision, as a small pure function
over figures measured the same way for both models.

"The same test data" for two models trained on different splits is the rows that were held out from *both*: the
champion's test rows that are still test rows for the candidate (matched by URL; labels as the candidate's data
have them, so an analyst's correction counts). Neither model trained on any of them. The leave-one-collection-out
table (stage `generalise`) is the second gate: a candidate that buys a better in-distribution figure with a worse
worst collection is refused. The hand-written sanity sets (`reports/metrics.json`'s ``sanity``, stage `evaluate`)
are the third: a retrain moves the threshold, and a candidate that calls more of their legitimate URLs
`malicious`, or misses more of their phishing shapes, than the champion did is refused however it ranks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from cybersentinel.tracking.registry import LOWER_IS_BETTER, beats


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def shared_test_rows(champion_test: pd.DataFrame, candidate_test: pd.DataFrame) -> pd.DataFrame:
    """The candidate's test rows whose URL was also a test row of the champion (one row per URL)."""
    held_out_before = set(champion_test["url"])
    return candidate_test[candidate_test["url"].isin(held_out_before)].drop_duplicates("url").reset_index(drop=True)


def decide(candidate_sha256: str, champion_sha256: str | None, candidate: Mapping[str, float] | None,
           champion: Mapping[str, float] | None, candidate_loco_min: float | None, champion_loco_min: float | None,
           *, metric: str, min_delta: float, loco_tolerance: float, shared_rows: int,
           candidate_sanity: Mapping[str, int] | None = None, champion_sanity: Mapping[str, int] | None = None,
           sanity_tolerance: int = 0, same_manifest: bool | None = None) -> Decision:
    """Promote the candidate only if it is a new model that beats the champion on ``metric`` over the shared test
    rows by more than ``min_delta``, whose worst leave-one-collection-out ROC-AUC is at most ``loco_tolerance``
    below the champion's, and that has none of the sanity counts (wrong verdicts on the hand-written sets) more than
    ``sanity_tolerance`` above the champion's (a count the champion has no record of is taken as 0; a candidate
    without a count the champion has is refused; with no counts on either side the gate is not asked). Every
    refusal says which gate stopped it.

    The same model under another manifest (``same_manifest`` False: a threshold chosen again, a pinned list
    refreshed) is a new decision for the same ranking: the metric cannot tell the two apart, so only the
    leave-one-collection-out and sanity gates judge it. ``same_manifest`` None compares the model hashes alone."""
    figures = {"metric": metric, "min_delta": min_delta, "loco_tolerance": loco_tolerance, "shared_rows": shared_rows,
               "candidate": dict(candidate or {}), "champion": dict(champion or {}),
               "candidate_loco_min_roc_auc": candidate_loco_min, "champion_loco_min_roc_auc": champion_loco_min,
               "candidate_sanity": None if candidate_sanity is None else dict(candidate_sanity),
               "champion_sanity": None if champion_sanity is None else dict(champion_sanity),
               "sanity_tolerance": sanity_tolerance}
    if champion_sha256 is None:
        return Decision(True, "no champion yet: the candidate becomes the champion", figures)
    policy_only = candidate_sha256 == champion_sha256 and same_manifest is False
    if candidate_sha256 == champion_sha256 and not policy_only:
        return Decision(False, "nothing new: the pipeline reproduced the champion (same model SHA-256)", figures)
    if policy_only:
        new = old = None
    elif not shared_rows or candidate is None or champion is None:
        return Decision(False, "no test rows held out from both models: they cannot be compared", figures)
    else:
        new, old = candidate[metric], champion[metric]
        direction = "lower" if metric in LOWER_IS_BETTER else "higher"
        if not beats(metric, new, old, min_delta):
            return Decision(False, f"{metric} {new:.5f} against the champion's {old:.5f} on {shared_rows:,} shared "
                                   f"test rows: it must be {direction} by more than {min_delta}", figures)
    if candidate_loco_min is None and champion_loco_min is not None:
        return Decision(False, "the candidate has no leave-one-collection-out figure the champion has "
                               "(reports/generalisation.json, stage generalise)", figures)
    if candidate_loco_min is not None and champion_loco_min is not None and \
            candidate_loco_min < champion_loco_min - loco_tolerance:
        return Decision(False, f"worst leave-one-collection-out ROC-AUC fell from {champion_loco_min:.5f} to "
                               f"{candidate_loco_min:.5f}, more than the {loco_tolerance} allowed", figures)
    before = champion_sanity or {}
    unmeasured = sorted(set(before) - set(candidate_sanity or {})) if champion_sanity is not None else []
    if unmeasured:
        return Decision(False, f"the candidate has no sanity count the champion has: {', '.join(unmeasured)} "
                               "(reports/metrics.json `sanity`, stage evaluate)", figures)
    worse = [f"{key} {before.get(key, 0)} -> {count}" for key, count in (candidate_sanity or {}).items()
             if count > before.get(key, 0) + sanity_tolerance]
    if worse:
        return Decision(False, f"more wrong verdicts on the hand-written sanity sets than the champion: "
                               f"{', '.join(worse)}", figures)
    wrong = "n/a" if candidate_sanity is None else f"{sum(candidate_sanity.values())} wrong"
    ranking = "the same model under a new decision policy (model.json)" if policy_only else \
        f"{metric} {new:.5f} against the champion's {old:.5f} on {shared_rows:,} shared test rows"
    return Decision(True, f"{ranking}; worst leave-one-collection-out ROC-AUC {_fmt(champion_loco_min)} -> "
                          f"{_fmt(candidate_loco_min)}; sanity sets: {wrong}", figures)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.5f}"


def report_markdown(decision: Decision, before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """The comparison a person approves: the decision, the figures of both models, the generalisation table."""
    f = decision.figures
    lines = [f"# Retraining: {'promote' if decision.promote else 'keep the champion'}", "", decision.reason, "",
             f"Feedback snapshot: {after.get('feedback', {}).get('rows', 0)} active corrections "
             f"(fingerprint `{after.get('feedback', {}).get('snapshot', '-')}`); "
             f"before: {before.get('feedback', {}).get('rows', 0)}.", "",
             f"| | champion `{str(before.get('sha256'))[:12]}` | candidate `{str(after.get('sha256'))[:12]}` |",
             "| --- | ---: | ---: |"]
    for key in ("roc_auc", "pr_auc", "tpr_at_1pct_fpr", "precision", "recall", "brier"):
        if key in f["candidate"] or key in f["champion"]:
            lines.append(f"| {key} on {f['shared_rows']:,} shared test rows | {_fmt(f['champion'].get(key))} | "
                         f"{_fmt(f['candidate'].get(key))} |")
    lines.append(f"| worst leave-one-collection-out ROC-AUC | {_fmt(f['champion_loco_min_roc_auc'])} | "
                 f"{_fmt(f['candidate_loco_min_roc_auc'])} |")
    champion_sanity, candidate_sanity = f.get("champion_sanity"), f.get("candidate_sanity")
    for key in sorted(set(champion_sanity or {}) | set(candidate_sanity or {})):
        # a count the champion has no record of is compared as 0 (`decide`)
        before_count = "0 (no record)" if champion_sanity is None else champion_sanity.get(key, "n/a")
        lines.append(f"| sanity sets: {key.replace('_', ' ')} | {before_count} | "
                     f"{(candidate_sanity or {}).get(key, 'n/a')} |")
    loco_before, loco_after = before.get("loco") or {}, after.get("loco") or {}
    if loco_after:
        lines += ["", "| held-out collection | champion ROC-AUC | candidate ROC-AUC |", "| --- | ---: | ---: |"]
        for name in sorted(set(loco_before) | set(loco_after)):
            lines.append(f"| {name} | {_fmt((loco_before.get(name) or {}).get('roc_auc'))} | "
                         f"{_fmt((loco_after.get(name) or {}).get('roc_auc'))} |")
    lines += ["", f"Rule: promote when {f['metric']} beats the champion by more than {f['min_delta']}, the worst "
                  f"collection drops by at most {f['loco_tolerance']} and no count of wrong verdicts on the sanity "
                  f"sets rises by more than {f.get('sanity_tolerance', 0)} (params.yaml `retrain`)."]
    return "\n".join(lines) + "\n"
