"""The retraining loop: the promotion decision on tiny figures, the shared test rows, the report, and (slow) the
whole loop in a temporary clone: feedback through the service into PostgreSQL, `make retrain`, promote, push
to the local S3 server, and a fresh clone pulling the new model."""

from __future__ import annotations

import pandas as pd
import pytest

from cybersentinel.tracking.promotion import decide, report_markdown, shared_test_rows

RULE = {"metric": "roc_auc", "min_delta": 0.001, "loco_tolerance": 0.005}


def figures(roc_auc: float, brier: float = 0.05) -> dict[str, float]:
    return {"roc_auc": roc_auc, "brier": brier, "pr_auc": roc_auc}


@pytest.mark.parametrize(("candidate", "champion", "loco", "shared", "promote", "reason"), [
    (figures(0.950), figures(0.940), (0.90, 0.90), 500, True, "roc_auc 0.95000 against the champion's 0.94000"),
    (figures(0.9405), figures(0.940), (0.90, 0.90), 500, False, "higher by more than 0.001"),
    (figures(0.930), figures(0.940), (0.90, 0.90), 500, False, "must be higher"),
    (figures(0.950), figures(0.940), (0.894, 0.90), 500, False, "fell from 0.90000 to 0.89400"),
    (figures(0.950), figures(0.940), (0.896, 0.90), 500, True, "0.90000 -> 0.89600"),
    (figures(0.950), figures(0.940), (None, 0.90), 500, True, "n/a"),
    (None, None, (0.90, 0.90), 0, False, "no test rows held out from both"),
])
def test_the_candidate_is_promoted_only_if_better_by_the_margin(candidate, champion, loco, shared, promote,
                                                                reason) -> None:
    decision = decide("b" * 64, "a" * 64, candidate, champion, *loco, shared_rows=shared, **RULE)
    assert decision.promote is promote and reason in decision.reason


def test_the_same_model_is_nothing_new_and_no_champion_is_a_first_promotion() -> None:
    same = decide("a" * 64, "a" * 64, figures(0.99), figures(0.5), 0.9, 0.9, shared_rows=10, **RULE)
    assert not same.promote and same.reason.startswith("nothing new")
    first = decide("a" * 64, None, None, None, 0.9, None, shared_rows=0, **RULE)
    assert first.promote and first.reason.startswith("no champion yet")


def test_lower_is_better_for_the_brier_score() -> None:
    rule = {**RULE, "metric": "brier"}
    assert decide("b", "a", figures(0.9, 0.040), figures(0.9, 0.050), None, None, shared_rows=5, **rule).promote
    assert not decide("b", "a", figures(0.9, 0.0495), figures(0.9, 0.050), None, None, shared_rows=5, **rule).promote


def test_shared_rows_are_those_held_out_from_both_with_the_candidates_labels() -> None:
    champion_test = pd.DataFrame({"url": ["a", "b", "c"]})
    candidate_test = pd.DataFrame({"url": ["b", "c", "c", "d"], "label": [1, 0, 0, 1]})
    shared = shared_test_rows(champion_test, candidate_test)
    assert shared["url"].tolist() == ["b", "c"] and shared["label"].tolist() == [1, 0]


def test_the_report_shows_both_models_and_the_collections() -> None:
    decision = decide("b" * 64, "a" * 64, figures(0.95), figures(0.94), 0.91, 0.90, shared_rows=500, **RULE)
    text = report_markdown(decision, {"sha256": "a" * 64, "loco": {"x": {"roc_auc": 0.9}}, "feedback": {"rows": 0}},
                           {"sha256": "b" * 64, "loco": {"x": {"roc_auc": 0.91}}, "feedback": {"rows": 3,
                                                                                             "snapshot": "f00"}})
    assert text.startswith("# Retraining: promote") and "| x | 0.90000 | 0.91000 |" in text
    assert "3 active corrections" in text and "| roc_auc on 500 shared test rows | 0.94000 | 0.95000 |" in text
