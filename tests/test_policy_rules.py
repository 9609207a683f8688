"""benchmarks/policy_rules.py: each rule of the decision policy taken away in turn (tiny frames, real reason texts)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cybersentinel.scoring.decider import (
    address_sign_in,
    deceptive_host,
    page_asset,
    planted_page,
    userinfo_deception,
)
from cybersentinel.scoring.policy import Evidence, Policy, decide

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("policy_rules", REPO / "benchmarks" / "policy_rules.py")
policy_rules = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(policy_rules)

POLICY = Policy(threshold=0.9, suspicious_band=0.2, popular_rank=1000, cap_page_assets=True, page_asset_factor=0.5,
                cap_user_content=True)
WORDPRESS = frozenset({"/wp-login.php", "/wp-includes/js/jquery/jquery.js"})


def reason(model_score: float, **evidence) -> str:
    """The reason the policy itself writes for this evidence."""
    return decide(POLICY, model_score, Evidence(**evidence))[2]


@pytest.mark.parametrize(("text", "kinds"), [
    ("path resembles phishing paths; long URL", set()),
    ("", set()),
    (reason(0.95, tranco_rank=10, registered_domain="example.com"), {"popular site"}),
    (reason(0.95, tranco_rank=10, registered_domain="example.com", asset=page_asset("https://example.com/a.css")),
     {"popular site", "page asset"}),
    (reason(0.95, known_file="WordPress 6.1.9 file `/wp-login.php`"), {"stock file"}),
    (reason(0.5, deception=planted_page("https://shop.example/wp-includes/ID3/netflix/", WORDPRESS,
                                        "WordPress 6.1.9")), {"page planted in a WordPress folder"}),
    (reason(0.5, deception=deceptive_host("paypal.com.account-verify.xyz")),
     {"brand or country ending in a subdomain"}),
    (reason(0.5, deception=deceptive_host("arnazon-deals.com")), {"look-alike name"}),
    (reason(0.5, deception=userinfo_deception("http://www.paypal.com@evil.top/")), {"host before @"}),
    (reason(0.85, corroboration="brand `apple` named in the subdomain of `siahxu.cn`, neither the brand's nor a "
                                "popular site"), {"brand named in an unpopular site's subdomain"}),
    (reason(0.85, corroboration=address_sign_in("http://45.67.89.13:2095/webmail/")),
     {"sign-in page on a public address"}),
    (reason(0.95, tranco_rank=10, registered_domain="google.com", user_content="sites.google.com"),
     {"user content"}),
    (reason(0.95, is_ip=True, registered_domain="203.0.113.7", address_root=True), {"address"}),
    (reason(0.0, is_ip=True, is_bare_ip=True, ip_status="unlisted"), {"address"}),
    (reason(0.0, is_ip=True, is_bare_ip=True, ip_status="private", ip_category="private"), {"address"}),
    (reason(0.5, feeds=("urlhaus",)), {"feeds"}),
    (reason(0.5, allowed="allowlist.txt"), {"block or allow list"}),
])
def test_each_reason_the_policy_writes_names_its_rules(text, kinds):
    assert text or not kinds  # a rule that acts always says so
    assert policy_rules.rule_kinds(text) == kinds


def rows() -> pd.DataFrame:
    """A legitimate page of a popular site the discount saves, a phishing kit a brand rule raises, and a phishing
    page with the model's word alone."""
    frame = pd.DataFrame({"url": ["https://a.example/", "https://b.example/", "https://c.example/"],
                          "label": [0, 1, 1], "group": ["a.example", "b.example", "c.example"],
                          "model_score": [0.96, 0.85, 0.95],
                          "reasons": [reason(0.96, tranco_rank=10, registered_domain="a.example"),
                                      reason(0.85, corroboration="brand `apple` named in the subdomain of `b.example`, "
                                                                 "neither the brand's nor a popular site"), ""]})
    frame["score"] = [0.48, 0.9, 0.95]
    frame["verdict"] = ["benign", "malicious", "malicious"]
    frame["kinds"] = frame["reasons"].map(policy_rules.rule_kinds)
    return frame


def test_a_rule_taken_away_puts_its_rows_back_at_the_models_word():
    frame = rows()
    scores, malicious = policy_rules.without_rule(frame, "popular site", POLICY.threshold)
    assert scores.tolist() == [0.96, 0.9, 0.95] and malicious.tolist() == [True, True, True]
    scores, malicious = policy_rules.without_rule(frame, "brand named in an unpopular site's subdomain",
                                                  POLICY.threshold)
    assert scores.tolist() == [0.48, 0.85, 0.95] and malicious.tolist() == [False, False, True]


def test_the_report_gives_each_rules_worth():
    lines = policy_rules.report("fold", rows(), POLICY.threshold)
    assert lines[0] == "fold: roc_auc 1.0  tpr_at_1pct_fpr 1.0  recall 1.0  fpr 0.0  threshold 0.9000"
    popular = next(line for line in lines if "without popular site" in line)
    # without the discount the popular page outranks both kits and is flagged: ranking and false positives lost
    assert "roc_auc -1.0000" in popular and "fpr +1.0000" in popular and "recall +0.0000" in popular
    brand = next(line for line in lines if "brand named" in line)
    assert "recall -0.5000" in brand and "fpr +0.0000" in brand
    assert len(lines) == 3  # rules that acted on no row are not listed
    assert np.isclose(float(popular.split("legitimate")[1].split()[0]), 1)
